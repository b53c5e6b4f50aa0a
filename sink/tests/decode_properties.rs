//! Properties of the Debezium JSON decoder, over random Kafka Connect schemas and values:
//! - whatever JsonConverter writes for a schema and value, floe decodes to the value itself
//!   (the model below states each type's canonical form independently of the decoder);
//! - no input, however broken, panics the decoder.

use base64::Engine;
use std::sync::Arc;

use floe_catalog::iceberg::arrow::schema_to_arrow_schema;
use floe_sink::columnar::RowBuilder;
use floe_sink::decode::{cell, decode_debezium_json, Cell, SchemaCache};
use floe_sink::schema_sync::new_table_schema;
use num_bigint::BigInt;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// One generated column: its Connect schema, the value JsonConverter writes, and the
/// canonical value floe must produce.
#[derive(Debug, Clone)]
struct Sample {
    schema: Value,
    wire: Value,
    canonical: Value,
}

fn leaf(schema: Value, wire: Value, canonical: Value) -> Sample {
    Sample { schema, wire, canonical }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn decimal_text(unscaled: i128, scale: u32) -> String {
    let digits = unscaled.unsigned_abs().to_string();
    let sign = if unscaled < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale as usize + 1);
    let (int, frac) = padded.split_at(padded.len() - scale as usize);
    format!("{sign}{int}.{frac}")
}

fn float_sample(name: &'static str) -> impl Strategy<Value = Sample> {
    prop_oneof![
        any::<f32>().prop_filter("finite", |f| f.is_finite()).prop_map(|f| f as f64),
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
    ]
    .prop_map(move |f| {
        let wire = if f.is_nan() {
            json!("NaN")
        } else if f.is_infinite() {
            json!(if f > 0.0 { "Infinity" } else { "-Infinity" })
        } else {
            json!(f)
        };
        leaf(json!({"type": name}), wire.clone(), wire)
    })
}

fn primitive() -> impl Strategy<Value = Sample> {
    prop_oneof![
        any::<bool>().prop_map(|b| leaf(json!({"type": "boolean"}), json!(b), json!(b))),
        any::<i8>().prop_map(|v| leaf(json!({"type": "int8"}), json!(v), json!(v))),
        any::<i16>().prop_map(|v| leaf(json!({"type": "int16"}), json!(v), json!(v))),
        any::<i32>().prop_map(|v| leaf(json!({"type": "int32"}), json!(v), json!(v))),
        any::<i64>().prop_map(|v| leaf(json!({"type": "int64"}), json!(v), json!(v))),
        float_sample("float"),
        float_sample("double"),
        ".*".prop_map(|s: String| leaf(json!({"type": "string"}), json!(s), json!(s))),
        proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| {
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            leaf(json!({"type": "bytes"}), json!(b64(&b)), json!(hex))
        }),
        (any::<i64>(), 0u32..12).prop_map(|(unscaled, scale)| {
            let schema = json!({"type": "bytes", "name": "org.apache.kafka.connect.data.Decimal",
                                "parameters": {"scale": scale.to_string(), "connect.decimal.precision": "38"}});
            let bytes = BigInt::from(unscaled).to_signed_bytes_be();
            leaf(schema, json!(b64(&bytes)), json!(decimal_text(unscaled as i128, scale)))
        }),
        (any::<i128>(), 0u32..40).prop_map(|(unscaled, scale)| {
            let schema = json!({"type": "struct", "name": "io.debezium.data.VariableScaleDecimal",
                                "fields": [{"type": "int32", "field": "scale"}, {"type": "bytes", "field": "value"}]});
            let wire = json!({"scale": scale, "value": b64(&BigInt::from(unscaled).to_signed_bytes_be())});
            leaf(schema, wire, json!(decimal_text(unscaled, scale)))
        }),
        (-700_000i32..3_000_000).prop_map(|d| leaf(json!({"type": "int32", "name": "io.debezium.time.Date"}), json!(d), json!(d))),
        (0i64..86_400_000_000).prop_map(|t| leaf(json!({"type": "int64", "name": "io.debezium.time.MicroTime"}), json!(t), json!(t))),
        (-62_135_596_800_000_000i64..253_402_300_799_999_999)
            .prop_map(|t| { leaf(json!({"type": "int64", "name": "io.debezium.time.MicroTimestamp"}), json!(t), json!(t)) }),
        (-62_135_596_800_000i64..253_402_300_799_999)
            .prop_map(|t| { leaf(json!({"type": "int64", "name": "io.debezium.time.Timestamp"}), json!(t), json!(t * 1000)) }),
        (-62_135_596_800_000_000i64..253_402_300_799_999_999).prop_map(|t| {
            let text = chrono::DateTime::from_timestamp_micros(t).unwrap().format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
            leaf(json!({"type": "string", "name": "io.debezium.time.ZonedTimestamp"}), json!(text), json!(t))
        }),
    ]
}

