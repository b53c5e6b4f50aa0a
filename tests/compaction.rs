//! The compactor against real ingest: the `_latest` view is identical before and after
//! compaction for random change streams, compacted tables hold one row per live key and are
//! readable by PyIceberg and DuckDB, compaction during ingest loses nothing, concurrent
//! compactions conflict cleanly, and a table larger than the memory limit compacts.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use floe_catalog::{Catalog, SqlCatalog};
use floe_compactor::{compact_table, CompactOptions, CompactionKind, PlanPolicy};
use floe_sink::source::file::from_reader;
use floe_sink::testing::{Column, TableEvents};
use floe_sink::{Ingestor, SinkConfig};
use serde_json::{json, Value};

fn base_columns() -> Vec<Column> {
    vec![Column::new("name", "string"), Column::new("score", "int32")]
}

/// Inserts, updates, deletes, truncates and primary-key changes over `keys` keys; half-way the
/// source adds a column and widens `score` to int64.
fn random_stream(seed: u64, events: usize, keys: i64, model: &mut BTreeMap<i64, Value>) -> Vec<String> {
    random_stream_with(seed, events, keys, true, model)
}

/// As [`random_stream`]; without `truncates`, the events that would truncate upsert instead.
fn random_stream_with(seed: u64, events: usize, keys: i64, truncates: bool, model: &mut BTreeMap<i64, Value>) -> Vec<String> {
    let mut rng = Rng::seeded(seed);
    let narrow = TableEvents::new("pg.prop.items", base_columns());
    let mut wide_columns = base_columns();
    wide_columns[1] = Column::new("score", "int64");
    wide_columns.push(Column::new("extra", "string"));
    let wide = TableEvents::new("pg.prop.items", wide_columns);
    let mut lines = vec![];
    for i in 0..events {
        let evolved = i >= events / 2;
        let gen = if evolved { &wide } else { &narrow };
        let id = rng.below(keys as u64) as i64;
        let score = if evolved { 3_000_000_000 + rng.below(1000) as i64 } else { rng.below(1000) as i64 };
        let mut values = vec![json!(format!("n{seed}-{i}")), json!(score)];
        if evolved {
            values.push(json!(format!("x{i}")));
        }
        let mut row = json!({"id": id, "name": values[0], "score": score});
        if evolved {
            row["extra"] = values[2].clone();
        }
        let dice = match rng.below(100) {
            98.. if !truncates => 0,
            dice => dice,
        };
        match dice {
            0..=54 => {
                let op = if model.contains_key(&id) { "u" } else { "c" };
                lines.push(gen.upsert(op, id, &values));
                model.insert(id, row);
            }
            55..=79 => {
                lines.extend(gen.delete(id));
                model.remove(&id);
            }
            80..=97 => {
                // Primary-key change: delete the old key, create the new one.
                let new_id = keys + rng.below(keys as u64) as i64;
                lines.extend(gen.delete(id));
                model.remove(&id);
                row["id"] = json!(new_id);
                lines.push(gen.upsert("c", new_id, &values));
                model.insert(new_id, row);
            }
            _ => {
                lines.push(gen.truncate());
                model.clear();
            }
        }
    }
    lines
}

async fn ingest_lines(catalog: &SqlCatalog, lines: &[String], stream: &str) {
    let text = lines.join("\n") + "\n";
    let source = from_reader(Box::new(std::io::Cursor::new(text.into_bytes())), stream.into());
    let report = Ingestor::new(catalog, SinkConfig::default()).run(source, &|_| {}).await.unwrap();
    assert_eq!(report.dead_letters, 0, "{report:?}");
}

async fn latest(catalog: &SqlCatalog) -> Vec<Value> {
    let batches = floe_views::query(catalog, "SELECT id, name, score, extra FROM prop.items_latest ORDER BY id").await.unwrap();
    json_rows(&batches)
}

fn model_rows(model: &BTreeMap<i64, Value>) -> Vec<Value> {
    let mut rows: Vec<Value> = model.values().cloned().collect();
    rows.iter_mut().for_each(strip_nulls);
    rows.sort_by_key(|r| r.to_string());
    rows
}

fn test_options() -> CompactOptions {
    CompactOptions { snapshot_retention: Duration::ZERO, orphan_grace: Duration::ZERO, ..Default::default() }
}

