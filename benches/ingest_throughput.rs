//! Ingest throughput: Debezium JSON events, with and without the schema envelope, decoded,
//! written and committed to Iceberg by floe, against two baselines in the same run: the ceiling
//! of the same rows written by arrow-rs straight to one Parquet file, and a plain Python pipeline
//! (json + pyarrow + PyIceberg, 10k events per commit). Then floe's peak memory at 1M and 10M
//! events streamed through `floe ingest -`, which must not grow with the input.
//!
//! `cargo bench --bench ingest_throughput` (`FLOE_BENCH_EVENTS`, default 200000;
//! `FLOE_BENCH_MEMORY=0` skips the memory runs; the Python baseline needs `FLOE_PYTHON`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use floe_sink::source::{Message, Positions, Source, SourceRecord};
use floe_sink::{Ingestor, SinkConfig};
use paired::{paired, Paired, PAIRS};
use serde_json::{json, Value};
use workload::{events, ndjson, ndjson_file, op_and_key, table, values};

#[path = "support/paired.rs"]
mod paired;
#[path = "support/workload.rs"]
mod workload;

/// The allocator the `floe` binary ships with, so in-process ingest measures what users run.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// `floe ingest <input>`: the NDJSON file read by floe's file source, as users run it.
fn floe_ingest(input: &Path, events: usize, runtime: &tokio::runtime::Runtime) -> Duration {
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let catalog = floe_catalog::SqlCatalog::open_embedded(dir.path()).await.unwrap();
        let start = Instant::now();
        let source = floe_sink::source::file::open(input, Some("bench".into())).unwrap();
        let report = Ingestor::new(&catalog, SinkConfig::default()).run(source, &|_| {}).await.unwrap();
        let elapsed = start.elapsed();
        assert_eq!(report.rows.values().sum::<u64>(), events as u64);
        elapsed
    })
}

/// The same events as Kafka messages: key and value bytes as the broker delivers them, no NDJSON
/// line to unescape.
fn messages(n: usize, schemas: bool) -> Vec<SourceRecord> {
    let table = table(schemas);
    // One stream name shared by every record, as a Kafka source shares it.
    let stream: Arc<str> = "bench".into();
    (0..n)
        .map(|i| {
            let (op, key) = op_and_key(i, n);
            let (key, value) = table.upsert_message(op, key, &values(i));
            let message = Message::new("pg.bench.customers".into(), key.map(Into::into), value.map(Into::into));
            SourceRecord { stream: stream.clone(), partition: 0, offset: i as i64, raw: Default::default(), message: Ok(message) }
        })
        .collect()
}

/// `records` handed over in batches, as the Kafka source would poll them.
fn floe_ingest_messages(records: Vec<SourceRecord>, runtime: &tokio::runtime::Runtime) -> Duration {
    let n = records.len();
    let dir = tempfile::tempdir().unwrap();
    runtime.block_on(async {
        let catalog = floe_catalog::SqlCatalog::open_embedded(dir.path()).await.unwrap();
        let start = Instant::now();
        let report = Ingestor::new(&catalog, SinkConfig::default()).run(Polled(records.into_iter()), &|_| {}).await.unwrap();
        assert_eq!(report.rows.values().sum::<u64>(), n as u64);
        start.elapsed()
    })
}

/// Records already in memory, moved out 4,096 at a time, as the Kafka source hands them over.
struct Polled(std::vec::IntoIter<SourceRecord>);

#[async_trait::async_trait]
impl Source for Polled {
    async fn seek(&mut self, _: &Positions) -> std::io::Result<()> {
        Ok(())
    }

    async fn next_batch(&mut self) -> std::io::Result<Option<Vec<SourceRecord>>> {
        let batch: Vec<SourceRecord> = self.0.by_ref().take(4096).collect();
        Ok((!batch.is_empty()).then_some(batch))
    }

    fn pause(&mut self, _: &[String]) {}

    async fn resume(&mut self, _: &[String], _: &Positions) -> std::io::Result<()> {
        Ok(())
    }
}

/// The same rows as flat JSON values (source columns plus floe's five metadata columns), made
/// once for every run of the ceiling.
fn ceiling_rows(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            let v = values(i);
            json!({"id": op_and_key(i, n).1, "name": v[0], "status": v[1], "score": v[2], "amount": v[3], "active": v[4],
                   "_op": "c", "_op_ts": 1_700_000_000_000_000i64 + i as i64, "_source_ts": 1_700_000_000_000_000i64,
                   "_src_partition": 0, "_src_offset": i})
        })
        .collect()
}

/// The ceiling: `rows` decoded by arrow-json and written by parquet's ArrowWriter, with no
/// Debezium decoding and no catalog.
fn arrow_parquet(rows: &[Value]) -> Duration {
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

/// `benches/python_ingest.py` over the NDJSON file `input` floe read; `None` without
/// `FLOE_PYTHON`.
fn python_ingest(input: &Path) -> Option<Duration> {
    let python = std::env::var("FLOE_PYTHON").ok()?;
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/python_ingest.py");
    let out = Command::new(python).arg(script).arg(input).arg(dir.path().join("work")).output().unwrap();
    assert!(out.status.success(), "python baseline failed: {}", String::from_utf8_lossy(&out.stderr));
    let result: Value = serde_json::from_slice(&out.stdout).expect("one JSON line");
    Some(Duration::from_secs_f64(result["seconds"].as_f64().unwrap()))
}

/// Streams `n` events (cycling through `pattern`) into `floe ingest -`; returns its peak memory
/// in MiB as it reports it, and the time taken.
fn floe_ingest_streamed(n: usize, pattern: &[String]) -> (u64, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = std::io::BufWriter::with_capacity(1 << 20, child.stdin.take().unwrap());
    for line in pattern.iter().cycle().take(n) {
        stdin.write_all(line.as_bytes()).unwrap();
        stdin.write_all(b"\n").unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let elapsed = start.elapsed();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "floe ingest failed:\n{text}");
    let peak = text.lines().find_map(|l| l.strip_prefix("peak memory:")).expect("floe reports its peak memory");
    (peak.trim().trim_end_matches(" MiB").parse().unwrap(), elapsed)
}

/// The CPU time this process has used (user and system, from `/proc/self/stat`, in clock
/// ticks of 10 ms: Linux's USER_HZ). The CPU figure spans the whole run, catalog and cleanup
/// included, which the rate's clock leaves out.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(')').map_or(vec![], |(_, rest)| rest.split_whitespace().collect());
    let ticks: u64 = [11, 12].iter().filter_map(|&i| fields.get(i)?.parse::<u64>().ok()).sum();
    Duration::from_millis(ticks * 10)
}

