//! Compaction against DuckDB doing the same latest-per-key rewrite (`QUALIFY row_number() …`,
//! then writing Parquet) over the same Parquet files, in the same run: a full compaction of a
//! table with several changes per key, then a compaction after 1% of the keys changed.
//! Reports wall time and peak memory (max RSS of each child process).
//!
//! `cargo bench --bench compaction` (`FLOE_BENCH_KEYS`, default 200000; 5 changes per key).
//! Needs the Python venv with duckdb (`.ci/test` creates it; or set FLOE_PYTHON).

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use floe_catalog::append::append;
use floe_catalog::iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use floe_catalog::iceberg::{NamespaceIdent, TableCreation, TableIdent};
use floe_catalog::layout::metadata_fields;
use floe_catalog::writer::{table_arrow_schema, write_data_files};
use floe_catalog::{Catalog, FloeTable, RetryPolicy, SqlCatalog};

const CHANGES_PER_KEY: i64 = 5;

fn schema() -> Schema {
    let mut fields = vec![
        Arc::new(NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long))),
        Arc::new(NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String))),
        Arc::new(NestedField::optional(3, "score", Type::Primitive(PrimitiveType::Int))),
    ];
    fields.extend(metadata_fields(&mut 4));
    Schema::builder().with_fields(fields).with_identifier_field_ids(vec![1]).build().unwrap()
}

/// Rows for `ids`, change number `round`; every 10th key's last change is a delete.
fn batch(table: &FloeTable, ids: &[i64], round: i64, offset_base: i64) -> RecordBatch {
    let n = ids.len();
    let ops: Vec<&str> = ids.iter().map(|id| if round == CHANGES_PER_KEY - 1 && id % 10 == 0 { "d" } else { "u" }).collect();
    let ts: Vec<i64> = (0..n as i64).map(|i| 1_700_000_000_000_000 + offset_base + i).collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(ids.iter().map(|id| format!("item {id} v{round}")).collect::<Vec<_>>())),
        Arc::new(Int32Array::from(ids.iter().map(|id| (id % 1000) as i32 + round as i32).collect::<Vec<_>>())),
        Arc::new(StringArray::from(ops)),
        Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("+00:00")),
        Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("+00:00")),
        Arc::new(Int32Array::from(vec![0; n])),
        Arc::new(Int64Array::from((0..n as i64).map(|i| offset_base + i).collect::<Vec<_>>())),
    ];
    RecordBatch::try_new(table_arrow_schema(table).unwrap(), columns).unwrap()
}

async fn build_table(catalog: &SqlCatalog, keys: i64) -> TableIdent {
    let ident = TableIdent::new(NamespaceIdent::new("bench".into()), "items".into());
    catalog.create_namespace(ident.namespace()).await.unwrap();
    let creation = TableCreation::builder().name("items".into()).schema(schema()).build();
    let mut table = catalog.create_table(&ident, creation).await.unwrap();
    let ids: Vec<i64> = (0..keys).map(|i| (i * 7919) % keys).collect();
    for round in 0..CHANGES_PER_KEY {
        let files = write_data_files(&table, [batch(&table, &ids, round, round * keys)]).await.unwrap();
        table = append(catalog, &ident, files, Default::default(), &RetryPolicy::default()).await.unwrap();
    }
    ident
}

/// Changes 1% of the keys, spread over the whole key range; `day` picks which.
async fn change_one_percent(catalog: &SqlCatalog, ident: &TableIdent, keys: i64, day: i64) {
    let table = catalog.load_table(ident).await.unwrap();
    let ids: Vec<i64> = (0..keys / 100).map(|i| i * 100 + day).collect();
    let round = CHANGES_PER_KEY - 1 + day;
    let files = write_data_files(&table, [batch(&table, &ids, round, round * keys)]).await.unwrap();
    append(catalog, ident, files, Default::default(), &RetryPolicy::default()).await.unwrap();
}

/// With FLOE_BENCH_DIR, a copy of the table directory as it is now, in `<dir>.<name>`, to
/// replay and profile one compaction.
fn keep_copy(dir: &Path, name: &str) {
    if std::env::var("FLOE_BENCH_DIR").is_ok() {
        let copy = format!("{}.{name}", dir.display());
        let status = Command::new("cp").args(["-a", &dir.display().to_string(), &copy]).status().unwrap();
        assert!(status.success(), "copying {} to {copy}", dir.display());
    }
}

/// Peak RSS (KiB) over the children waited for so far.
fn children_peak_rss_kib() -> i64 {
    nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN).expect("getrusage").max_rss()
}

/// Runs `floe compact` in a child; floe must be the first child so its peak RSS is readable.
/// Checks the kind of compaction floe chose (`full` or `incremental`).
fn floe_compact(data_dir: &Path, kind: &str) -> (Duration, i64) {
    let start = Instant::now();
    // FLOE_BENCH_VERBOSE=1 shows floe's phases; any other value is a log filter.
    let log = match std::env::var("FLOE_BENCH_VERBOSE") {
        Ok(v) if v == "1" => "floe_compactor=info".to_string(),
        Ok(filter) => filter,
        Err(_) => "warn".to_string(),
    };
    let mut args =
        vec!["--data-dir", data_dir.to_str().unwrap(), "--log", &log, "compact", "bench.items", "--snapshot-retention-secs", "86400"];
    if kind == "full" {
        args.push("--full");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_floe")).args(args).output().unwrap();
    let elapsed = start.elapsed();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&format!(": {kind}: ")), "expected a {kind} compaction: {stdout}");
    (elapsed, children_peak_rss_kib())
}

