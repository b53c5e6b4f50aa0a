//! Shared helpers of floe's end-to-end tests.
#![allow(dead_code)]

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
    let output = Command::new(python()).arg(repo_root().join("tests/py").join(script)).args(args).output().unwrap();
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
