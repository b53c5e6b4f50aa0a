//! The ingest loop against a live, partitioned source (one partition per topic, as Kafka
//! delivers Debezium's topics): a quiet stream is committed by the commit interval, and a paused
//! table stops alone and resumes from its committed position, nothing lost or duplicated.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use floe_catalog::testing::{ident, test_catalog};
use floe_catalog::{Catalog, CatalogError, SqlCatalog};
use floe_sink::testing::{Column, MemoryProducer, MemorySource, TableEvents};
use floe_sink::{Control, IngestControl, Ingestor, SinkConfig};
use serde_json::json;

const A: &str = "pg.shop.orders";
const B: &str = "pg.shop.customers";

fn events(topic: &str) -> TableEvents {
    TableEvents::new(topic, vec![Column::new("note", "string")])
}

/// Sends `n` upserts of keys `first..first + n` to `topic`, partition 0.
fn send(producer: &MemoryProducer, topic: &str, first: i64, n: i64) {
    let gen = events(topic);
    for id in first..first + n {
        let (key, value) = gen.upsert_message("c", id, &[json!(format!("row {id}"))]);
        producer.send(topic, 0, key, value);
    }
}

/// The `_src_offset` of every committed row of `table`, in order; empty before it exists.
async fn committed_offsets(catalog: &dyn Catalog, table: &str) -> Vec<i64> {
    let table = match catalog.load_table(&ident("shop", table)).await {
        Ok(table) => table,
        Err(CatalogError::TableNotFound(_)) => return vec![],
        Err(e) => panic!("{e}"),
    };
    let batches = floe_catalog::read::scan_rows(&table, &["_src_offset".to_string()], None).await.unwrap();
    let mut offsets: Vec<i64> = batches.iter().flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec()).collect();
    offsets.sort_unstable();
    offsets
}

/// An ingest over `catalog` flushing at `batch_rows` or every `commit_interval`, its control
/// handle, and a fresh source with its producer.
fn setup<'a>(
    catalog: &'a SqlCatalog,
    batch_rows: usize,
    commit_interval: &str,
) -> (Ingestor<'a>, IngestControl, MemorySource, MemoryProducer) {
    let text = format!("[sink]\nbatch_rows = {batch_rows}\ncommit_interval = \"{commit_interval}\"\n");
    let mut ingestor = Ingestor::new(catalog, SinkConfig::parse(&text, "test").unwrap());
    let control = ingestor.control();
    let (source, producer) = MemorySource::new();
    (ingestor, control, source, producer)
}

