//! Shared helpers of floe's end-to-end tests.
#![allow(dead_code)]

pub mod cloud_emulators;
pub mod faulty_proxy;
pub mod kafka;
pub mod pg_truth;
pub mod process;
pub mod s3;

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::RecordBatch;
use serde_json::Value;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Python with pyiceberg and duckdb: `$FLOE_PYTHON`, else the repo's `.venv`, which the
/// README's test command creates.
pub fn python() -> PathBuf {
    if let Ok(p) = std::env::var("FLOE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = repo_root().join(".venv/bin/python");
    assert!(venv.exists(), "no Python test environment at {}: run `.ci/run` (it creates it) or set FLOE_PYTHON", venv.display());
    venv
}

/// Runs a Python script from `tests/py` with `args`, returns its stdout parsed as JSON.
pub fn run_python_json(script: &str, args: &[&str]) -> Value {
    run_python_json_with(script, args, &[])
}

/// As [`run_python_json`], with these environment variables set for the script.
pub fn run_python_json_with(script: &str, args: &[&str], env: &[(&str, &str)]) -> Value {
    let mut command = Command::new(python());
    command.arg(repo_root().join("tests/py").join(script)).args(args).envs(env.iter().copied());
    let output = command.output().unwrap();
    assert!(output.status.success(), "{script} failed:\n{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{script} printed no JSON ({e}):\n{}", String::from_utf8_lossy(&output.stdout)))
}

/// Rows of `batches` as JSON objects, sorted, for comparison with other readers.
pub fn json_rows(batches: &[RecordBatch]) -> Vec<Value> {
    let mut writer = arrow_json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer.write(batch).unwrap();
    }
    writer.finish().unwrap();
    let buf = writer.into_inner();
    let mut rows: Vec<Value> = if buf.is_empty() { vec![] } else { serde_json::from_slice(&buf).unwrap() };
    // arrow-json omits null fields; other readers spell them out. Compare without nulls.
    for row in rows.iter_mut() {
        strip_nulls(row);
    }
    rows.sort_by_key(|r| r.to_string());
    rows
}

pub fn strip_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

pub fn data_dir_arg(dir: &Path) -> String {
    std::fs::canonicalize(dir).unwrap().display().to_string()
}

/// `../shared/fixtures/debezium` beside the repo, or `$FLOE_FIXTURES`.
pub fn fixtures_dir() -> PathBuf {
    std::env::var("FLOE_FIXTURES").map(PathBuf::from).unwrap_or_else(|_| repo_root().join("../shared/fixtures/debezium"))
}

/// Runs the `floe` binary with `--data-dir dir` and `args`; with its warehouse in a bucket when
/// `FLOE_TEST_WAREHOUSE` names one (see `floe_catalog::testing::suite_warehouse`).
pub fn floe(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_floe"));
    command.arg("--data-dir").arg(dir);
    if let Some(warehouse) = floe_catalog::testing::suite_warehouse(dir) {
        command.args(["--warehouse", &warehouse]);
    }
    command.args(args).output().expect("floe runs")
}

/// Runs `floe sql QUERY --format json` and returns the rows.
pub fn floe_sql(dir: &Path, query: &str) -> Vec<Value> {
    let out = floe(dir, &["sql", query, "--format", "json"]);
    assert!(out.status.success(), "floe sql failed: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)))
}

/// Whether a value from floe equals a value from a truth file, after the documented type
/// mapping (see [`pg_truth`]).
pub fn same_value(ours: &Value, truth: &Value) -> bool {
    pg_truth::same(ours, truth, pg_truth::Precision::default())
}

/// Asserts that `rows` (a latest view) equals `truth` row for row, in every truth column.
pub fn assert_matches_truth(rows: &[Value], truth: &[Value], key: &[&str]) {
    let key_of = |row: &Value| key.iter().map(|k| row[*k].to_string()).collect::<Vec<_>>().join("|");
    let ours: std::collections::BTreeMap<String, &Value> = rows.iter().map(|r| (key_of(r), r)).collect();
    assert_eq!(ours.len(), rows.len(), "duplicate keys in the view");
    assert_eq!(rows.len(), truth.len(), "row count differs from truth");
    for expected in truth {
        let k = key_of(expected);
        let actual = ours.get(&k).unwrap_or_else(|| panic!("key {k} missing from the view"));
        for (column, value) in expected.as_object().unwrap() {
            let got = actual.get(column).unwrap_or(&Value::Null);
            assert!(same_value(got, value), "key {k}, column {column}: floe has {got}, truth has {value}");
        }
    }
}

pub fn read_json(path: &Path) -> Vec<Value> {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// A tiny deterministic RNG (xorshift64*), so every seed replays the same stream.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// Seeded from the clock; the seed is returned too, to replay a failure.
    pub fn from_clock() -> (Rng, u64) {
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
        (Rng::seeded(seed), seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `floe hash-password`, fed on stdin.
pub fn hash_password(dir: &Path, password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["--data-dir", &data_dir_arg(dir), "hash-password"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{password}\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A config in `dir` whose `[sink]` commits every `rows` rows (many commits); its path.
pub fn batch_config(dir: &Path, rows: usize) -> String {
    let path = dir.join(format!("batch-{rows}.toml"));
    std::fs::write(&path, format!("[sink]\nbatch_rows = {rows}\n")).unwrap();
    path.display().to_string()
}
