//! floe with its warehouse in an S3-compatible bucket (moto, on loopback): ingest of a real
//! Debezium capture, the latest views, compaction with snapshot expiry and orphan cleanup, all
//! through `--warehouse s3://…`, and PyIceberg reading the tables from the bucket through
//! floe's catalog, also when the storage fails requests at random or not at all for a while.
//! The catalog database stays under `--data-dir`; no table file does.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::cloud_emulators::Emulator;
use common::faulty_proxy::FaultyProxy;
use common::s3::S3Server;
use common::*;
use serde_json::Value;

const WAREHOUSE: &str = "s3://lake/floe";

/// `floe` with the warehouse in moto's bucket.
fn floe_on(moto: &S3Server, dir: &Path, args: &[&str]) -> Output {
    floe_through(&moto.endpoint, moto, dir, args)
}

/// `floe` with the warehouse in moto's bucket, reached at `endpoint` (moto, or a proxy to it).
fn floe_through(endpoint: &str, moto: &S3Server, dir: &Path, args: &[&str]) -> Output {
    floe_command(endpoint, moto, dir, args).output().expect("floe runs")
}

fn floe_command(endpoint: &str, moto: &S3Server, dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
    command.args(["--data-dir", &dir.display().to_string(), "--warehouse", WAREHOUSE]).args(args);
    command.envs(moto.env()).env("AWS_ENDPOINT_URL", endpoint);
    command
}

fn count(moto: &S3Server, dir: &Path, relation: &str) -> u64 {
    count_in(dir, WAREHOUSE, &moto.env(), relation)
}

fn truth_len(table: &str) -> u64 {
    read_json(&repo_root().join(format!("tests/captures/evolution-s1/truth_{table}.json"))).len() as u64
}

#[test]
fn ingest_views_compaction_and_cleanup_work_with_the_warehouse_in_a_bucket() {
    let moto = S3Server::moto();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let events = repo_root().join("tests/captures/evolution-s1/events.jsonl");
    let ingested = floe_on(&moto, dir.path(), &["ingest", &events.display().to_string()]);
    assert!(ingested.status.success(), "{}", String::from_utf8_lossy(&ingested.stderr));

    for table in ["parts", "bins", "moves"] {
        assert_eq!(count(&moto, dir.path(), &format!("depot.{table}_latest")), truth_len(table), "depot.{table}_latest");
    }
    let objects = moto.keys("lake", "floe/depot/parts/");
    assert!(objects.iter().any(|k| k.contains("/data/") && k.ends_with(".parquet")), "data files in the bucket: {objects:?}");
    assert!(objects.iter().any(|k| k.ends_with(".metadata.json")), "metadata in the bucket: {objects:?}");
    assert!(!dir.path().join("warehouse").exists(), "no table file on the local disk");

    let raw_rows = count(&moto, dir.path(), "depot.parts");
    let compacted = floe_on(&moto, dir.path(), &["compact", "--all", "--snapshot-retention-secs", "0", "--orphan-grace-secs", "0"]);
    assert!(compacted.status.success(), "{}", String::from_utf8_lossy(&compacted.stderr));
    for table in ["parts", "bins", "moves"] {
        assert_eq!(count(&moto, dir.path(), &format!("depot.{table}_latest")), truth_len(table), "depot.{table}_latest after compaction");
    }
    assert!(count(&moto, dir.path(), "depot.parts") < raw_rows, "compaction rewrote depot.parts to one row per key");
    let after = moto.keys("lake", "floe/depot/parts/data/");
    assert!(after.len() < objects.iter().filter(|k| k.contains("/data/")).count(), "cleanup deleted the replaced data files: {after:?}");

    // PyIceberg, through the same catalog, reads every file the metadata names from the bucket.
    let data_dir = dir.path().display().to_string();
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let read = run_python_json_with("read_table.py", &[&data_dir, "depot.parts"], &env);
    assert_eq!(read["rows"].as_u64(), Some(count(&moto, dir.path(), "depot.parts")), "{read}");
}

/// What a capture's ingest and compaction must produce, however the storage behaved: every
/// `_latest` view equal to PostgreSQL's truth, and every file the metadata names readable
/// (PyIceberg reads them all from the bucket).
fn assert_tables_whole(moto: &S3Server, dir: &Path) {
    for table in ["parts", "bins", "moves"] {
        assert_eq!(count(moto, dir, &format!("depot.{table}_latest")), truth_len(table), "depot.{table}_latest");
    }
    assert_every_file_readable(moto, dir);
}

/// Every table that was created loads, and every file its metadata names is readable
/// (PyIceberg reads them all).
fn assert_every_file_readable(moto: &S3Server, dir: &Path) {
    let env: Vec<(&str, String)> = moto.env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let listed = floe_on(moto, dir, &["tables"]);
    let listed = String::from_utf8_lossy(&listed.stdout).to_string();
    for table in ["parts", "bins", "moves"].into_iter().filter(|t| listed.contains(&format!("depot.{t} "))) {
        let read = run_python_json_with("read_table.py", &[&dir.display().to_string(), &format!("depot.{table}")], &env);
        assert_eq!(read["rows"].as_u64(), Some(count(moto, dir, &format!("depot.{table}"))), "depot.{table}: {read}");
    }
}

