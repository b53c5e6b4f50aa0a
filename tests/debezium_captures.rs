//! floe against real Debezium: the captures under `tests/captures` (made by
//! `tests/captures/regenerate.sh` with Debezium 3.6.3 and PostgreSQL 15) cover every PostgreSQL
//! type Debezium's connector sends, the converter options that change the wire format, schema
//! changes, key changes, both replica identities, TRUNCATE and snapshot-then-stream.
//!
//! For each capture: `floe ingest`, then every keyed table's `_latest` view equals PostgreSQL's
//! final state value by value (before and after `floe compact`), and PyIceberg reads every table.
//! Where Debezium's events themselves differ from the final state, the cell is listed below with
//! the reason; a listed cell that stops differing fails the test too, so the list stays true.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::pg_truth::{same, Precision};
use common::*;
use serde_json::Value;

/// A cell where the events cannot give the final state: (table, key, column, why).
type Divergence = (&'static str, &'static str, &'static str, &'static str);

const DEFAULT_REPLACED: &str = "JsonConverter replace.null.with.default wrote the column default for NULL";
const NUMERIC_NAN: &str = "numeric NaN: Debezium sends null in precise mode";
const JSON_NULL: &str = "the JSON document 'null' is text in the events; to_jsonb shows it as null";
const NO_EVENT: &str = "PostgreSQL changed the row without an event (DDL default, rename or generated column)";

/// Debezium's `decimal.handling.mode=precise` (the default) cannot carry a numeric NaN.
const PRECISE_NAN: &[Divergence] =
    &[("lab.samples", "5", "c_numeric_any", NUMERIC_NAN), ("lab.samples", "105", "c_numeric_any", NUMERIC_NAN)];

const TYPES_DIVERGENCES: &[Divergence] = &[
    ("lab.samples", "2", "c_note", DEFAULT_REPLACED),
    ("lab.samples", "102", "c_note", DEFAULT_REPLACED),
    ("lab.samples", "4", "c_json", JSON_NULL),
    ("lab.samples", "4", "c_jsonb", JSON_NULL),
    ("lab.samples", "104", "c_json", JSON_NULL),
    ("lab.samples", "104", "c_jsonb", JSON_NULL),
];

fn captures_dir() -> PathBuf {
    repo_root().join("tests/captures")
}

fn meta(capture: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(capture.join("meta.json")).unwrap()).unwrap()
}

