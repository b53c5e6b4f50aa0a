//! Ingest throughput: Debezium JSON events (schema envelope, as Kafka carries them) decoded,
//! written and committed to Iceberg by floe, against the ceiling of the same rows written by
//! arrow-rs straight to one Parquet file, measured in the same run.
//!
//! `cargo bench --bench ingest_throughput` (`FLOE_BENCH_EVENTS`, default 100000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use floe_sink::source::file::from_reader;
use floe_sink::testing::{Column, TableEvents};
use floe_sink::{Ingestor, SinkConfig};
use serde_json::{json, Value};

fn columns() -> Vec<Column> {
    vec![
        Column::new("name", "string"),
        Column::new("status", "string"),
        Column::new("score", "int32"),
        Column::new("amount", "double"),
        Column::new("active", "boolean"),
    ]
}

fn values(i: usize) -> Vec<Value> {
    vec![
        json!(format!("customer {i}")),
        json!(["new", "active", "churned"][i % 3]),
        json!(i as i64 % 10_000),
        json!(i as f64 * 0.25),
        json!(i.is_multiple_of(2)),
    ]
}

/// N events over N/4 keys: creates, then updates.
fn events(n: usize) -> Vec<String> {
    let gen = TableEvents::new("pg.bench.customers", columns());
    let keys = (n / 4).max(1);
    (0..n).map(|i| gen.upsert(if i < keys { "c" } else { "u" }, (i % keys) as i64, &values(i))).collect()
}

fn floe_ingest(lines: &[String], runtime: &tokio::runtime::Runtime) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    let text = lines.join("\n") + "\n";
    runtime.block_on(async {
        let catalog = floe_catalog::SqlCatalog::open_embedded(dir.path()).await.unwrap();
        let start = Instant::now();
        let source = from_reader(Box::new(std::io::Cursor::new(text.into_bytes())), "bench".into());
        let report = Ingestor::new(&catalog, SinkConfig::default()).run(source, &|_| {}).await.unwrap();
        assert_eq!(report.rows.values().sum::<u64>(), lines.len() as u64);
        start.elapsed()
    })
}

/// The same rows (source columns plus floe's five metadata columns), already flat, decoded by
/// arrow-json and written by parquet's ArrowWriter: no Debezium decoding, no catalog.
fn arrow_parquet(n: usize) -> Duration {
    use arrow_schema::{DataType, Field, Schema, TimeUnit};
    let tz = Some("+00:00".into());
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, true),
        Field::new("status", DataType::Utf8, true),
        Field::new("score", DataType::Int32, true),
        Field::new("amount", DataType::Float64, true),
        Field::new("active", DataType::Boolean, true),
        Field::new("_op", DataType::Utf8, false),
        Field::new("_op_ts", DataType::Timestamp(TimeUnit::Microsecond, tz.clone()), false),
        Field::new("_source_ts", DataType::Timestamp(TimeUnit::Microsecond, tz), true),
        Field::new("_src_partition", DataType::Int32, false),
        Field::new("_src_offset", DataType::Int64, false),
    ]));
    let keys = (n / 4).max(1);
    let rows: Vec<Value> = (0..n)
        .map(|i| {
            let v = values(i);
            json!({"id": i % keys, "name": v[0], "status": v[1], "score": v[2], "amount": v[3], "active": v[4],
                   "_op": "c", "_op_ts": 1_700_000_000_000_000i64 + i as i64, "_source_ts": 1_700_000_000_000_000i64,
                   "_src_partition": 0, "_src_offset": i})
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).build_decoder().unwrap();
    let file = std::fs::File::create(dir.path().join("out.parquet")).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .build();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    for chunk in rows.chunks(8192) {
        decoder.serialize(chunk).unwrap();
        let batch: RecordBatch = decoder.flush().unwrap().unwrap();
        writer.write(&batch).unwrap();
    }
    writer.close().unwrap();
    start.elapsed()
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let default = if std::env::args().any(|a| a == "--bench") { 100_000 } else { 2_000 };
    let n: usize = std::env::var("FLOE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lines = events(n);
    let floe = floe_ingest(&lines, &runtime);
    let ceiling = arrow_parquet(n);
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!("ingest_throughput: {n} Debezium JSON events (schema envelope), 5 columns + key");
    println!("  floe ingest → committed Iceberg   {:>10.0} events/s  ({:.2?})", rate(floe), floe);
    println!("  arrow-rs → Parquet (ceiling)      {:>10.0} rows/s    ({:.2?})", rate(ceiling), ceiling);
    println!("  ratio floe / ceiling              {:>10.2}", rate(floe) / rate(ceiling));
}