/// Compacts incrementally whenever the table has compaction output, however much changed.
fn incremental_options() -> CompactOptions {
    let policy = PlanPolicy { full_rewrite_ratio: f64::INFINITY, max_delete_files: usize::MAX };
    CompactOptions { policy, ..test_options() }
}

/// Exactly one row per live key in the raw table (position deletes applied), and nothing else.
async fn assert_one_row_per_live_key(catalog: &SqlCatalog, model: &BTreeMap<i64, Value>, context: &str) {
    let raw = floe_views::query(catalog, "SELECT count(*) AS n, count(DISTINCT id) AS k FROM prop.items").await.unwrap();
    let raw = json_rows(&raw);
    assert_eq!(raw[0]["n"], json!(model.len()), "{context}: {raw:?}");
    assert_eq!(raw[0]["k"], json!(model.len()), "{context}");
}

fn ident() -> floe_catalog::iceberg::TableIdent {
    floe_sink::config::parse_table_name("prop.items").unwrap()
}

#[tokio::test]
async fn latest_view_is_identical_before_and_after_rounds_of_compaction() {
    for seed in 1..=6u64 {
        let t = floe_catalog::testing::test_catalog().await;
        let mut model = BTreeMap::new();
        for round in 0..3 {
            let lines = random_stream(seed * 10 + round, 150, 40, &mut model);
            ingest_lines(&t.catalog, &lines, &format!("round-{round}")).await;
            let before = latest(&t.catalog).await;
            assert_eq!(before, model_rows(&model), "seed {seed} round {round}: view differs from the model");
            let report = compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
            assert!(report.skipped.is_none(), "{report:?}");
            assert!(!report.spilled, "a small table is rewritten in memory: {report:?}");
            let after = latest(&t.catalog).await;
            assert_eq!(after, before, "seed {seed} round {round}: compaction changed the view");
            // From now on the view reads the compaction output apart from later appends (when the
            // compaction wrote any rows: a stream ending in a truncate leaves none).
            let explained = json_rows(&floe_views::query(&t.catalog, "EXPLAIN SELECT * FROM prop.items_latest").await.unwrap());
            let plan = explained.iter().find(|r| r["plan_type"] == "logical_plan").expect("a logical plan")["plan"].to_string();
            // The view's inputs: every file, or the compacted and delta files apart.
            let split = plan.contains("TableScan: inputs.compacted") && plan.contains("TableScan: inputs.delta");
            assert_eq!(split, report.rows_out > 0, "the latest view uses the compacted/delta split: {report:?}\n{plan}");
            assert_one_row_per_live_key(&t.catalog, &model, &format!("seed {seed} round {round}")).await;
        }
    }
}

#[tokio::test]
async fn incremental_compaction_keeps_the_view_identical_over_many_rounds() {
    let mut kinds = vec![];
    for seed in 1..=4u64 {
        let t = floe_catalog::testing::test_catalog().await;
        let mut model = BTreeMap::new();
        for round in 0..5 {
            // Truncates only in the last round of odd seeds: an incremental plan must then fall
            // back to a full rewrite (a truncate event is the only line without a key).
            let truncates = round == 4 && seed % 2 == 1;
            let lines = random_stream_with(seed * 100 + round, 60, 50, truncates, &mut model);
            ingest_lines(&t.catalog, &lines, &format!("round-{round}")).await;
            let before = latest(&t.catalog).await;
            assert_eq!(before, model_rows(&model), "seed {seed} round {round}: view differs from the model");
            let report = compact_table(&t.catalog, &ident(), &incremental_options()).await.unwrap();
            let context = format!("seed {seed} round {round}: {report:?}");
            kinds.push(report.kind);
            assert_eq!(latest(&t.catalog).await, before, "{context}: compaction changed the view");
            assert_one_row_per_live_key(&t.catalog, &model, &context).await;
            let expected = if round == 0 || lines.iter().any(|l| l.contains("\"key\":null")) {
                CompactionKind::Full
            } else {
                CompactionKind::Incremental
            };
            assert_eq!(report.kind, Some(expected), "{context}");
        }
    }
    assert!(kinds.contains(&Some(CompactionKind::Incremental)));
}