/// The capture's tables that have a primary key: (name, key columns, truth file).
fn keyed_tables(meta: &Value) -> Vec<(String, Vec<String>, String)> {
    let tables = meta["tables"].as_object().unwrap();
    let keyed = tables.iter().filter(|(_, t)| !t["primary_key"].as_array().unwrap().is_empty());
    keyed
        .map(|(name, t)| {
            let key = t["primary_key"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
            (name.clone(), key, t["truth_file"].as_str().unwrap().to_string())
        })
        .collect()
}

fn precision(meta: &Value) -> Precision {
    let option = |name: &str| meta["options"][name].as_str().unwrap_or_default().to_string();
    Precision { millis: option("time_precision") == "connect", decimals_as_double: option("decimal_handling") == "double" }
}

fn key_text(row: &Value, key: &[String]) -> String {
    let part = |k: &String| match &row[k.as_str()] {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    key.iter().map(part).collect::<Vec<_>>().join("|")
}

/// Every cell where the view differs from the truth, as (table, key, column, detail).
fn differences(dir: &Path, capture: &Path, meta: &Value) -> Vec<(String, String, String, String)> {
    let mut found = Vec::new();
    for (table, key, truth_file) in keyed_tables(meta) {
        let truth = read_json(&capture.join(truth_file));
        let rows = floe_sql(dir, &format!("SELECT * FROM {table}_latest"));
        let ours: std::collections::BTreeMap<String, &Value> = rows.iter().map(|r| (key_text(r, &key), r)).collect();
        assert_eq!(ours.len(), rows.len(), "{table}: duplicate keys in the view");
        let truth_keys: BTreeSet<String> = truth.iter().map(|r| key_text(r, &key)).collect();
        let extra: Vec<_> = ours.keys().filter(|k| !truth_keys.contains(*k)).collect();
        assert!(extra.is_empty(), "{table}: keys in the view that the source does not have: {extra:?}");
        for expected in &truth {
            let k = key_text(expected, &key);
            let Some(actual) = ours.get(&k) else {
                found.push((table.clone(), k, "*".into(), "row missing from the view".into()));
                continue;
            };
            for (column, value) in expected.as_object().unwrap() {
                let got = actual.get(column).unwrap_or(&Value::Null);
                if !same(got, value, precision(meta)) {
                    found.push((table.clone(), k.clone(), column.clone(), format!("floe {got}, truth {value}")));
                }
            }
        }
    }
    found
}

fn assert_views_equal_truth(dir: &Path, capture: &Path, meta: &Value, divergences: &[Divergence], when: &str) {
    let found = differences(dir, capture, meta);
    let listed = |t: &str, k: &str, c: &str| divergences.iter().any(|d| d.0 == t && d.1 == k && d.2 == c);
    let unexplained: Vec<String> =
        found.iter().filter(|(t, k, c, _)| !listed(t, k, c)).map(|(t, k, c, detail)| format!("{t} key {k} column {c}: {detail}")).collect();
    assert!(unexplained.is_empty(), "{when}: the view differs from PostgreSQL:\n{}", unexplained.join("\n"));
    let stale: Vec<_> = divergences.iter().filter(|d| !found.iter().any(|(t, k, c, _)| t == d.0 && k == d.1 && c == d.2)).collect();
    assert!(stale.is_empty(), "{when}: listed divergences that no longer differ: {stale:?}");
}

fn pyiceberg_reads_every_table(dir: &Path, meta: &Value) {
    let data_dir = data_dir_arg(dir);
    for (table, _, _) in keyed_tables(meta) {
        let theirs = run_python_json("read_table.py", &[&data_dir, &table]);
        let ours = floe_sql(dir, &format!("SELECT count(*) AS n FROM {table}"))[0]["n"].as_i64().unwrap();
        assert_eq!(theirs["rows"].as_i64(), Some(ours), "{table}: PyIceberg reads another row count");
    }
}

fn check_capture(name: &str, config: Option<&str>, divergences: &[Divergence]) {
    let capture = captures_dir().join(name);
    let meta = meta(&capture);
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["ingest".to_string(), capture.join("events.jsonl").display().to_string()];
    if let Some(config) = config {
        let path = dir.path().join("floe.toml");
        std::fs::write(&path, config).unwrap();
        args.extend(["--config".into(), path.display().to_string()]);
    }
    let out = floe(dir.path(), &args.iter().map(String::as_str).collect::<Vec<_>>());
    let report = String::from_utf8_lossy(&out.stdout);
    let unkeyed = meta["tables"].as_object().unwrap().values().any(|t| t["primary_key"].as_array().unwrap().is_empty());
    let expected = if unkeyed { 3 } else { 0 };
    assert_eq!(out.status.code(), Some(expected), "{report}\n{}", String::from_utf8_lossy(&out.stderr));

    assert_views_equal_truth(dir.path(), &capture, &meta, divergences, "after ingest");
    let compacted = floe(dir.path(), &["compact", "--all"]);
    assert!(compacted.status.success(), "{}", String::from_utf8_lossy(&compacted.stderr));
    assert_views_equal_truth(dir.path(), &capture, &meta, divergences, "after compaction");
    pyiceberg_reads_every_table(dir.path(), &meta);
}

/// Schemaless records carry no types: decimals, dates, times and binary are configured.
const TYPES_S2_CONFIG: &str = r#"
[tables."pg.lab.samples".columns]
c_numeric = "decimal(12,4)"
c_numeric_any = "variable_decimal"
c_numeric_big = "decimal(38,0)"
c_money = "decimal(38,2)"
c_percent = "decimal(5,2)"
c_num_arr = "list<decimal(6,2)>"
c_real = "float"
c_bytea = "binary"
c_bit = "binary"
c_varbit = "binary"
c_date = "date"
c_time = "time"
c_time3 = "time"
c_timestamp = "timestamp"
c_timestamp3 = "timestamp_ms"
c_timestamptz = "timestamptz"
"#;

#[test]
fn types_with_schemas() {
    check_capture("types-s1", None, &[TYPES_DIVERGENCES, PRECISE_NAN].concat());
}

/// One commit per record: row 109's unchanged TOASTed values (a placeholder in its update) come
/// from its committed create, not from the same batch.
#[test]
fn unchanged_toasted_values_are_filled_from_the_committed_row() {
    check_capture("types-s1", Some("[sink]\nbatch_rows = 1\n"), &[TYPES_DIVERGENCES, PRECISE_NAN].concat());
}

#[test]
fn types_without_schemas() {
    check_capture("types-s2", Some(TYPES_S2_CONFIG), &[TYPES_DIVERGENCES, PRECISE_NAN].concat());
}

#[test]
fn types_decimal_string_time_adaptive_binary_base64_interval_string_hstore_map() {
    const NAN_SPELLING: &str = "decimal.handling.mode=string spells a numeric NaN 'NAN'";
    const TOAST_BASE64: &str =
        "binary.handling.mode=base64: Debezium sends null, not its placeholder, for an unchanged TOASTed bytea (it logs 'Unexpected JDBC BINARY value')";
    let mode = [
        ("lab.samples", "5", "c_numeric_any", NAN_SPELLING),
        ("lab.samples", "105", "c_numeric_any", NAN_SPELLING),
        ("lab.samples", "109", "c_bytea", TOAST_BASE64),
    ];
    check_capture("types-modes-a", None, &[TYPES_DIVERGENCES, &mode].concat());
}

#[test]
fn types_decimal_double_time_connect_binary_hex() {
    check_capture("types-modes-b", None, TYPES_DIVERGENCES);
}

const EVOLUTION_DIVERGENCES: &[Divergence] = &[
    ("depot.parts", "P-300", "rating", DEFAULT_REPLACED),
    ("depot.parts", "P-400", "added_on", NO_EVENT),
    ("depot.parts", "P-400", "rating", NO_EVENT),
    ("depot.parts", "P-400", "title", NO_EVENT),
    ("depot.parts", "P-600", "title", NO_EVENT),
    ("depot.parts", "P-700", "title", NO_EVENT),
    ("depot.moves", "10|1", "delta_abs", NO_EVENT),
    ("depot.moves", "10|2", "delta_abs", NO_EVENT),
    ("depot.moves", "12|1", "delta_abs", NO_EVENT),
];

#[test]
fn evolution_with_schemas() {
    check_capture("evolution-s1", None, EVOLUTION_DIVERGENCES);
}

const EVOLUTION_S2_CONFIG: &str = r#"
[tables."pg.depot.parts".columns]
price = "decimal(12,2)"
weight_kg = "double"
added_on = "date"

[tables."pg.depot.moves".columns]
moved_at = "timestamptz"
"#;

#[test]
fn evolution_without_schemas() {
    check_capture("evolution-s2", Some(EVOLUTION_S2_CONFIG), EVOLUTION_DIVERGENCES);
}

#[test]
fn extras_ranges_arrays_geometry_key_change_and_a_table_without_key() {
    check_capture("extras-s1", None, &[("shop.extras", "00000000-0000-0000-0000-000000000001", "j_arr", JSON_NULL)]);
}

/// Every Connect type and logical name in a capture's row schemas, recursively.
fn schema_names(schema: &Value, into: &mut BTreeSet<String>) {
    for key in ["type", "name"] {
        if let Some(name) = schema.get(key).and_then(Value::as_str) {
            into.insert(name.to_string());
        }
    }
    for key in ["items", "keys", "values"] {
        if let Some(inner) = schema.get(key) {
            schema_names(inner, into);
        }
    }
    for field in schema.get("fields").and_then(Value::as_array).into_iter().flatten() {
        schema_names(field, into);
    }
}

#[test]
fn readme_type_table_names_every_type_the_captures_contain() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let table = readme.split("## Type mapping").nth(1).unwrap().split("\n## ").next().unwrap();
    let mut names = BTreeSet::new();
    for capture in std::fs::read_dir(captures_dir()).unwrap().flatten().filter(|e| e.path().join("events.jsonl").exists()) {
        for line in std::fs::read_to_string(capture.path().join("events.jsonl")).unwrap().lines() {
            let record: Value = serde_json::from_str(line).unwrap();
            let Some(value) = record["value"].as_str() else { continue };
            let value: Value = serde_json::from_str(value).unwrap();
            for row in value["schema"]["fields"].as_array().into_iter().flatten().filter(|f| f["field"] == "after") {
                for column in row["fields"].as_array().unwrap() {
                    schema_names(column, &mut names);
                }
            }
        }
    }
    assert!(names.contains("double") && names.contains("io.debezium.time.MicroTimestamp"), "no schemas found: {names:?}");
    let missing: Vec<&String> = names
        .iter()
        .filter(|n| !table.contains(&format!("`{n}`")) && !table.contains(&format!("`{}`", n.trim_start_matches("org.apache.kafka."))))
        .collect();
    assert!(missing.is_empty(), "README's type table does not name {missing:?}");
}

#[test]
fn a_table_whose_every_event_fails_leaves_the_other_tables_committed() {
    // shop.audit has no primary key: Debezium sends its records without a key, and its deletes'
    // tombstones too. Every one of its events is a dead letter; the run still commits the rest.
    let capture = captures_dir().join("extras-s1");
    let dir = tempfile::tempdir().unwrap();
    let out = floe(dir.path(), &["ingest", &capture.join("events.jsonl").display().to_string()]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "exit code 3: finished with dead letters\n{report}");
    assert!(report.contains("shop.audit: record has no key"), "{report}");
    for (table, rows) in [("shop.extras", 3), ("shop.lines", 3)] {
        let n = floe_sql(dir.path(), &format!("SELECT count(*) AS n FROM {table}_latest"))[0]["n"].as_i64();
        assert_eq!(n, Some(rows), "{table}");
    }
    let letters = floe_sql(dir.path(), "SELECT target_table, count(*) AS n FROM floe.dead_letters GROUP BY target_table");
    assert_eq!(letters, vec![serde_json::json!({"target_table": "shop.audit", "n": 5})]);
}

/// Prices events in the capture whose decimal `amount` has `scale` (2 before the ALTER, 4 after).
fn prices_events_with_scale(capture: &Path, scale: &str) -> usize {
    let events = std::fs::read_to_string(capture.join("events.jsonl")).unwrap();
    let scale_of = |line: &str| -> Option<String> {
        let event: Value = serde_json::from_str(line).unwrap();
        let value: Value = serde_json::from_str(event["value"].as_str()?).unwrap();
        let fields = value["schema"]["fields"].as_array()?.iter().find(|f| f["field"] == "after")?["fields"].clone();
        let amount = fields.as_array()?.iter().find(|f| f["field"] == "amount")?.clone();
        Some(amount["parameters"]["scale"].as_str()?.to_string())
    };
    events.lines().filter(|line| line.contains("pg.shop.prices") && scale_of(line).as_deref() == Some(scale)).count()
}

#[test]
fn an_incompatible_change_pauses_its_table_until_resumed_while_the_others_go_on() {
    // Mid-stream, shop.prices.amount goes from numeric(8,2) to numeric(12,4): an Iceberg decimal
    // cannot change its scale. shop.stock changes on, before and after.
    let capture = captures_dir().join("incompatible-s1");
    let events = capture.join("events.jsonl").display().to_string();
    let (before, after) = (prices_events_with_scale(&capture, "2"), prices_events_with_scale(&capture, "4"));
    assert!(before > 0 && after > 0, "the capture changes the scale mid-stream");
    let dir = tempfile::tempdir().unwrap();
    let prices_latest = |dir: &Path| floe_sql(dir, "SELECT sku, CAST(amount AS VARCHAR) AS amount FROM shop.prices_latest ORDER BY sku");
    let before_the_change = vec![
        serde_json::json!({"sku": "A-1", "amount": "11.00"}),
        serde_json::json!({"sku": "B-2", "amount": "3.25"}),
        serde_json::json!({"sku": "C-3", "amount": "99.99"}),
    ];

    let out = floe(dir.path(), &["ingest", &events]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "exit code 4: a table is paused\n{report}");
    assert!(report.contains("paused table:       shop.prices: incompatible schema change") && report.contains("amount"), "{report}");
    let rows = floe_sql(dir.path(), "SELECT count(*) AS n FROM shop.prices")[0]["n"].as_i64();
    assert_eq!(rows, Some(before as i64), "the paused table holds exactly the events before the change");
    assert_eq!(prices_latest(dir.path()), before_the_change);
    let stock = floe_sql(dir.path(), "SELECT * FROM shop.stock_latest");
    assert_matches_truth(&stock, &read_json(&capture.join("truth_stock.json")), &["item_id"]);
    let tables = floe(dir.path(), &["tables"]);
    assert!(!String::from_utf8_lossy(&tables.stdout).contains("dead_letters"), "nothing is a dead letter");

    let status = floe(dir.path(), &["status"]);
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(status.contains("shop.prices is paused: incompatible schema change"), "{status}");

    // Paused across runs: the same input again takes nothing for it.
    let again = floe(dir.path(), &["ingest", &events]);
    assert_eq!(again.status.code(), Some(4), "{}", String::from_utf8_lossy(&again.stdout));
    assert_eq!(floe_sql(dir.path(), "SELECT count(*) AS n FROM shop.prices")[0]["n"].as_i64(), Some(before as i64));

    // The operator chooses to dead-letter the table's incompatible records and resumes it: the
    // records left in the source are read again, from the table's committed positions.
    let config = dir.path().join("floe.toml");
    std::fs::write(&config, "[tables.\"pg.shop.prices\"]\non_incompatible = \"dead_letter\"\n").unwrap();
    let resumed = floe(dir.path(), &["resume", "shop.prices"]);
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("shop.prices: resumed"), "{resumed:?}");
    let out = floe(dir.path(), &["ingest", &events, "--config", &config.display().to_string()]);
    assert_eq!(out.status.code(), Some(3), "exit code 3: dead letters\n{}", String::from_utf8_lossy(&out.stdout));
    let letters = floe_sql(dir.path(), "SELECT target_table, count(*) AS n FROM floe.dead_letters GROUP BY target_table");
    assert_eq!(letters, vec![serde_json::json!({"target_table": "shop.prices", "n": after})]);
    assert_eq!(prices_latest(dir.path()), before_the_change);
    let status = floe(dir.path(), &["status"]);
    assert!(!String::from_utf8_lossy(&status.stdout).contains("is paused"));
    let stock = floe_sql(dir.path(), "SELECT * FROM shop.stock_latest");
    assert_matches_truth(&stock, &read_json(&capture.join("truth_stock.json")), &["item_id"]);
}