/// Waits (up to a minute: CI machines are slow) until `condition` holds.
async fn eventually<F: Future<Output = bool>>(what: &str, mut condition: impl FnMut() -> F) {
    for _ in 0..3000 {
        if condition().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_stream_is_committed_by_the_commit_interval() {
    let t = test_catalog().await;
    // Far more rows per batch than will arrive: only the interval can flush them.
    let (ingestor, _control, source, producer) = setup(&t.catalog, 100000, "200ms");
    let ingest = ingestor.run(source, &|_| {});
    let feed = async {
        send(&producer, A, 0, 3);
        eventually("the three records are committed while the source stays open", || async {
            committed_offsets(&t.catalog, "orders").await == vec![0, 1, 2]
        })
        .await;
        send(&producer, A, 3, 2);
        eventually("the next two follow", || async { committed_offsets(&t.catalog, "orders").await.len() == 5 }).await;
        drop(producer);
    };
    let (report, ()) = tokio::join!(ingest, feed);
    let report = report.unwrap();
    assert_eq!(report.rows.get("shop.orders"), Some(&5));
    assert!(report.commits >= 2, "each quiet spell committed on its own: {report:?}");
    assert_eq!(committed_offsets(&t.catalog, "orders").await, vec![0, 1, 2, 3, 4], "the end of input adds nothing twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_table_stops_alone_and_resumes_from_its_committed_position() {
    let t = test_catalog().await;
    // Ten buffered rows flush; the interval never does.
    let (ingestor, control, source, producer) = setup(&t.catalog, 10, "1h");
    let ingest = ingestor.run(source, &|_| {});
    let feed = async {
        send(&producer, A, 0, 10);
        eventually("orders commits its first ten", || async { committed_offsets(&t.catalog, "orders").await.len() == 10 }).await;
        // Three more orders are read but not committed when the table is paused: they are dropped
        // and must come back on resume.
        send(&producer, A, 10, 3);
        eventually("the loop has read them", || async { producer.handled() >= 13 }).await;
        assert!(control.send(Control::Pause("shop.orders".into())));
        send(&producer, A, 13, 3);
        send(&producer, B, 0, 10);
        eventually("customers commits while orders is paused", || async { committed_offsets(&t.catalog, "customers").await.len() == 10 })
            .await;
        assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..10).collect::<Vec<_>>(), "a paused table commits nothing");
        assert!(control.send(Control::Resume("shop.orders".into())));
        drop(producer);
    };
    let (report, ()) = tokio::join!(ingest, feed);
    let report = report.unwrap();
    assert!(report.failed_tables.is_empty(), "{report:?}");
    assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..16).collect::<Vec<_>>(), "every order exactly once");
    assert_eq!(committed_offsets(&t.catalog, "customers").await, (0..10).collect::<Vec<_>>());
    let per_table: BTreeMap<_, _> = report.rows.into_iter().collect();
    assert_eq!(per_table, BTreeMap::from([("shop.customers".to_string(), 10), ("shop.orders".to_string(), 16)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_table_that_skipped_records_it_cannot_reread_stays_paused_for_the_run() {
    let t = test_catalog().await;
    let (ingestor, control, source, producer) = setup(&t.catalog, 10, "1h");
    let ingest = ingestor.run(source, &|_| {});
    let gen = events(A);
    let feed = async {
        send(&producer, A, 0, 10);
        eventually("orders commits its first ten", || async { committed_offsets(&t.catalog, "orders").await.len() == 10 }).await;
        assert!(control.send(Control::Pause("shop.orders".into())));
        // A partition the table had not fed before: paused nowhere, so its records are skipped.
        let (key, value) = gen.upsert_message("c", 99, &[json!("late")]);
        producer.send(A, 1, key, value);
        eventually("the loop has read it", || async { producer.handled() >= 11 }).await;
        assert!(control.send(Control::Resume("shop.orders".into())));
        send(&producer, A, 10, 2);
        drop(producer);
    };
    let (report, ()) = tokio::join!(ingest, feed);
    let report = report.unwrap();
    // Still paused after the resume: its own partition stayed paused at the source, so the two
    // later orders were never delivered, and the late one was skipped.
    assert_eq!((report.events_read, report.skipped_paused_table), (11, 1), "{report:?}");
    assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..10).collect::<Vec<_>>());
    let table = t.catalog.load_table(&ident("shop", "orders")).await.unwrap();
    let positions = floe_catalog::layout::committed_positions(&table);
    assert_eq!(positions.get("pg.shop.orders/0"), Some(&9), "the next run reads the rest again");
    assert_eq!(positions.get("pg.shop.orders/1"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_also_commits_records_the_source_read_but_had_not_handed_out() {
    let t = test_catalog().await;
    let (ingestor, control, source, producer) = setup(&t.catalog, 100000, "1h");
    // Sent before the loop runs: the shutdown request is taken first, with the records still
    // at the source, as lines stdin has delivered but the loop has not yet asked for.
    send(&producer, A, 0, 5);
    assert!(control.send(Control::Shutdown));
    let report = ingestor.run(source, &|_| {}).await.unwrap();
    assert_eq!(report.rows.get("shop.orders"), Some(&5));
    assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..5).collect::<Vec<_>>());
    drop(producer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_commits_everything_read() {
    let t = test_catalog().await;
    let (ingestor, control, source, producer) = setup(&t.catalog, 100000, "1h");
    let ingest = ingestor.run(source, &|_| {});
    let feed = async {
        send(&producer, A, 0, 7);
        eventually("the loop has read them", || async { producer.handled() >= 7 }).await;
        assert_eq!(committed_offsets(&t.catalog, "orders").await, Vec::<i64>::new(), "nothing flushed yet");
        assert!(control.send(Control::Shutdown));
        producer // kept open: the shutdown, not the end of input, stops the run
    };
    let (report, _producer) = tokio::join!(ingest, feed);
    assert_eq!(report.unwrap().rows.get("shop.orders"), Some(&7));
    assert_eq!(committed_offsets(&t.catalog, "orders").await, (0..7).collect::<Vec<_>>());
}

/// A [`MemorySource`] that reports a rebalance when the test says so.
struct Rebalanced {
    inner: MemorySource,
    assigned: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[async_trait::async_trait]
impl floe_sink::source::Source for Rebalanced {
    async fn seek(&mut self, committed: &floe_sink::source::Positions) -> std::io::Result<()> {
        self.inner.seek(committed).await
    }

    async fn next_batch(&mut self) -> std::io::Result<Option<Vec<floe_sink::source::SourceRecord>>> {
        self.inner.next_batch().await
    }

    fn pause(&mut self, partitions: &[String]) {
        self.inner.pause(partitions)
    }

    async fn resume(&mut self, partitions: &[String], from: &floe_sink::source::Positions) -> std::io::Result<()> {
        self.inner.resume(partitions, from).await
    }

    fn reassigned(&mut self) -> bool {
        self.assigned.swap(false, std::sync::atomic::Ordering::AcqRel)
    }
}

/// The latest `note` of order `id`, through the `_latest` view.
async fn latest_note(catalog: &dyn Catalog, id: i64) -> String {
    let batches = floe_views::query(catalog, &format!("SELECT note FROM shop.orders_latest WHERE id = {id}")).await.unwrap();
    batches[0].column(0).as_string::<i32>().value(0).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sink_whose_clock_is_behind_still_writes_above_what_others_committed() {
    let t = test_catalog().await;
    let gen = events(A);
    let order = |id: i64, note: &str| gen.upsert_message("u", id, &[json!(note)]);
    // Sink B, an hour behind, opens the table early (order 2, on its partition 1) and idles.
    let (b_ingestor, b_control, b_source, b_producer) = setup(&t.catalog, 1, "1h");
    let assigned = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let b_source = Rebalanced { inner: b_source, assigned: assigned.clone() };
    let b_run = b_ingestor.with_clock(|| chrono::Utc::now().timestamp_micros() - 3_600_000_000).run(b_source, &|_| {});
    let scenario = async {
        let (key, value) = order(2, "b");
        b_producer.send(A, 1, key, value);
        eventually("B committed order 2", || async { committed_offsets(&t.catalog, "orders").await.len() == 1 }).await;
        // Sink A (on time) writes order 1 twice on partition 0, then gives the partition up.
        let (a_ingestor, _a_control, a_source, a_producer) = setup(&t.catalog, 1, "1h");
        for note in ["a1", "a2"] {
            let (key, value) = order(1, note);
            a_producer.send(A, 0, key, value);
        }
        drop(a_producer);
        a_ingestor.run(a_source, &|_| {}).await.unwrap();
        // B takes partition 0 over after a rebalance. It holds what A read (offsets 0 and 1,
        // committed: skipped) and then B's update of order 1, which must rank above A's.
        assigned.store(true, std::sync::atomic::Ordering::Release);
        for note in ["a1", "a2", "b takes over"] {
            let (key, value) = order(1, note);
            b_producer.send(A, 0, key, value);
        }
        eventually("B committed its update", || async { committed_offsets(&t.catalog, "orders").await.len() == 4 }).await;
        assert!(b_control.send(Control::Shutdown));
    };
    let (b_report, ()) = tokio::join!(b_run, scenario);
    assert!(b_report.unwrap().failed_tables.is_empty());
    assert_eq!(latest_note(&t.catalog, 1).await, "b takes over", "the later change wins, though its sink's clock is behind");
}

/// Batches are decoded ahead of the loop against the table as it was; a record decoded before
/// an earlier record of its batch added a column must be decoded again, against the column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_decoded_ahead_of_a_new_column_is_typed_by_it() {
    let t = test_catalog().await;
    let before = TableEvents::new(A, vec![Column::new("note", "string")]).without_schemas();
    let after = TableEvents::new(A, vec![Column::new("note", "string"), Column::new("amount", "double")]).without_schemas();
    // Past the first batches (decoded on the loop while the table is being created), so the
    // new column arrives in a batch decoded ahead.
    let mut lines: Vec<String> = (0..3000).map(|id| before.upsert("c", id, &[json!("old")])).collect();
    // Schemaless: 1.5 makes `amount` a double; the 2 after it is a double by the table's
    // column, where on its own it would be a long (which the double column cannot take back).
    lines.push(after.upsert("c", 3000, &[json!("new"), json!(1.5)]));
    lines.push(after.upsert("c", 3001, &[json!("new"), json!(2)]));
    let source = floe_sink::source::file::from_reader(Box::new(std::io::Cursor::new(lines.join("\n").into_bytes())), "test".into());
    let report = Ingestor::new(&t.catalog, SinkConfig::default()).run(source, &|_| {}).await.unwrap();
    assert!(report.paused_tables.is_empty() && report.failed_tables.is_empty(), "{report:?}");
    assert_eq!((report.dead_letters, report.rows.get("shop.orders")), (0, Some(&3002)), "{report:?}");
    let sql = "SELECT id, amount FROM shop.orders_latest WHERE amount IS NOT NULL ORDER BY id";
    let batches = floe_views::query(&t.catalog, sql).await.unwrap();
    let amounts = batches[0].column(1).as_primitive::<arrow_array::types::Float64Type>().values().to_vec();
    assert_eq!(amounts, vec![1.5, 2.0]);
}
