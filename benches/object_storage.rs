//! floe with its warehouse in an S3-compatible bucket against the local disk, in the same run:
//! the same `floe ingest` of the same events and the same full `floe compact`, once with
//! `--warehouse s3://…` (moto on loopback) and once on the local disk. Reports the times, their
//! ratio, and the S3 requests each operation made, by kind.
//!
//! Each try ingests into fresh directories and a fresh prefix, then compacts; the ratio is the
//! median of the tries' (one try on the local disk, then its twin on S3, the order swapped every
//! other try). The timed tries reach the store directly: the counting proxy buffers each body
//! before passing it on, which is the bench's cost, not S3's. One more run, through the proxy,
//! counts the requests (and, with `FLOE_BENCH_TIMELINE=1`, prints each with its time).
//!
//! `cargo bench --bench object_storage` (`FLOE_BENCH_EVENTS`, default 200000, over a quarter as
//! many keys, committed every `FLOE_BENCH_BATCH` rows, default 20000; `FLOE_BENCH_TRIES`,
//! default 5). Needs the test venv with moto (`.ci/test` creates it; or set FLOE_PYTHON).
//! `FLOE_BENCH_S3S_FS=<path to s3s-fs>` runs the same again on s3s-fs, which answers requests
//! concurrently, as S3 does.

#[allow(unused_imports)]
#[path = "../tests/common/mod.rs"]
mod common;
#[allow(dead_code)]
#[path = "support/paired.rs"]
mod paired;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::faulty_proxy::FaultyProxy;
use common::s3::S3Server;
use floe_sink::testing::{Column, TableEvents};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `n` upserts over `n / 4` keys, as Debezium JSON lines.
fn events(n: usize) -> String {
    let gen = TableEvents::new("pg.bench.items", vec![Column::new("name", "string"), Column::new("score", "int32")]);
    let keys = (n / 4).max(1);
    let lines: Vec<String> = (0..n).map(|i| gen.upsert("u", (i % keys) as i64, &[json!(format!("item {i}")), json!(i % 1000)])).collect();
    lines.join("\n") + "\n"
}

/// Where a run keeps its tables: the local disk, or a prefix of the bucket `bench` reached at
/// `endpoint` (the server's own, or the counting proxy's).
#[derive(Clone, Copy)]
enum Store<'a> {
    Local,
    S3 { server: &'a S3Server, endpoint: &'a str, prefix: &'a str },
}