fn main() {
    // `cargo test` runs benches without `--bench`: a quick smoke run keeps them working.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("FLOE_BENCH_EVENTS").ok().and_then(|v| v.parse().ok()).unwrap_or(if bench { 200_000 } else { 2_000 });
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let rate = |d: Duration| n as f64 / d.as_secs_f64();

    // `FLOE_BENCH_ONLY=messages` (or `lines`) runs only floe's Kafka-message (or NDJSON) path
    // with the envelope, once: for perf, nothing but that run follows the setup.
    // It prints the process's CPU time over the run too, which drifts less than a rate when
    // two builds are compared in alternating runs.
    // With `FLOE_BENCH_PERF_CTL` (the control FIFO of `perf record --control fifo:… -D -1`),
    // perf samples the run only, not the setup.
    let only = |name: &str, run: &dyn Fn() -> Duration| {
        let perf = |command: &str| {
            if let Ok(fifo) = std::env::var("FLOE_BENCH_PERF_CTL") {
                // Not created when missing: a wrong path is an error, not a file.
                let mut fifo = std::fs::OpenOptions::new().write(true).open(fifo).expect("perf's control FIFO");
                fifo.write_all(command.as_bytes()).expect("perf's control FIFO");
            }
        };
        let cpu = process_cpu();
        perf("enable\n");
        let elapsed = run();
        perf("disable\n");
        println!("  floe, {name} {:>10.0} events/s, {:.2} CPU s", rate(elapsed), process_cpu().saturating_sub(cpu).as_secs_f64());
    };
    match std::env::var("FLOE_BENCH_ONLY").as_deref() {
        Ok("messages") => {
            let records = std::cell::Cell::new(messages(n, true));
            return only("Kafka messages, envelope", &|| floe_ingest_messages(records.take(), &runtime));
        }
        Ok("lines") => {
            // `FLOE_BENCH_INPUT` keeps the file for the next run (made when it is missing), so
            // that alternating runs of two builds do not make the events again each time. A kept
            // file holds the events of the run that made it: keep `FLOE_BENCH_EVENTS` with it.
            let made;
            let input = match std::env::var_os("FLOE_BENCH_INPUT").map(PathBuf::from) {
                Some(kept) if kept.exists() => kept,
                Some(kept) => {
                    std::fs::write(&kept, ndjson(&events(n, true))).unwrap();
                    kept
                }
                None => {
                    made = ndjson_file(&ndjson(&events(n, true)));
                    made.path().to_owned()
                }
            };
            return only("NDJSON, envelope", &|| floe_ingest(&input, n, &runtime));
        }
        _ => {}
    }
    // Each floe figure is set against the ceiling in pairs of tries ([`paired`]).
    let rows = ceiling_rows(n);
    let against_ceiling = |run: &dyn Fn() -> Duration| paired(&|| rate(arrow_parquet(&rows)), &|| rate(run()));
    let describe = |paired: &Paired| paired.describe("events/s", "ceiling", "rows/s");
    println!("ingest_throughput: {n} Debezium JSON events, 5 columns + key; each path in {PAIRS} tries paired with the ceiling's");
    for (label, schemas) in [("schema envelope", true), ("no envelope    ", false)] {
        let input = ndjson_file(&ndjson(&events(n, schemas)));
        let lines_paired = against_ceiling(&|| floe_ingest(input.path(), n, &runtime));
        println!("  floe ingest, {label} → Iceberg {}", describe(&lines_paired));
        let records = messages(n, schemas);
        let messages_paired = against_ceiling(&|| floe_ingest_messages(records.clone(), &runtime));
        println!("    the same as Kafka messages (no NDJSON) {}", describe(&messages_paired));
        if schemas {
            match python_ingest(input.path()) {
                Some(python) => {
                    let python = rate(python);
                    println!(
                        "  Python json+pyarrow+PyIceberg, envelope   {python:>10.0} events/s  floe is {:.1}×",
                        lines_paired.subject / python
                    );
                }
                None => println!("  Python baseline skipped: set FLOE_PYTHON to a venv with pyiceberg"),
            }
        }
    }

    if std::env::var("FLOE_BENCH_MEMORY").is_ok_and(|v| v == "0") {
        return;
    }
    let pattern = events(100_000, true);
    let sizes: &[usize] = if bench { &[1_000_000, 10_000_000] } else { &[2_000, 20_000] };
    for &size in sizes {
        let (peak, elapsed) = floe_ingest_streamed(size, &pattern);
        println!("  peak memory, {size:>10} events via stdin: {peak:>5} MiB  ({:.0} events/s)", size as f64 / elapsed.as_secs_f64());
    }
}