/// Nested types over `inner`: arrays, maps with string keys (a JSON object) or other keys
/// (an array of pairs), and structs.
fn nested(inner: impl Strategy<Value = Sample> + Clone) -> impl Strategy<Value = Sample> {
    prop_oneof![
        proptest::collection::vec(inner.clone(), 0..4).prop_map(|items| {
            let schema = items.first().map_or(json!({"type": "string"}), |s| s.schema.clone());
            // One element schema: every element must share the first one's type.
            let items: Vec<_> = items.into_iter().filter(|s| s.schema == schema).collect();
            Sample {
                schema: json!({"type": "array", "items": schema}),
                wire: Value::Array(items.iter().map(|s| s.wire.clone()).collect()),
                canonical: Value::Array(items.iter().map(|s| s.canonical.clone()).collect()),
            }
        }),
        (proptest::collection::btree_map("[a-z]{1,6}", inner.clone(), 0..4)).prop_map(|entries| {
            let schema = entries.values().next().map_or(json!({"type": "string"}), |s| s.schema.clone());
            let entries: Vec<_> = entries.into_iter().filter(|(_, s)| s.schema == schema).collect();
            Sample {
                schema: json!({"type": "map", "keys": {"type": "string", "optional": false}, "values": schema}),
                wire: Value::Object(entries.iter().map(|(k, s)| (k.clone(), s.wire.clone())).collect()),
                canonical: Value::Object(entries.iter().map(|(k, s)| (k.clone(), s.canonical.clone())).collect()),
            }
        }),
        (proptest::collection::btree_map(any::<i32>(), inner.clone(), 0..4)).prop_map(|entries| {
            let schema = entries.values().next().map_or(json!({"type": "string"}), |s| s.schema.clone());
            let entries: Vec<_> = entries.into_iter().filter(|(_, s)| s.schema == schema).collect();
            Sample {
                schema: json!({"type": "map", "keys": {"type": "int32", "optional": false}, "values": schema}),
                wire: Value::Array(entries.iter().map(|(k, s)| json!([k, s.wire])).collect()),
                canonical: Value::Object(entries.iter().map(|(k, s)| (k.to_string(), s.canonical.clone())).collect()),
            }
        }),
        proptest::collection::vec(inner, 1..4).prop_map(|fields| {
            let named: Vec<(String, Sample)> = fields.into_iter().enumerate().map(|(i, s)| (format!("f{i}"), s)).collect();
            let schemas: Vec<Value> = named.iter().map(|(n, s)| with_name(&s.schema, n)).collect();
            Sample {
                schema: json!({"type": "struct", "name": "gen.Nested", "fields": schemas}),
                wire: Value::Object(named.iter().map(|(n, s)| (n.clone(), s.wire.clone())).collect()),
                canonical: Value::Object(named.iter().map(|(n, s)| (n.clone(), s.canonical.clone())).collect()),
            }
        }),
    ]
}

fn with_name(schema: &Value, name: &str) -> Value {
    let mut field = schema.clone();
    field["field"] = json!(name);
    field
}

fn column() -> impl Strategy<Value = (Sample, bool)> {
    let sample = primitive().prop_recursive(2, 16, 4, nested);
    (sample, proptest::bool::weighted(0.15)).prop_map(|(mut s, null)| {
        s.schema["optional"] = json!(true);
        if null {
            s.wire = Value::Null;
            s.canonical = Value::Null;
        }
        (s, null)
    })
}