/// moto with bucket `lake`, behind a proxy failing `per_mille` of its requests (seeded with
/// `seed`), and a data directory.
fn bucket_behind_proxy(per_mille: u64, seed: u64) -> (S3Server, FaultyProxy, tempfile::TempDir) {
    let moto = S3Server::moto();
    moto.create_bucket("lake");
    let proxy = FaultyProxy::start(&moto.endpoint, per_mille, seed);
    (moto, proxy, tempfile::tempdir().unwrap())
}

#[test]
fn transient_storage_errors_are_retried_and_an_outage_is_waited_out() {
    let (mut rng, seed) = Rng::from_clock();
    println!("seed {seed}");
    // One request in ten fails with 503 SlowDown.
    let (moto, proxy, dir) = bucket_behind_proxy(100, rng.next());
    let events = repo_root().join("tests/captures/evolution-s1/events.jsonl").display().to_string();
    let ingested = floe_through(&proxy.endpoint, &moto, dir.path(), &["ingest", &events, "--config", &batch_config(dir.path(), 10)]);
    assert!(ingested.status.success(), "ingest through failing storage: {}", String::from_utf8_lossy(&ingested.stderr));

    // Every request fails for the first two seconds of a compaction: the retries wait it out.
    let before = proxy.requests().1;
    proxy.begin_outage();
    let mut compaction = floe_command(&proxy.endpoint, &moto, dir.path(), &["compact", "--all", "--orphan-grace-secs", "0"]);
    let compaction = std::thread::spawn(move || compaction.output().expect("floe runs"));
    std::thread::sleep(std::time::Duration::from_secs(2));
    let during_outage = proxy.requests().1 - before;
    proxy.end_outage();
    let compacted = compaction.join().unwrap();
    assert!(compacted.status.success(), "compaction through an outage: {}", String::from_utf8_lossy(&compacted.stderr));

    assert!(during_outage > 1, "the compaction met the outage and retried: {during_outage} requests failed");
    let (requests, failed) = proxy.requests();
    assert!(failed > during_outage && requests.values().sum::<u64>() > failed, "random faults too: {failed} of {requests:?}");
    assert_tables_whole(&moto, dir.path());
}

#[test]
fn a_compaction_fetches_each_small_data_file_once_though_it_reads_it_twice() {
    let (moto, proxy, dir) = bucket_behind_proxy(0, 0);
    let events = repo_root().join("tests/captures/evolution-s1/events.jsonl").display().to_string();
    let ingested = floe_through(&proxy.endpoint, &moto, dir.path(), &["ingest", &events, "--config", &batch_config(dir.path(), 10)]);
    assert!(ingested.status.success(), "{}", String::from_utf8_lossy(&ingested.stderr));
    let written = proxy.requests().0.get("PUT parquet").copied().unwrap_or_default();
    assert!(written > 3, "the ingest wrote several data files: {:?}", proxy.requests());
    // Each commit builds on the manifest list the one before wrote: kept, not fetched back.
    assert_eq!(proxy.requests().0.get("GET"), None, "an ingest into new tables reads nothing back: {:?}", proxy.requests());

    proxy.reset_counts();
    let compacted = floe_through(&proxy.endpoint, &moto, dir.path(), &["compact", "--all"]);
    assert!(compacted.status.success(), "{}", String::from_utf8_lossy(&compacted.stderr));
    let (requests, _) = proxy.requests();
    let fetched = requests.get("GET parquet").copied().unwrap_or_default();
    // The compactor reads its inputs twice (their keys, then the winning rows), and each read
    // of a file is a footer and its column chunks: four requests a file, without keeping them.
    assert!(fetched > 0 && fetched <= written, "{fetched} GETs of data files for {written} written: {requests:?}");
    assert_tables_whole(&moto, dir.path());
}