fn duckdb_compact(files: &[String], out_dir: &Path) -> (Duration, i64, u64) {
    let python = std::env::var("FLOE_PYTHON").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python").into());
    let out = Command::new(python)
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/benches/duckdb_compact.py"))
        .arg(out_dir.join("duck.parquet"))
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (Duration::from_secs_f64(v["seconds"].as_f64().unwrap()), v["peak_rss_kib"].as_i64().unwrap(), v["rows_out"].as_u64().unwrap())
}

/// Time of one full read of the latest view (floe's reader, in process).
fn view_read(catalog: &SqlCatalog, runtime: &tokio::runtime::Runtime) -> Duration {
    runtime.block_on(async {
        let start = Instant::now();
        let batches = floe_views::query(catalog, "SELECT count(*), sum(score) FROM bench.items_latest").await.unwrap();
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 1);
        start.elapsed()
    })
}

async fn live_paths(catalog: &SqlCatalog, ident: &TableIdent) -> Vec<String> {
    let table = catalog.load_table(ident).await.unwrap();
    table.live_files().await.unwrap().iter().filter(|f| f.is_data()).map(|f| f.path().to_string()).collect()
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let default = if std::env::args().any(|a| a == "--bench") { 200_000 } else { 2_000 };
    let keys: i64 = std::env::var("FLOE_BENCH_KEYS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // FLOE_BENCH_DIR keeps the table in that (empty) directory, to profile `floe compact` on it.
    let kept = std::env::var("FLOE_BENCH_DIR").ok();
    let temp = tempfile::tempdir().unwrap();
    let dir = kept.as_deref().map(Path::new).unwrap_or(temp.path());
    let catalog = runtime.block_on(SqlCatalog::open_embedded(dir)).unwrap();
    let ident = runtime.block_on(build_table(&catalog, keys));

    let files = runtime.block_on(live_paths(&catalog, &ident));
    let view_before = view_read(&catalog, &runtime);
    keep_copy(dir, "before-full");
    let (floe_full, floe_rss) = floe_compact(dir, "full");
    let view_compacted = view_read(&catalog, &runtime);
    let (duck_full, duck_rss, duck_rows) = duckdb_compact(&files, dir);
    let rows_out = runtime.block_on(catalog.load_table(&ident)).unwrap().current_summary()["total-records"].parse::<u64>().unwrap();
    assert_eq!(rows_out, duck_rows, "floe and DuckDB keep the same rows");

    // A day in which 1% of the keys changed: floe compacts only the change; DuckDB has no
    // choice but to rewrite everything.
    runtime.block_on(change_one_percent(&catalog, &ident, keys, 1));
    let files = runtime.block_on(live_paths(&catalog, &ident));
    let view_delta = view_read(&catalog, &runtime);
    keep_copy(dir, "before-incremental");
    let (floe_incr, _) = floe_compact(dir, "incremental");
    let view_incr = view_read(&catalog, &runtime);
    let (duck_incr, _, _) = duckdb_compact(&files, dir);
    // The baseline an incremental compaction saves: a full rewrite of the same table after the
    // same kind of change.
    runtime.block_on(change_one_percent(&catalog, &ident, keys, 2));
    let (floe_full_again, _) = floe_compact(dir, "full");

    let rows = keys * CHANGES_PER_KEY;
    let ratio = |a: Duration, b: Duration| a.as_secs_f64() / b.as_secs_f64();
    println!("compaction: {rows} rows over {keys} keys ({CHANGES_PER_KEY} changes per key, 10% deleted) → {rows_out} rows");
    println!("  full         floe {:>9.2?} ({:>6} MiB peak)   DuckDB {:>9.2?} ({:>6} MiB peak)   time ratio floe/DuckDB {:.2}, memory ratio {:.2}",
        floe_full, floe_rss / 1024, duck_full, duck_rss / 1024, ratio(floe_full, duck_full), floe_rss as f64 / duck_rss as f64);
    println!(
        "  after 1%     floe incremental {:>9.2?}   DuckDB full rewrite {:>9.2?}   time ratio floe/DuckDB {:.3}",
        floe_incr,
        duck_incr,
        ratio(floe_incr, duck_incr)
    );
    println!("  incremental / full rewrite of the same table (floe {:.2?})  {:.3}", floe_full_again, ratio(floe_incr, floe_full_again));
    println!("  incremental / first full compaction (floe)  {:.3}", ratio(floe_incr, floe_full));
    println!(
        "  latest view read: uncompacted {:.2?}; compacted {:.2?} (ratio {:.2}); + 1% new {:.2?} (ratio {:.2}); incrementally compacted {:.2?} (ratio {:.2})",
        view_before,
        view_compacted,
        ratio(view_compacted, view_before),
        view_delta,
        ratio(view_delta, view_before),
        view_incr,
        ratio(view_incr, view_before),
    );
}