#[tokio::test]
async fn compaction_policy_rewrites_fully_once_churn_passes_the_ratio() {
    let t = floe_catalog::testing::test_catalog().await;
    let mut model = BTreeMap::new();
    ingest_lines(&t.catalog, &random_stream_with(1, 400, 200, false, &mut model), "a").await;
    let first = compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
    assert_eq!(first.kind, Some(CompactionKind::Full), "{first:?}");
    // A small change compacts incrementally; a change larger than the ratio rewrites fully.
    ingest_lines(&t.catalog, &random_stream_with(2, 3, 200, false, &mut model), "b").await;
    let small = compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
    assert_eq!(small.kind, Some(CompactionKind::Incremental), "{small:?}");
    assert!(small.rows_in <= 4, "an incremental compaction reads only the new rows: {small:?}");
    ingest_lines(&t.catalog, &random_stream_with(3, 300, 200, false, &mut model), "c").await;
    let large = compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
    assert_eq!(large.kind, Some(CompactionKind::Full), "{large:?}");
    assert_eq!(latest(&t.catalog).await, model_rows(&model));
    // A full rewrite drops every position-delete file.
    let table = t.catalog.load_table(&ident()).await.unwrap();
    assert!(table.live_files().await.unwrap().iter().all(|f| f.is_data()));
}