/// A Debezium create event of a table `id` + the columns, exactly as JsonConverter frames it.
fn event(columns: &[Sample]) -> (String, String) {
    let mut fields = vec![json!({"type": "int64", "optional": false, "field": "id"})];
    fields.extend(columns.iter().enumerate().map(|(i, c)| with_name(&c.schema, &format!("c{i}"))));
    let row_schema = |field: &str| json!({"type": "struct", "optional": true, "name": "gen.t.Value", "field": field, "fields": fields});
    let schema = json!({"type": "struct", "name": "gen.t.Envelope", "fields": [
        row_schema("before"), row_schema("after"),
        {"type": "string", "optional": false, "field": "op"},
    ]});
    let mut after = Map::new();
    after.insert("id".into(), json!(7));
    for (i, c) in columns.iter().enumerate() {
        after.insert(format!("c{i}"), c.wire.clone());
    }
    let key = json!({"schema": {"type": "struct", "name": "gen.t.Key", "fields": [{"type": "int64", "optional": false, "field": "id"}]},
                     "payload": {"id": 7}});
    let value = json!({"schema": schema, "payload": {"before": null, "after": after, "op": "c"}});
    (key.to_string(), value.to_string())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn every_generated_value_decodes_to_itself(columns in proptest::collection::vec(column(), 1..6)) {
        let columns: Vec<Sample> = columns.into_iter().map(|(s, _)| s).collect();
        let (key, value) = event(&columns);
        let decoded = decode_debezium_json(Some(key.as_bytes()), Some(value.as_bytes()), None, &Default::default(), &mut SchemaCache::default())
            .unwrap_or_else(|e| panic!("{e}\n{value}"))
            .expect("not a tombstone");
        let row = decoded.canonical_row().unwrap_or_else(|e| panic!("{e}\n{value}"));
        prop_assert_eq!(&row["id"], &json!(7));
        for (i, column) in columns.iter().enumerate() {
            prop_assert_eq!(&row[&format!("c{i}")], &column.canonical, "column c{} of {}", i, value);
        }
    }

    /// The production path (cells into Arrow builders) stores exactly what arrow-json makes of
    /// the canonical values.
    #[test]
    fn columnar_rows_equal_arrow_json_of_the_canonical_values(columns in proptest::collection::vec(column(), 1..6)) {
        let columns: Vec<Sample> = columns.into_iter().map(|(s, _)| s).collect();
        let (key, value) = event(&columns);
        let decoded = decode_debezium_json(Some(key.as_bytes()), Some(value.as_bytes()), None, &Default::default(), &mut SchemaCache::default())
            .unwrap()
            .expect("not a tombstone");
        let schema = new_table_schema(&decoded).unwrap();
        let arrow_schema = Arc::new(schema_to_arrow_schema(&schema).unwrap());

        let mut canonical = decoded.canonical_row().unwrap();
        let metadata = [("_op", json!("c")), ("_op_ts", json!(1)), ("_source_ts", Value::Null), ("_src_partition", json!(0)), ("_src_offset", json!(1))];
        canonical.extend(metadata.iter().map(|(k, v)| (k.to_string(), v.clone())));
        let mut json_decoder = arrow_json::ReaderBuilder::new(arrow_schema.clone()).build_decoder().unwrap();
        json_decoder.serialize(&[Value::Object(canonical)]).unwrap();
        let expected = json_decoder.flush().unwrap().unwrap();

        let mut rows = RowBuilder::new(arrow_schema.clone());
        let mut cells = vec![Cell::Null; rows.width()];
        for (field, value) in decoded.columns.iter().zip(decoded.values.clone()) {
            cells[rows.index_of(&field.name).unwrap()] = cell(value, &field.kind).unwrap();
        }
        for (name, value) in metadata {
            cells[rows.index_of(name).unwrap()] = match value {
                Value::String(s) => Cell::Text(s),
                Value::Number(n) => Cell::Int(n.as_i64().unwrap()),
                _ => Cell::Null,
            };
        }
        rows.append(&mut cells, 0).unwrap_or_else(|e| panic!("{e}\n{value}"));
        prop_assert_eq!(rows.finish().unwrap(), expected, "{}", value);
    }

    #[test]
    fn random_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..64), value in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_debezium_json(Some(&key), Some(&value), None, &Default::default(), &mut SchemaCache::default());
    }

    #[test]
    fn damaged_real_events_never_panic(line in 0usize..38, cut in 0usize..4000, flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..8)) {
        let events = include_str!("../../tests/captures/types-s1/events.jsonl");
        let record: Value = serde_json::from_str(events.lines().nth(line).unwrap()).unwrap();
        let key = record["key"].as_str().map(|k| k.as_bytes().to_vec());
        let mut value = record["value"].as_str().unwrap_or("").as_bytes().to_vec();
        value.truncate(value.len().saturating_sub(cut % value.len().max(1)));
        for (at, byte) in flips {
            if !value.is_empty() {
                let at = at % value.len();
                value[at] = byte;
            }
        }
        let _ = decode_debezium_json(key.as_deref(), Some(&value), None, &Default::default(), &mut SchemaCache::default());
    }
}
