//! The acceptance path on real Debezium captures: `floe ingest`, then the latest views equal the
//! source database's final state; PyIceberg reads the same tables; re-ingesting adds nothing;
//! garbage lines land in the dead-letter table while every good row lands.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const S2_CONFIG: &str = r#"
[tables."pg.studio.movies".columns]
budget = "decimal(14,2)"
release_date = "date"
updated_at = "timestamptz"
"#;

fn capture(name: &str) -> PathBuf {
    fixtures_dir().join(name)
}

fn ingest(dir: &Path, input: &Path, config: Option<&Path>) -> (i32, String) {
    let mut args = vec!["ingest".to_string(), input.display().to_string()];
    if let Some(config) = config {
        args.extend(["--config".to_string(), config.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = floe(dir, &args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(matches!(out.status.code(), Some(0) | Some(3)), "ingest failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap(), stdout)
}

fn assert_views_equal_truth(dir: &Path, capture_dir: &Path) {
    let movies = floe_sql(dir, "SELECT * FROM studio.movies_latest");
    assert_matches_truth(&movies, &read_json(&capture_dir.join("truth_movies.json")), &["movie_id"]);
    let talents = floe_sql(dir, "SELECT * FROM studio.talents_latest");
    assert_matches_truth(&talents, &read_json(&capture_dir.join("truth_talents.json")), &["movie_id", "person_id"]);
}

fn s2_config(dir: &Path) -> PathBuf {
    let path = dir.join("s2.toml");
    std::fs::write(&path, S2_CONFIG).unwrap();
    path
}

#[test]
fn s1_with_schemas_latest_views_equal_truth_and_reingest_adds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = capture("pg-studio-s1").join("events.jsonl");
    let (code, report) = ingest(dir.path(), &input, None);
    assert_eq!(code, 0, "{report}");
    assert_views_equal_truth(dir.path(), &capture("pg-studio-s1"));

    let count = |t: &str| floe_sql(dir.path(), &format!("SELECT count(*) AS n FROM {t}"))[0]["n"].as_i64().unwrap();
    let before = (count("studio.movies"), count("studio.talents"));
    let (code, report) = ingest(dir.path(), &input, None);
    assert_eq!(code, 0);
    assert!(report.contains("already committed:  1286"), "{report}");
    assert_eq!((count("studio.movies"), count("studio.talents")), before, "re-ingest added rows");

    // The schema evolved as the source did: genre added, runtime_min widened, release_date kept.
    let columns = floe_sql(dir.path(), "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'movies'");
    let type_of = |c: &str| columns.iter().find(|r| r["column_name"] == c).map(|r| r["data_type"].as_str().unwrap().to_string());
    assert_eq!(type_of("runtime_min").as_deref(), Some("Int64"));
    assert!(type_of("genre").is_some() && type_of("release_date").is_some());
}

#[test]
fn s2_without_schemas_uses_configured_types_and_equals_truth() {
    let dir = tempfile::tempdir().unwrap();
    let config = s2_config(dir.path());
    let (code, report) = ingest(dir.path(), &capture("pg-studio-s2").join("events.jsonl"), Some(&config));
    assert_eq!(code, 0, "{report}");
    assert_views_equal_truth(dir.path(), &capture("pg-studio-s2"));
}

#[test]
fn pyiceberg_reads_the_ingested_tables() {
    let dir = tempfile::tempdir().unwrap();
    ingest(dir.path(), &capture("pg-studio-s1").join("events.jsonl"), None);
    let data_dir = data_dir_arg(dir.path());
    for (table, key) in [("studio.movies", vec!["movie_id"]), ("studio.talents", vec!["movie_id", "person_id"])] {
        let mut args = vec![data_dir.as_str(), table];
        args.extend(key.iter().copied());
        let theirs = run_python_json("table_keys.py", &args);
        let ours_count = floe_sql(dir.path(), &format!("SELECT count(*) AS n FROM {table}"))[0]["n"].as_i64().unwrap();
        assert_eq!(theirs["rows"].as_i64().unwrap(), ours_count, "{table}: row counts differ");
        let cols = key.join(", ");
        let ours: Vec<Value> = floe_sql(dir.path(), &format!("SELECT DISTINCT {cols} FROM {table} ORDER BY {cols}"))
            .iter()
            .map(|r| Value::Array(key.iter().map(|k| r[*k].clone()).collect()))
            .collect();
        assert_eq!(theirs["keys"].as_array().unwrap(), &ours, "{table}: keys differ");
    }
}

/// 1,000 bad lines of five kinds, spread through the capture.
fn garbage_lines(events: &[String]) -> Vec<String> {
    let good: Value = serde_json::from_str(&events[0]).unwrap();
    let mut no_key = good.clone();
    no_key["key"] = Value::Null;
    let mut bad_op = good.clone();
    let value: Value = serde_json::from_str(good["value"].as_str().unwrap()).unwrap();
    let mut value = value;
    value["payload"]["op"] = Value::from("x");
    bad_op["value"] = Value::from(value.to_string());
    let kinds = [
        "{not json at all".to_string(),
        r#"{"key": "{}", "value": "{}"}"#.to_string(),
        r#"{"topic": "pg.studio.movies", "key": "{\"movie_id\": 1}", "value": "{truncated"}"#.to_string(),
        no_key.to_string(),
        bad_op.to_string(),
    ];
    (0..1000).map(|i| kinds[i % kinds.len()].clone()).collect()
}

#[test]
fn garbage_goes_to_dead_letters_and_every_good_row_lands() {
    let dir = tempfile::tempdir().unwrap();
    let events: Vec<String> =
        std::fs::read_to_string(capture("pg-studio-s1").join("events.jsonl")).unwrap().lines().map(String::from).collect();
    let garbage = garbage_lines(&events);
    let path = dir.path().join("mixed.jsonl");
    let mut file = std::fs::File::create(&path).unwrap();
    let step = events.len() / garbage.len() + 1;
    let mut bad = garbage.iter();
    for (i, line) in events.iter().enumerate() {
        writeln!(file, "{line}").unwrap();
        if i % step == 0 {
            if let Some(g) = bad.next() {
                writeln!(file, "{g}").unwrap();
            }
        }
    }
    for g in bad {
        writeln!(file, "{g}").unwrap();
    }
    drop(file);

    let out = floe(dir.path(), &["ingest", &path.display().to_string()]);
    let (code, report) = (out.status.code().unwrap(), String::from_utf8_lossy(&out.stdout));
    assert_eq!(code, 3, "exit code says dead letters were written: {report}");
    // Logged once per reason and summarised, not once per record; no colour codes in a file.
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.lines().count() < 30, "{} log lines for 1000 dead letters:\n{log}", log.lines().count());
    assert!(!log.contains('\u{1b}'), "ANSI escapes in a log that is not a terminal:\n{log}");
    assert!(report.contains("line is not valid JSON"), "the report counts dead letters by reason: {report}");
    assert!(report.contains("dead letters:       1000"), "{report}");
    assert_views_equal_truth(dir.path(), &capture("pg-studio-s1"));
    let letters = floe_sql(
        dir.path(),
        "SELECT count(*) AS n, count(DISTINCT \"offset\") AS positions, min(length(reason)) AS reason FROM floe.dead_letters",
    );
    assert_eq!(letters[0]["n"], 1000);
    assert_eq!(letters[0]["positions"], 1000);
    assert!(letters[0]["reason"].as_i64().unwrap() > 5);
    let raw = floe_sql(dir.path(), "SELECT raw FROM floe.dead_letters WHERE reason LIKE 'line is not valid JSON%' LIMIT 1");
    assert_eq!(raw[0]["raw"], Value::from(hex("{not json at all")));

    // Re-ingesting the same file records nothing twice.
    let (_, report) = ingest(dir.path(), &path, None);
    assert!(report.contains("dead letters:       0"), "{report}");
    let letters = floe_sql(dir.path(), "SELECT count(*) AS n FROM floe.dead_letters");
    assert_eq!(letters[0]["n"], 1000);
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}
