//! The compactor against real ingest: the `_latest` view is identical before and after
//! compaction for random change streams, compacted tables hold one row per live key and are
//! readable by PyIceberg and DuckDB, compaction during ingest loses nothing, concurrent
//! compactions conflict cleanly, and a table larger than the memory limit compacts.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::*;
use floe_catalog::{Catalog, SqlCatalog};
use floe_compactor::{compact_table, CompactOptions};
use floe_sink::source::file::from_reader;
use floe_sink::testing::{Column, TableEvents};
use floe_sink::{Ingestor, SinkConfig};
use serde_json::{json, Value};

/// A tiny deterministic RNG (xorshift64*), so every seed replays the same stream.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn base_columns() -> Vec<Column> {
    vec![Column::new("name", "string"), Column::new("score", "int32")]
}

/// Inserts, updates, deletes, truncates and primary-key changes over `keys` keys; half-way the
/// source adds a column and widens `score` to int64.
fn random_stream(seed: u64, events: usize, keys: i64, model: &mut BTreeMap<i64, Value>) -> Vec<String> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
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
        match rng.below(100) {
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
            let after = latest(&t.catalog).await;
            assert_eq!(after, before, "seed {seed} round {round}: compaction changed the view");
            // From now on the view reads the compaction output apart from later appends (when the
            // compaction wrote any rows: a stream ending in a truncate leaves none).
            let split = floe_views::query(&t.catalog, "SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'floe_internal'").await.unwrap();
            let expected = if report.rows_out > 0 { 2 } else { 0 };
            assert_eq!(json_rows(&split)[0]["n"], json!(expected), "the latest view uses the compacted/delta split: {report:?}, {} live keys", model.len());
            // Exactly one row per live key, and nothing else.
            let raw = floe_views::query(&t.catalog, "SELECT count(*) AS n, count(DISTINCT id) AS k FROM prop.items").await.unwrap();
            let raw = json_rows(&raw);
            assert_eq!(raw[0]["n"], json!(model.len()), "seed {seed} round {round}: {raw:?}");
            assert_eq!(raw[0]["k"], json!(model.len()));
        }
    }
}

#[tokio::test]
async fn compacted_table_is_readable_by_pyiceberg_and_duckdb_with_no_file_twice() {
    let t = floe_catalog::testing::test_catalog().await;
    let mut model = BTreeMap::new();
    ingest_lines(&t.catalog, &random_stream(77, 300, 60, &mut model), "a").await;
    compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
    ingest_lines(&t.catalog, &random_stream(78, 100, 60, &mut model), "b").await;
    compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();

    let table = t.catalog.load_table(&ident()).await.unwrap();
    let live = table.live_files().await.unwrap();
    let paths: HashSet<&str> = live.iter().map(|f| f.data_file.file_path()).collect();
    assert_eq!(paths.len(), live.len(), "a data file is referenced twice");

    let read = run_python_json("read_tables.py", &[&data_dir_arg(t.dir.path()), "prop.items"]);
    let ids: Vec<i64> = model.keys().copied().collect();
    assert_eq!(read["prop.items"]["pyiceberg"].as_array().unwrap().len(), model.len());
    let duck: Vec<i64> = read["prop.items"]["duckdb_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    assert_eq!(duck, ids);
}

#[tokio::test]
async fn compaction_during_ingest_loses_and_duplicates_nothing() {
    let t = floe_catalog::testing::test_catalog().await;
    let mut model = BTreeMap::new();
    ingest_lines(&t.catalog, &random_stream(5, 400, 80, &mut model), "before").await;
    let later = random_stream(6, 400, 80, &mut model);
    // Small batches, so the sink commits many times while the compaction runs.
    let config = SinkConfig::parse("[sink]\nbatch_rows = 20\n", "test").unwrap();
    let text = later.join("\n") + "\n";
    let source = from_reader(Box::new(std::io::Cursor::new(text.into_bytes())), "during".into());
    let ingest = Ingestor::new(&t.catalog, config).run(source, &|_| {});
    // The real grace period: the sink has files written but not yet committed while the
    // compactor cleans up, and those must not be mistaken for orphans.
    let (id, options) = (ident(), CompactOptions { snapshot_retention: Duration::ZERO, ..Default::default() });
    let compact = compact_table(&t.catalog, &id, &options);
    let (ingested, compacted) = tokio::join!(ingest, compact);
    let ingested = ingested.unwrap();
    let compacted = compacted.unwrap();
    assert!(ingested.commits > 1);

    assert_eq!(latest(&t.catalog).await, model_rows(&model));
    // Every row is either a compaction output or an append after the compaction's base.
    let total = json_rows(&floe_views::query(&t.catalog, "SELECT count(*) AS n FROM prop.items").await.unwrap());
    let appended_after: u64 = ingested.rows.values().sum();
    let table = t.catalog.load_table(&ident()).await.unwrap();
    let positions = floe_catalog::layout::committed_positions(&table);
    assert_eq!(positions.get("during/0").copied(), Some(later.len() as i64), "sink progress survives the replace");
    assert!(total[0]["n"].as_u64().unwrap() <= compacted.rows_out + appended_after);
    // A second full compaction gives exactly one row per live key.
    compact_table(&t.catalog, &ident(), &test_options()).await.unwrap();
    let raw = json_rows(&floe_views::query(&t.catalog, "SELECT count(*) AS n FROM prop.items").await.unwrap());
    assert_eq!(raw[0]["n"], json!(model.len()));
}

#[tokio::test]
async fn two_compactions_of_one_table_conflict_cleanly() {
    let t = floe_catalog::testing::test_catalog().await;
    let mut model = BTreeMap::new();
    ingest_lines(&t.catalog, &random_stream(9, 300, 50, &mut model), "a").await;
    let options = test_options();
    let id = ident();
    let (a, b) = tokio::join!(compact_table(&t.catalog, &id, &options), compact_table(&t.catalog, &id, &options));
    let rewrote = |r: &Result<floe_compactor::CompactionReport, _>| matches!(r, Ok(report) if report.snapshot_id.is_some());
    assert!(rewrote(&a) ^ rewrote(&b), "exactly one compaction commits: {a:?} / {b:?}");
    for result in [&a, &b] {
        if let Err(e) = result {
            assert!(e.to_string().contains("conflict"), "{e}");
        }
    }
    assert_eq!(latest(&t.catalog).await, model_rows(&model));
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
    let rows = json_rows(&floe_views::query(&t.catalog, "SELECT id, name, score FROM prop.items_latest").await.unwrap());
    assert_eq!(rows, model_rows(&model));
}
