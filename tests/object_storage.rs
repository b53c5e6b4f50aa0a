//! floe with its warehouse in an S3-compatible bucket (moto, on loopback): ingest of a real
//! Debezium capture, the latest views, compaction with snapshot expiry and orphan cleanup, all
//! through `--warehouse s3://…`, and PyIceberg reading the tables from the bucket through
//! floe's catalog. The catalog database stays under `--data-dir`; no table file does.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::s3::Moto;
use common::*;
use serde_json::Value;

const WAREHOUSE: &str = "s3://lake/floe";

/// `floe` with the warehouse in moto's bucket.
fn floe_on(moto: &Moto, dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["--data-dir", &dir.display().to_string(), "--warehouse", WAREHOUSE])
        .args(args)
        .envs(moto.env())
        .output()
        .expect("floe runs")
}

fn count(moto: &Moto, dir: &Path, relation: &str) -> u64 {
    let out = floe_on(moto, dir, &["sql", &format!("SELECT count(*) AS n FROM {relation}"), "--format", "json"]);
    assert!(out.status.success(), "{relation}: {}", String::from_utf8_lossy(&out.stderr));
    let rows: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    rows[0]["n"].as_u64().unwrap()
}

fn truth_len(table: &str) -> u64 {
    read_json(&repo_root().join(format!("tests/captures/evolution-s1/truth_{table}.json"))).len() as u64
}

#[test]
fn ingest_views_compaction_and_cleanup_work_with_the_warehouse_in_a_bucket() {
    let moto = Moto::start();
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
    let read = run_python_json_with("read_s3_table.py", &[&data_dir, "depot.parts"], &env);
    assert_eq!(read["rows"].as_u64(), Some(count(&moto, dir.path(), "depot.parts")), "{read}");
}

#[test]
fn a_warehouse_url_floe_cannot_store_in_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = floe(dir.path(), &["--warehouse", "gs://lake/floe", "tables"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--warehouse gs://lake/floe") && stderr.contains("s3://"), "{stderr}");
}