#[tokio::test]
async fn compacted_table_is_readable_by_pyiceberg_and_duckdb_with_no_file_twice() {
    let t = floe_catalog::testing::test_catalog().await;
    let mut model = BTreeMap::new();
    ingest_lines(&t.catalog, &random_stream(77, 300, 60, &mut model), "a").await;
    compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
    // The second compaction is incremental: PyIceberg and DuckDB must apply its position deletes.
    ingest_lines(&t.catalog, &random_stream_with(78, 100, 60, false, &mut model), "b").await;
    let second = compact_table(&t.catalog, &ident(), &incremental_options()).await.unwrap();
    assert_eq!(second.kind, Some(CompactionKind::Incremental), "{second:?}");
    assert!(second.rows_superseded > 0, "{second:?}");

    let table = t.catalog.load_table(&ident()).await.unwrap();
    let live = table.live_files().await.unwrap();
    let paths: HashSet<&str> = live.iter().map(|f| f.data_file.file_path()).collect();
    assert_eq!(paths.len(), live.len(), "a data file is referenced twice");

    let read = run_python_json("read_tables.py", &[&data_dir_arg(t.dir.path()), "prop.items"]);
    let ids: Vec<i64> = model.keys().copied().collect();
    assert_eq!(read["prop.items"]["pyiceberg"].as_array().unwrap().len(), model.len());
    assert!(read["prop.items"]["delete_files"].as_u64().unwrap() > 0, "PyIceberg plans the position deletes");
    let duck: Vec<i64> = read["prop.items"]["duckdb_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(duck, ids);
}

#[tokio::test]
async fn compaction_during_ingest_loses_and_duplicates_nothing() {
    compact_during_ingest(Default::default(), false).await;
}

#[tokio::test]
async fn incremental_compaction_during_ingest_loses_and_duplicates_nothing() {
    let report = compact_during_ingest(incremental_options().policy, true).await;
    assert_eq!(report.kind, Some(CompactionKind::Incremental), "{report:?}");
}

/// Ingests while a compaction runs (after a first full one when `compacted_first`); checks the
/// view and the sink's progress afterwards.
async fn compact_during_ingest(policy: PlanPolicy, compacted_first: bool) -> floe_compactor::CompactionReport {
    let t = floe_catalog::testing::test_catalog().await;
    let mut model = BTreeMap::new();
    ingest_lines(&t.catalog, &random_stream_with(5, 400, 80, false, &mut model), "before").await;
    if compacted_first {
        compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
        ingest_lines(&t.catalog, &random_stream_with(4, 40, 80, false, &mut model), "between").await;
    }
    let later = random_stream(6, 400, 80, &mut model);
    // Small batches, so the sink commits many times while the compaction runs.
    let config = SinkConfig::parse("[sink]\nbatch_rows = 20\n", "test").unwrap();
    let text = later.join("\n") + "\n";
    let source = from_reader(Box::new(std::io::Cursor::new(text.into_bytes())), "during".into());
    let ingest = Ingestor::new(&t.catalog, config).run(source, &|_| {});
    // The real grace period: the sink has files written but not yet committed while the
    // compactor cleans up, and those must not be mistaken for orphans.
    let (id, options) = (ident(), CompactOptions { snapshot_retention: Duration::ZERO, policy, ..Default::default() });
    let compact = compact_table(&t.catalog, &id, &options);
    let (ingested, compacted) = tokio::join!(ingest, compact);
    let ingested = ingested.unwrap();
    let compacted = compacted.unwrap();
    assert!(ingested.commits > 1);

    assert_eq!(latest(&t.catalog).await, model_rows(&model));
    let table = t.catalog.load_table(&ident()).await.unwrap();
    let positions = floe_catalog::layout::committed_positions(&table);
    assert_eq!(positions.get("during/0").copied(), Some(later.len() as i64), "sink progress survives the replace");
    // Another compaction leaves exactly one row per live key.
    compact_table(&t.catalog, &ident(), &CompactOptions { policy, ..test_options() }).await.unwrap();
    assert_eq!(latest(&t.catalog).await, model_rows(&model));
    assert_one_row_per_live_key(&t.catalog, &model, "after a second compaction").await;
    compacted
}

#[tokio::test]
async fn two_compactions_of_one_table_conflict_cleanly() {
    for incremental in [false, true] {
        let t = floe_catalog::testing::test_catalog().await;
        let mut model = BTreeMap::new();
        ingest_lines(&t.catalog, &random_stream_with(9, 300, 50, false, &mut model), "a").await;
        let options = if incremental {
            compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
            ingest_lines(&t.catalog, &random_stream_with(10, 30, 50, false, &mut model), "b").await;
            incremental_options()
        } else {
            test_options()
        };
        let id = ident();
        let (a, b) = tokio::join!(compact_table(&t.catalog, &id, &options), compact_table(&t.catalog, &id, &options));
        let rewrote = |r: &Result<floe_compactor::CompactionReport, _>| matches!(r, Ok(report) if report.snapshot_id.is_some());
        assert!(rewrote(&a) ^ rewrote(&b), "exactly one compaction commits: {a:?} / {b:?}");
        for result in [&a, &b] {
            match result {
                Ok(report) if incremental && report.snapshot_id.is_some() => {
                    assert_eq!(report.kind, Some(CompactionKind::Incremental))
                }
                Ok(_) => {}
                Err(e) => assert!(e.to_string().contains("conflict"), "{e}"),
            }
        }
        assert_eq!(latest(&t.catalog).await, model_rows(&model));
        assert_one_row_per_live_key(&t.catalog, &model, "after the race").await;
    }
}

#[tokio::test]
async fn a_table_larger_than_the_memory_limit_compacts() {
    let t = floe_catalog::testing::test_catalog().await;
    let gen = TableEvents::new("pg.prop.items", vec![Column::new("name", "string"), Column::new("score", "int32")]);
    let mut model = BTreeMap::new();
    let padding = "p".repeat(800);
    let mut lines = vec![];
    for i in 0..60_000i64 {
        let id = (i * 7919) % 20_000;
        let name = format!("{padding}{i}");
        lines.push(gen.upsert("c", id, &[json!(name), json!(i % 1000)]));
        model.insert(id, json!({"id": id, "name": name, "score": i % 1000}));
    }
    ingest_lines(&t.catalog, &lines, "big").await;
    let table = t.catalog.load_table(&ident()).await.unwrap();
    let bytes_on_disk: u64 = table.live_files().await.unwrap().iter().map(|f| f.data_file.file_size_in_bytes()).sum();
    let memory_limit = 12 << 20;
    let raw_size = 60_000 * 800;
    assert!(raw_size > 3 * memory_limit, "the data ({raw_size} B raw, {bytes_on_disk} B on disk) must exceed the limit");
    let options = CompactOptions { memory_limit: memory_limit as usize, ..test_options() };
    let report = compact_table(&t.catalog, &ident(), &options).await.unwrap();
    assert_eq!(report.rows_out, 20_000);
    assert!(report.spilled, "the winners alone exceed the limit: the spilling plan must have run");
    let rows = json_rows(&floe_views::query(&t.catalog, "SELECT id, name, score FROM prop.items_latest").await.unwrap());
    assert_eq!(rows, model_rows(&model));
}
