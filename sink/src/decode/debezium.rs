//! Debezium JSON (JsonConverter output, with or without the schema envelope) → [`ChangeEvent`].
//!
//! With `schemas.enable=true` every record repeats its Connect schema (kilobytes of JSON). The
//! envelope is split without building a tree for the schema, and the fields a schema maps to
//! are cached by its raw text, so an unchanged schema costs one hash lookup.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use floe_catalog::iceberg::spec::Schema;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tracing::warn;

use super::connect::Fallback;
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
    cache: &mut SchemaCache,
) -> Result<Option<ChangeEvent>, DecodeError> {
    let Some(value) = value else { return Ok(None) };
    let (value_schema, payload) = split_envelope(value, "value")?;
    let payload = match payload {
        Value::Null => return Ok(None),
        Value::Object(map) => map,
        _ => return Err(DecodeError::new("value payload is not a JSON object")),
    };
    let code = payload.get("op").and_then(Value::as_str).ok_or_else(|| DecodeError::new("value has no 'op' field"))?;
    let op = Op::parse(code).ok_or_else(|| DecodeError::new(format!("unsupported op '{code}'")))?;
    let source_ts_micros = source_ts(&payload);
    if op == Op::Truncate {
        return Ok(Some(ChangeEvent { op, columns: vec![], complete_schema: false, key: vec![], row: Map::new(), source_ts_micros }));
    }

    let image_name = if op == Op::Delete { "before" } else { "after" };
    let image = match payload.get(image_name) {
        Some(Value::Object(map)) => map.clone(),
        Some(Value::Null) | None if op == Op::Delete => Map::new(),
        _ => return Err(DecodeError::new(format!("'{code}' event without an '{image_name}' image"))),
    };
    let (key_schema, key_payload) = match key {
        Some(bytes) => split_envelope(bytes, "key")?,
        None => (None, Value::Null),
    };
    let Value::Object(key_values) = key_payload else {
        return Err(DecodeError::new("record has no key: floe needs the primary key to keep current state"));
    };
    if key_values.is_empty() {
        return Err(DecodeError::new("record key has no columns"));
    }

    let (columns, complete_schema) = match value_schema {
        Some(schema) => (cache.image_fields(schema, image_name)?.as_ref().clone(), true),
        None => (infer_fields(&image, table_schema, hints)?, false),
    };
    let key_fields = match key_schema {
        Some(schema) => cache.key_fields(schema)?.as_ref().clone(),
        None => infer_fields(&key_values, table_schema, hints)?,
    };
    let mut row = canonical_struct(&image, &columns)?;
    row.extend(canonical_struct(&key_values, &key_fields)?);
    let columns = merge_key_fields(columns, &key_fields);
    Ok(Some(ChangeEvent { op, columns, complete_schema, key: key_fields.iter().map(|f| f.name.clone()).collect(), row, source_ts_micros }))
}

fn invalid_json(what: &str, e: serde_json::Error) -> DecodeError {
    DecodeError::new(format!("{what} is not valid JSON: {e}"))
}

/// `{"schema": …, "payload": …}` → (Some(raw schema), payload); anything else is a bare
/// payload. The schema stays raw text: it is only parsed when the cache has not seen it.
fn split_envelope<'a>(bytes: &'a [u8], what: &str) -> Result<(Option<&'a RawValue>, Value), DecodeError> {
    if let Ok(parts) = serde_json::from_slice::<HashMap<&str, &RawValue>>(bytes) {
        if let (2, Some(schema), Some(payload)) = (parts.len(), parts.get("schema"), parts.get("payload")) {
            let payload = serde_json::from_str(payload.get()).map_err(|e| invalid_json(what, e))?;
            let schema = (schema.get() != "null").then_some(*schema);
            return Ok((schema, payload));
        }
    }
    Ok((None, serde_json::from_slice(bytes).map_err(|e| invalid_json(what, e))?))
}

/// Fields of Connect schemas already seen, by their raw JSON text.
#[derive(Debug, Default)]
pub struct SchemaCache {
    before: HashMap<String, Arc<Vec<Field>>>,
    after: HashMap<String, Arc<Vec<Field>>>,
    key: HashMap<String, Arc<Vec<Field>>>,
    /// Columns of unknown type already warned about, by schema name and column path.
    warned: HashSet<(String, Fallback)>,
}

impl SchemaCache {
    fn image_fields(&mut self, schema: &RawValue, image: &str) -> Result<Arc<Vec<Field>>, DecodeError> {
        let map = if image == "before" { &mut self.before } else { &mut self.after };
        cached(map, &mut self.warned, schema, |parsed| image_fields(parsed, image))
    }

    fn key_fields(&mut self, schema: &RawValue) -> Result<Arc<Vec<Field>>, DecodeError> {
        cached(&mut self.key, &mut self.warned, schema, connect::struct_fields)
    }
}

/// Bounds the cache: a stream whose schema changes on every record must not grow it forever.
const MAX_CACHED_SCHEMAS: usize = 256;

fn cached(
    map: &mut HashMap<String, Arc<Vec<Field>>>,
    warned: &mut HashSet<(String, Fallback)>,
    raw: &RawValue,
    convert: impl FnOnce(&Value) -> Result<(Vec<Field>, Vec<Fallback>), DecodeError>,
) -> Result<Arc<Vec<Field>>, DecodeError> {
    if let Some(fields) = map.get(raw.get()) {
        return Ok(fields.clone());
    }
    let parsed: Value = serde_json::from_str(raw.get()).map_err(|e| invalid_json("schema", e))?;
    let (fields, fallbacks) = convert(&parsed)?;
    let schema_name = parsed.get("name").and_then(Value::as_str).unwrap_or("(unnamed schema)");
    for fallback in fallbacks {
        if warned.insert((schema_name.to_string(), fallback.clone())) {
            warn!(
                schema = schema_name,
                column = %fallback.column,
                connect_type = %fallback.connect_type,
                "unknown Kafka Connect type: the column is stored as the value's JSON text"
            );
        }
    }
    let fields = Arc::new(fields);
    if map.len() >= MAX_CACHED_SCHEMAS {
        map.clear();
    }
    map.insert(raw.get().to_string(), fields.clone());
    Ok(fields)
}

/// The fields of the `before`/`after` struct in a Debezium value schema.
fn image_fields(value_schema: &Value, image: &str) -> Result<(Vec<Field>, Vec<Fallback>), DecodeError> {
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
    source.get("ts_us").and_then(Value::as_i64).or_else(|| source.get("ts_ms").and_then(Value::as_i64).map(|ms| ms * 1_000))
}