#[test]
fn an_outage_longer_than_the_retry_budget_fails_the_ingest_cleanly_and_the_next_run_lands_everything() {
    let (moto, proxy, dir) = bucket_behind_proxy(0, 1);
    let config = dir.path().join("budget.toml");
    let budget = "[catalog]\nstorage_retry_timeout = \"1s\"\nstorage_max_retries = 2\n";
    std::fs::write(&config, format!("[sink]\nbatch_rows = 10\n\n{budget}")).unwrap();
    let config = config.display().to_string();
    let events = repo_root().join("tests/captures/evolution-s1/events.jsonl");
    let first_half = dir.path().join("first.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(&events).unwrap().lines().map(str::to_string).collect();
    std::fs::write(&first_half, lines[..lines.len() / 2].join("\n") + "\n").unwrap();
    let ingest = |input: &Path| {
        let input = input.display().to_string();
        floe_through(&proxy.endpoint, &moto, dir.path(), &["ingest", &input, "--config", &config, "--source-name", "capture"])
    };
    assert!(ingest(&first_half).status.success());

    proxy.begin_outage();
    let failed = ingest(&events);
    proxy.end_outage();
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(!failed.status.success(), "an outage past the budget fails the run");
    assert!(stderr.contains("SlowDown") || stderr.contains("503"), "the storage's error is reported: {stderr}");
    assert_every_file_readable(&moto, dir.path());

    let again = ingest(&events);
    assert!(again.status.success(), "{}", String::from_utf8_lossy(&again.stderr));
    for table in ["parts", "bins", "moves"] {
        assert_eq!(count(&moto, dir.path(), &format!("depot.{table}_latest")), truth_len(table), "depot.{table}_latest");
        let query = format!("SELECT _src_offset FROM depot.{table} GROUP BY 1 HAVING count(*) > 1");
        let twice = floe_on(&moto, dir.path(), &["sql", &query, "--format", "json"]);
        let twice: Vec<Value> = serde_json::from_slice(&twice.stdout).unwrap();
        assert!(twice.is_empty(), "depot.{table}: changes appended twice: {twice:?}");
    }
}

/// `floe` on `dir` with its warehouse at `warehouse`, and `env` to reach it.
fn floe_in(dir: &Path, warehouse: &str, env: &[(&str, String)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
    command.args(["--data-dir", &dir.display().to_string(), "--warehouse", warehouse]).args(args);
    command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).output().expect("floe runs")
}

/// Rows of `relation` through `floe sql` with the warehouse at `warehouse`.
fn count_in(dir: &Path, warehouse: &str, env: &[(&str, String)], relation: &str) -> u64 {
    let out = floe_in(dir, warehouse, env, &["sql", &format!("SELECT count(*) AS n FROM {relation}"), "--format", "json"]);
    assert!(out.status.success(), "{relation}: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows[0]["n"].as_u64().unwrap()
}

#[test]
fn ingest_views_compaction_and_cleanup_work_with_the_warehouse_in_azure_blob_storage() {
    let azurite = Emulator::azurite();
    azurite.create_container("lake");
    let (dir, env, warehouse) = (tempfile::tempdir().unwrap(), azurite.azurite_env(), "az://lake/floe");
    let events = repo_root().join("tests/captures/evolution-s1/events.jsonl").display().to_string();
    let ingested = floe_in(dir.path(), warehouse, &env, &["ingest", &events, "--config", &batch_config(dir.path(), 10)]);
    assert!(ingested.status.success(), "{}", String::from_utf8_lossy(&ingested.stderr));
    let raw_rows = count_in(dir.path(), warehouse, &env, "depot.parts");
    let compacted =
        floe_in(dir.path(), warehouse, &env, &["compact", "--all", "--snapshot-retention-secs", "0", "--orphan-grace-secs", "0"]);
    let report = String::from_utf8_lossy(&compacted.stdout);
    assert!(compacted.status.success(), "{}", String::from_utf8_lossy(&compacted.stderr));
    for table in ["parts", "bins", "moves"] {
        assert_eq!(count_in(dir.path(), warehouse, &env, &format!("depot.{table}_latest")), truth_len(table), "depot.{table}_latest");
    }
    assert!(count_in(dir.path(), warehouse, &env, "depot.parts") < raw_rows, "compaction rewrote depot.parts");
    // The cleanup listed the container and deleted what the expired snapshots held.
    assert!(report.lines().any(|l| l.starts_with("depot.parts") && !l.contains("deleted 0 files")), "{report}");
    assert!(!dir.path().join("warehouse").exists(), "no table file on the local disk");
}

#[test]
fn a_warehouse_url_floe_cannot_store_in_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = floe(dir.path(), &["--warehouse", "hdfs://lake/floe", "tables"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--warehouse hdfs://lake/floe") && stderr.contains("s3://, gs://, az://"), "{stderr}");
}

#[test]
fn the_warehouse_can_come_from_the_config_file_and_a_bad_one_names_the_file_and_the_key() {
    let moto = S3Server::moto();
    moto.create_bucket("lake");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("floe.toml");
    std::fs::write(&config, "[catalog]\nwarehouse = \"s3://lake/from-config\"\n").unwrap();
    let floe_here = |args: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
        command.args(["--data-dir", &dir.path().display().to_string()]).args(args).envs(moto.env()).output().unwrap()
    };
    let events = repo_root().join("tests/captures/evolution-s1/events.jsonl");
    let ingested = floe_here(&["ingest", &events.display().to_string()]);
    assert!(ingested.status.success(), "{}", String::from_utf8_lossy(&ingested.stderr));
    assert!(!moto.keys("lake", "from-config/depot/parts/data/").is_empty(), "the data files went to the configured bucket");
    let latest = floe_here(&["sql", "SELECT count(*) AS n FROM depot.parts_latest", "--format", "json"]);
    let rows: Vec<Value> = serde_json::from_slice(&latest.stdout).unwrap_or_default();
    assert_eq!(rows.first().and_then(|r| r["n"].as_u64()), Some(truth_len("parts")), "{}", String::from_utf8_lossy(&latest.stderr));

    std::fs::write(&config, "[catalog]\nwarehouse = \"ftp://files/lake\"\n").unwrap();
    let refused = floe_here(&["tables"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains(&format!("{}: catalog.warehouse:", config.display())) && stderr.contains("fix:"), "{stderr}");
}
