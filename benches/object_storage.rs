//! floe with its warehouse in an S3-compatible bucket against the local disk, in the same run:
//! the same `floe ingest` of the same events and the same full `floe compact`, once with
//! `--warehouse s3://…` (moto on loopback, reached through a counting proxy) and once on the
//! local disk. Reports the times, their ratio, and the S3 requests each operation made, by kind.
//!
//! `cargo bench --bench object_storage` (`FLOE_BENCH_EVENTS`, default 200000, over a quarter as
//! many keys, committed every `FLOE_BENCH_BATCH` rows, default 20000). Needs the test venv with
//! moto (`.ci/test` creates it; or set FLOE_PYTHON). `FLOE_BENCH_S3S_FS=<path to s3s-fs>` runs
//! the same again on s3s-fs, which answers requests concurrently, as S3 does.

#[allow(unused_imports)]
#[path = "../tests/common/mod.rs"]
mod common;

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

/// Runs floe with `args` in `data_dir`, on the bucket when `s3` is given; its wall time.
fn floe(data_dir: &Path, s3: Option<(&S3Server, &str)>, args: &[&str]) -> Duration {
    let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
    command.args(["--data-dir", data_dir.to_str().unwrap()]);
    if let Some((moto, endpoint)) = s3 {
        command.args(["--warehouse", "s3://bench/floe"]).envs(moto.env()).env("AWS_ENDPOINT_URL", endpoint);
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
    let moto = S3Server::moto();
    moto.create_bucket("bench");
    compare(n, batch, "moto", &moto);
    // s3s-fs answers requests concurrently, as S3 does; moto answers one at a time.
    if let Ok(binary) = std::env::var("FLOE_BENCH_S3S_FS") {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("bench")).unwrap();
        compare(n, batch, "s3s-fs", &S3Server::s3s_fs(Path::new(&binary), root.path()));
    }
}

/// The same ingest and compaction on the local disk and in `server`'s bucket `bench`.
fn compare(n: usize, batch: usize, name: &str, server: &S3Server) {
    let proxy = FaultyProxy::start(&server.endpoint, 0, 0);
    let (local, remote) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let input = local.path().join("events.jsonl");
    std::fs::write(&input, events(n)).unwrap();
    let config = local.path().join("bench.toml");
    std::fs::write(&config, format!("[sink]\nbatch_rows = {batch}\n")).unwrap();
    let ingest = ["ingest", input.to_str().unwrap(), "--config", config.to_str().unwrap()];
    let compact = ["compact", "bench.items", "--full", "--snapshot-retention-secs", "0", "--orphan-grace-secs", "0"];
    let s3 = Some((server, proxy.endpoint.as_str()));

    let ingest_local = floe(local.path(), None, &ingest);
    proxy.reset_counts();
    let ingest_s3 = floe(remote.path(), s3, &ingest);
    let ingest_requests = proxy.requests().0;
    let compact_local = floe(local.path(), None, &compact);
    proxy.reset_counts();
    let started = Instant::now();
    let compact_s3 = floe(remote.path(), s3, &compact);
    let compact_requests = proxy.requests().0;
    if std::env::var("FLOE_BENCH_TIMELINE").is_ok() {
        print_timeline(started, &proxy.timeline());
    }

    println!("object_storage: {n} events over {} keys, a commit every {batch} rows; S3 is {name} on loopback", n / 4);
    let line = |what: &str, local: Duration, s3: Duration, counted: &BTreeMap<String, u64>| {
        let ratio = s3.as_secs_f64() / local.as_secs_f64();
        println!("  {what:<16} local {local:>9.2?}  s3 {s3:>9.2?}  s3/local {ratio:>5.2}×  requests: {}", requests(counted));
    };
    line("ingest", ingest_local, ingest_s3, &ingest_requests);
    line("full compaction", compact_local, compact_s3, &compact_requests);
}
