//! Every Debezium / Kafka Connect type through ingest and the latest view, checked value by value
//! against the README's type mapping. Also: ingest from stdin.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

fn field(ty: &str, name: &str, logical: Option<&str>, params: Option<Value>) -> Value {
    let mut f = json!({"type": ty, "optional": true, "field": name});
    if let Some(logical) = logical {
        f["name"] = json!(logical);
    }
    if let Some(params) = params {
        f["parameters"] = params;
    }
    f
}

fn all_types_event() -> String {
    let fields = vec![
        json!({"type": "int64", "optional": false, "field": "id"}),
        field("int8", "i8", None, None),
        field("int16", "i16", None, None),
        field("int32", "year", Some("io.debezium.time.Year"), None),
        field("float", "f32", None, None),
        field("double", "f64", None, None),
        field("double", "nan", None, None),
        field("boolean", "flag", None, None),
        field("bytes", "blob", None, None),
        field(
            "bytes",
            "price",
            Some("org.apache.kafka.connect.data.Decimal"),
            Some(json!({"scale": "2", "connect.decimal.precision": "10"})),
        ),
        json!({"type": "struct", "optional": true, "field": "vprice", "name": "io.debezium.data.VariableScaleDecimal",
               "fields": [{"type": "int32", "optional": false, "field": "scale"}, {"type": "bytes", "optional": false, "field": "value"}]}),
        field("int32", "day", Some("io.debezium.time.Date"), None),
        field("int32", "t_ms", Some("io.debezium.time.Time"), None),
        field("int64", "t_us", Some("io.debezium.time.MicroTime"), None),
        field("int64", "t_ns", Some("io.debezium.time.NanoTime"), None),
        field("int64", "ts_ms", Some("io.debezium.time.Timestamp"), None),
        field("int64", "ts_us", Some("io.debezium.time.MicroTimestamp"), None),
        field("int64", "ts_ns", Some("io.debezium.time.NanoTimestamp"), None),
        field("string", "zts", Some("io.debezium.time.ZonedTimestamp"), None),
        field("string", "ztime", Some("io.debezium.time.ZonedTime"), None),
        field("string", "doc", Some("io.debezium.data.Json"), None),
        field("string", "uid", Some("io.debezium.data.Uuid"), None),
        field("string", "color", Some("io.debezium.data.Enum"), Some(json!({"allowed": "red,green"}))),
        field("string", "tags", Some("io.debezium.data.EnumSet"), Some(json!({"allowed": "a,b,c"}))),
        json!({"type": "array", "optional": true, "field": "nums", "items": {"type": "int32", "optional": true}}),
        json!({"type": "struct", "optional": true, "field": "point", "name": "pt",
               "fields": [{"type": "int32", "optional": true, "field": "x"}, {"type": "string", "optional": true, "field": "label"}]}),
        json!({"type": "map", "optional": true, "field": "attrs", "keys": {"type": "string", "optional": false}, "values": {"type": "int32", "optional": true}}),
    ];
    let after = json!({
        "id": 1, "i8": -8, "i16": 300, "year": 2024, "f32": 1.5, "f64": 2.25, "nan": "NaN", "flag": true,
        "blob": "AQID", "price": "MDk=", "vprice": {"scale": 3, "value": "MDk="},
        "day": 19000, "t_ms": 3723000, "t_us": 3723000001i64, "t_ns": 3723000001000i64,
        "ts_ms": 1700000000123i64, "ts_us": 1700000000123456i64, "ts_ns": 1700000000123456789i64,
        "zts": "2023-11-14T22:13:20.123456+02:00", "ztime": "10:15:30Z", "doc": "{\"a\":1}",
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "color": "red", "tags": "a,c",
        "nums": [1, 2, 3], "point": {"x": 7, "label": "p"}, "attrs": {"k": 1}
    });
    let value_schema = json!({"type": "struct", "optional": false, "fields": [
        {"type": "struct", "optional": true, "field": "before", "fields": fields},
        {"type": "struct", "optional": true, "field": "after", "fields": fields},
        {"type": "string", "optional": false, "field": "op"}]});
    let key = json!({"schema": {"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "id"}]}, "payload": {"id": 1}});
    let value = json!({"schema": value_schema, "payload": {"before": null, "after": after, "op": "r"}});
    json!({"topic": "pg.types.everything", "key": key.to_string(), "value": value.to_string()}).to_string()
}

#[test]
fn every_debezium_type_lands_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("types.jsonl");
    std::fs::write(&input, all_types_event() + "\n").unwrap();
    let out = floe(dir.path(), &["ingest", input.to_str().unwrap()]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let row = floe_sql(dir.path(), "SELECT * FROM types.everything_latest").remove(0);
    let expected = json!({
        "id": 1, "i8": -8, "i16": 300, "year": 2024, "f32": 1.5, "f64": 2.25, "flag": true,
        "price": 123.45, "vprice": "12.345",
        "day": "2022-01-08", "t_ms": "01:02:03", "t_us": "01:02:03.000001", "t_ns": "01:02:03.000001",
        "ts_ms": "2023-11-14T22:13:20.123", "ts_us": "2023-11-14T22:13:20.123456", "ts_ns": "2023-11-14T22:13:20.123456",
        "zts": "2023-11-14T20:13:20.123456Z", "ztime": "10:15:30Z", "doc": "{\"a\":1}",
        "uid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "color": "red", "tags": "a,c",
        "nums": [1, 2, 3], "point": {"x": 7, "label": "p"}, "attrs": {"k": 1}
    });
    for (column, want) in expected.as_object().unwrap() {
        assert!(same_value(&row[column], want), "column {column}: floe has {}, expected {want}", row[column]);
    }
    let nan = floe_sql(dir.path(), "SELECT isnan(nan) AS is_nan, encode(blob, 'hex') AS blob FROM types.everything_latest");
    assert_eq!(nan[0]["is_nan"], json!(true));
    assert_eq!(nan[0]["blob"], json!("010203"));
    let types = floe_sql(dir.path(), "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'everything'");
    let type_of = |c: &str| types.iter().find(|r| r["column_name"] == c).unwrap()["data_type"].as_str().unwrap().to_string();
    assert_eq!(type_of("price"), "Decimal128(10, 2)");
    assert_eq!(type_of("day"), "Date32");
    assert!(type_of("zts").starts_with("Timestamp(µs, \"+00:00\")") || type_of("zts").contains("Microsecond"), "{}", type_of("zts"));
    assert!(type_of("nums").starts_with("List"), "{}", type_of("nums"));
    assert!(type_of("attrs").starts_with("Map"), "{}", type_of("attrs"));
}

#[test]
fn ingest_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_floe"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "ingest", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all((all_types_event() + "\n").as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("rows → types.everything 1"));
    assert_eq!(floe_sql(dir.path(), "SELECT count(*) AS n FROM types.everything_latest")[0]["n"], 1);
}