/// Runs floe with `args` in `data_dir` on `store`; its wall time.
fn floe(data_dir: &Path, store: Store, args: &[&str]) -> Duration {
    let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
    command.args(["--data-dir", data_dir.to_str().unwrap()]);
    if let Store::S3 { server, endpoint, prefix } = store {
        command.args(["--warehouse", &format!("s3://bench/{prefix}")]).envs(server.env()).env("AWS_ENDPOINT_URL", endpoint);
    }
    let started = Instant::now();
    let out = command.args(args).output().expect("floe runs");
    assert!(out.status.success(), "floe {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    started.elapsed()
}

fn requests(counted: &BTreeMap<String, u64>) -> String {
    counted.iter().map(|(kind, n)| format!("{kind} {n}")).collect::<Vec<_>>().join(", ")
}

/// The compaction's requests in the order they came, from the start of the process
/// (`FLOE_BENCH_TIMELINE=1`): where it waits on the store and where on itself.
fn print_timeline(started: Instant, timeline: &[(Instant, Duration, String)]) {
    for (came, took, what) in timeline {
        let at = came.duration_since(started);
        println!("  {:>8.1} ms  +{:>6.1} ms  {what}", at.as_secs_f64() * 1e3, took.as_secs_f64() * 1e3);
    }
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let n = env_or("FLOE_BENCH_EVENTS", if bench { 200_000 } else { 2_000 });
    let batch = env_or("FLOE_BENCH_BATCH", if bench { 20_000 } else { 500 });
    let tries = env_or("FLOE_BENCH_TRIES", if bench { 5 } else { 1 }).max(1);
    let moto = S3Server::moto();
    moto.create_bucket("bench");
    compare(n, batch, tries, "moto", &moto);
    // s3s-fs answers requests concurrently, as S3 does; moto answers one at a time.
    if let Ok(binary) = std::env::var("FLOE_BENCH_S3S_FS") {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bench")).unwrap();
        compare(n, batch, tries, "s3s-fs", &S3Server::s3s_fs(Path::new(&binary), root.path()));
    }
}

/// The input and config every run shares.
struct Workload {
    dir: tempfile::TempDir,
}

/// A full compaction of the bench's table, with expiry and cleanup of everything it replaced.
const COMPACT: [&str; 7] = ["compact", "bench.items", "--full", "--snapshot-retention-secs", "0", "--orphan-grace-secs", "0"];

impl Workload {
    fn new(n: usize, batch: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.jsonl"), events(n)).unwrap();
        std::fs::write(dir.path().join("bench.toml"), format!("[sink]\nbatch_rows = {batch}\n")).unwrap();
        Self { dir }
    }

    /// Ingests the events into `data_dir` on `store`: the wall time.
    fn ingest(&self, data_dir: &Path, store: Store) -> Duration {
        let (input, config) = (self.dir.path().join("events.jsonl"), self.dir.path().join("bench.toml"));
        floe(data_dir, store, &["ingest", input.to_str().unwrap(), "--config", config.to_str().unwrap()])
    }

    /// Ingests into a fresh data dir on `store`, then compacts: the two wall times.
    fn ingest_and_compact(&self, store: Store) -> (Duration, Duration) {
        let data_dir = tempfile::tempdir().unwrap();
        (self.ingest(data_dir.path(), store), floe(data_dir.path(), store, &COMPACT))
    }
}

/// The same ingest and compaction on the local disk and in `server`'s bucket `bench`, in
/// `tries` pairs, then once more through the counting proxy.
fn compare(n: usize, batch: usize, tries: usize, name: &str, server: &S3Server) {
    let workload = Workload::new(n, batch);
    let mut s3_tries = 0;
    let pairs = paired::alternating(
        tries,
        || workload.ingest_and_compact(Store::Local),
        || {
            s3_tries += 1;
            let prefix = format!("{name}-try-{s3_tries}");
            workload.ingest_and_compact(Store::S3 { server, endpoint: &server.endpoint, prefix: &prefix })
        },
    );
    let proxy = FaultyProxy::start(&server.endpoint, 0, 0);
    let counted = Store::S3 { server, endpoint: &proxy.endpoint, prefix: "counted" };
    let data_dir = tempfile::tempdir().unwrap();
    workload.ingest(data_dir.path(), counted);
    let ingest_requests = proxy.requests().0;
    proxy.reset_counts();
    let started = Instant::now();
    let compact_through_proxy = floe(data_dir.path(), counted, &COMPACT);
    let compact_requests = proxy.requests().0;
    if std::env::var("FLOE_BENCH_TIMELINE").is_ok() {
        print_timeline(started, &proxy.timeline());
    }

    println!(
        "object_storage: {n} events over {} keys, a commit every {batch} rows; S3 is {name} on loopback; {tries} pairs of tries",
        n / 4
    );
    let line = |what: &str, side: fn(&(Duration, Duration)) -> Duration, counted: &BTreeMap<String, u64>| {
        let (local, s3): (Vec<Duration>, Vec<Duration>) = pairs.iter().map(|(l, s)| (side(l), side(s))).unzip();
        let (median, low, high) = paired::spread(local.iter().zip(&s3).map(|(l, s)| s.as_secs_f64() / l.as_secs_f64()).collect());
        let (local, s3) = (local.iter().min().unwrap(), s3.iter().min().unwrap());
        println!(
            "  {what:<16} local {local:>9.2?}  s3 {s3:>9.2?} (best of each)  s3/local {median:>5.2}× ({low:.2}–{high:.2})  requests: {}",
            requests(counted)
        );
    };
    line("ingest", |p| p.0, &ingest_requests);
    line("full compaction", |p| p.1, &compact_requests);
    println!("  (the counted run's compaction, through the proxy: {compact_through_proxy:.2?})");
}
