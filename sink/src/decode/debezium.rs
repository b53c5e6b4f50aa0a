//! Debezium JSON (JsonConverter output, with or without the schema envelope) → [`ChangeEvent`].

use floe_catalog::iceberg::spec::Schema;
use serde_json::{Map, Value};

use super::infer::{infer_fields, ColumnHints};
use super::value::canonical_struct;
use super::{connect, ChangeEvent, DecodeError, Field, Op};

/// Decodes one record. `Ok(None)` is a tombstone (null value), which carries no change.
/// `table_schema` and `hints` type the columns of schemaless records.
pub fn decode_debezium_json(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    table_schema: Option<&Schema>,
    hints: &ColumnHints,
) -> Result<Option<ChangeEvent>, DecodeError> {
    let Some(value) = value else { return Ok(None) };
    let (value_schema, payload) = split_envelope(parse(value, "value")?);
    let payload = match payload {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(DecodeError::new("value payload is not a JSON object")),
    };
    let code = payload.get("op").and_then(Value::as_str).ok_or_else(|| DecodeError::new("value has no 'op' field"))?;
    let op = Op::parse(code).ok_or_else(|| DecodeError::new(format!("unsupported op '{code}'")))?;
    let source_ts_micros = source_ts(&payload);
    if op == Op::Truncate {
        return Ok(Some(ChangeEvent {
            op,
            columns: vec![],
            complete_schema: false,
            key: vec![],
            row: Map::new(),
            source_ts_micros,
        }));
    }

    let image_name = if op == Op::Delete { "before" } else { "after" };
    let image = match payload.get(image_name) {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Null) | None if op == Op::Delete => Map::new(),
        _ => return Err(DecodeError::new(format!("'{code}' event without an '{image_name}' image"))),
    };
    let (key_schema, key_payload) = match key {
        Some(bytes) => split_envelope(parse(bytes, "key")?),
        None => (None, Value::Null),
    };
    let Value::Object(key_values) = key_payload else {
        return Err(DecodeError::new("record has no key: floe needs the primary key to keep current state"));
    };
    if key_values.is_empty() {
        return Err(DecodeError::new("record key has no columns"));
    }

    let (columns, complete_schema) = match &value_schema {
        Some(schema) => (image_fields(schema, image_name)?, true),
        None => (infer_fields(&image, table_schema, hints)?, false),
    };
    let key_fields = match &key_schema {
        Some(schema) => connect::struct_fields(schema)?,
        None => infer_fields(&key_values, table_schema, hints)?,
    };
    let mut row = canonical_struct(&image, &columns)?;
    row.extend(canonical_struct(&key_values, &key_fields)?);
    let columns = merge_key_fields(columns, &key_fields);
    Ok(Some(ChangeEvent {
        op,
        columns,
        complete_schema,
        key: key_fields.iter().map(|f| f.name.clone()).collect(),
        row,
        source_ts_micros,
    }))
}

fn parse(bytes: &[u8], what: &str) -> Result<Value, DecodeError> {
    serde_json::from_slice(bytes).map_err(|e| DecodeError::new(format!("{what} is not valid JSON: {e}")))
}

/// `{"schema": …, "payload": …}` → (Some(schema), payload); anything else is a bare payload.
fn split_envelope(value: Value) -> (Option<Value>, Value) {
    match value {
        Value::Object(mut map) if map.len() == 2 && map.contains_key("schema") && map.contains_key("payload") => {
            let payload = map.remove("payload").unwrap_or(Value::Null);
            let schema = map.remove("schema").filter(|s| !s.is_null());
            (schema, payload)
        }
        other => (None, other),
    }
}

/// The fields of the `before`/`after` struct in a Debezium value schema.
fn image_fields(value_schema: &Value, image: &str) -> Result<Vec<Field>, DecodeError> {
    let image_schema = value_schema
        .get("fields")
        .and_then(Value::as_array)
        .and_then(|fields| fields.iter().find(|f| f.get("field").and_then(Value::as_str) == Some(image)))
        .ok_or_else(|| DecodeError::new(format!("value schema has no '{image}' struct")))?;
    connect::struct_fields(image_schema)
}

/// Key columns are required; a key column missing from the image (key-only deletes) is added.
fn merge_key_fields(mut columns: Vec<Field>, key_fields: &[Field]) -> Vec<Field> {
    for key in key_fields {
        match columns.iter_mut().find(|c| c.name == key.name) {
            Some(column) => column.optional = false,
            None => columns.push(Field { optional: false, ..key.clone() }),
        }
    }
    columns
}

fn source_ts(payload: &Map<String, Value>) -> Option<i64> {
    let source = payload.get("source")?;
    source
        .get("ts_us")
        .and_then(Value::as_i64)
        .or_else(|| source.get("ts_ms").and_then(Value::as_i64).map(|ms| ms * 1_000))
}
