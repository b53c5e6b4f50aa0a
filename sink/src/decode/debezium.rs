//! Debezium JSON (JsonConverter output, with or without the schema envelope) → [`ChangeEvent`].
//!
//! With `schemas.enable=true` every record repeats its Connect schema (kilobytes of JSON). When a
//! record's schema text is byte-for-byte the one before it, the envelope is split with a compare
//! instead of a parse, and the schema's fields come from the cache. Payloads are read without a
//! JSON tree: the envelope's members are borrowed, and the image is read straight into values
//! aligned with the schema's fields.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use floe_catalog::iceberg::spec::Schema;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tracing::warn;

use super::connect::Fallback;
use super::infer::{infer_fields, ColumnHints};
use super::json_object::read_object;
use super::{connect, ChangeEvent, DecodeError, Decoded, Decoder, Field, Op, TableState};
use crate::source::Message;

/// The Debezium JSON decoder: [`decode_debezium_json`] behind the [`Decoder`] seam.
#[derive(Debug, Default)]
pub struct DebeziumJson {
    cache: SchemaCache,
}

impl Decoder for DebeziumJson {
    fn decode(&mut self, message: &Message, table: TableState<'_>) -> Decoded {
        match decode_debezium_json(message.key.as_deref(), message.value.as_deref(), table.schema, table.hints, &mut self.cache) {
            Ok(Some(event)) => Decoded::Change(event),
            Ok(None) => Decoded::Tombstone,
            Err(reason) => Decoded::DeadLetter(reason),
        }
    }
}

/// The members of a Debezium value payload floe reads; the rest is skipped unread.
#[derive(Deserialize)]
struct Payload<'a> {
    #[serde(borrow, default)]
    before: Option<&'a RawValue>,
    #[serde(borrow, default)]
    after: Option<&'a RawValue>,
    #[serde(borrow, default)]
    op: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    source: Option<&'a RawValue>,
}

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
    let (value_schema, payload) = split_envelope(value, &mut cache.value_text)?;
    let Some(payload) = parse_payload(payload)? else { return Ok(None) };
    let code = payload.op.as_deref().ok_or_else(|| DecodeError::new("value has no 'op' field"))?;
    let op = Op::parse(code).ok_or_else(|| DecodeError::new(format!("unsupported op '{code}'")))?;
    let source_ts_micros = payload.source.and_then(source_ts);
    if op == Op::Truncate {
        return Ok(Some(ChangeEvent::truncate(source_ts_micros)));
    }

    let image_name = if op == Op::Delete { "before" } else { "after" };
    let image = if op == Op::Delete { payload.before } else { payload.after };
    let image = match image.map(|raw| raw.get()) {
        Some(text) if text.starts_with('{') => Some(text),
        None if op == Op::Delete => None,
        _ => return Err(DecodeError::new(format!("'{code}' event without an '{image_name}' image"))),
    };
    let (key_schema, key_payload) = match key {
        Some(bytes) => split_envelope(bytes, &mut cache.key_text)?,
        None => (None, &b"null"[..]),
    };
    let key_payload = std::str::from_utf8(key_payload).map_err(|e| invalid_json("key", e))?;
    if !key_payload.trim_start().starts_with('{') {
        return Err(DecodeError::new("record has no key: floe needs the primary key to keep current state"));
    }

    let (columns, mut values) = match value_schema {
        Some(schema) => {
            let fields = cache.image_fields(schema, image_name)?;
            let mut values = Vec::with_capacity(fields.len());
            if let Some(text) = image {
                read_object(text, &fields, &mut values).map_err(|e| in_value(image_name, e))?;
            } else {
                values.resize(fields.len(), Value::Null);
            }
            (fields, values)
        }
        None => {
            let object: Map<String, Value> = match image {
                Some(text) => serde_json::from_str(text).map_err(|e| invalid_json("value", e))?,
                None => Map::new(),
            };
            schemaless_values(object, table_schema, hints)?
        }
    };
    let (key_fields, key_values) = match key_schema {
        Some(schema) => {
            let fields = cache.key_fields(schema)?;
            let mut values = Vec::with_capacity(fields.len());
            if read_object(key_payload, &fields, &mut values).map_err(|e| in_value("key", e))? == 0 {
                return Err(DecodeError::new("record key has no columns"));
            }
            (fields, values)
        }
        None => {
            let object: Map<String, Value> = serde_json::from_str(key_payload).map_err(|e| invalid_json("key", e))?;
            if object.is_empty() {
                return Err(DecodeError::new("record key has no columns"));
            }
            schemaless_values(object, table_schema, hints)?
        }
    };
    let merged = cache.merged(&columns, &key_fields);
    values.resize(merged.columns.len(), Value::Null);
    for (slot, value) in merged.key_slots.iter().zip(key_values) {
        values[*slot] = value;
    }
    Ok(Some(ChangeEvent {
        op,
        columns: merged.columns.clone(),
        complete_schema: value_schema.is_some(),
        key: merged.key.clone(),
        values,
        source_ts_micros,
    }))
}

/// The fields of a schemaless object (typed by the table and hints, else inferred) and its
/// values aligned with them.
fn schemaless_values(
    mut object: Map<String, Value>,
    table_schema: Option<&Schema>,
    hints: &ColumnHints,
) -> Result<(Arc<Vec<Field>>, Vec<Value>), DecodeError> {
    let fields = infer_fields(&object, table_schema, hints)?;
    let values = fields.iter().map(|f| object.remove(&f.name).unwrap_or(Value::Null)).collect();
    Ok((Arc::new(fields), values))
}

fn invalid_json(what: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(format!("{what} is not valid JSON: {e}"))
}

fn in_value(what: &str, e: DecodeError) -> DecodeError {
    DecodeError::new(format!("{what} is not valid JSON: {e}"))
}

/// The payload's members; `None` for a null payload (a tombstone).
fn parse_payload(bytes: &[u8]) -> Result<Option<Payload<'_>>, DecodeError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<Value>(bytes).map_err(|e| invalid_json("value", e))? {
            Value::Null => Ok(None),
            _ => Err(DecodeError::new("value payload is not a JSON object")),
        };
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| invalid_json("value", e))
}

const ENVELOPE_START: &[u8] = b"{\"schema\":";
const ENVELOPE_PAYLOAD: &[u8] = b",\"payload\":";

/// `{"schema": …, "payload": …}` → (Some(schema text), payload bytes); anything else is a bare
/// payload. `last` is the schema text of the previous envelope: when this one starts with the
/// same bytes, they are that complete JSON value, so the split needs no parse.
fn split_envelope<'a>(bytes: &'a [u8], last: &mut String) -> Result<(Option<&'a str>, &'a [u8]), DecodeError> {
    if let Some(payload) = split_as_last(bytes, last) {
        let schema = &bytes[ENVELOPE_START.len()..ENVELOPE_START.len() + last.len()];
        let schema = std::str::from_utf8(schema).expect("equal to a valid string");
        return Ok(((schema != "null").then_some(schema), payload));
    }
    if let Ok(parts) = serde_json::from_slice::<HashMap<&str, &RawValue>>(bytes) {
        if let (2, Some(schema), Some(payload)) = (parts.len(), parts.get("schema"), parts.get("payload")) {
            last.clear();
            last.push_str(schema.get());
            let payload = payload.get().as_bytes();
            let schema = (schema.get() != "null").then_some(schema.get());
            return Ok((schema, payload));
        }
    }
    Ok((None, bytes))
}

fn split_as_last<'a>(bytes: &'a [u8], last: &str) -> Option<&'a [u8]> {
    if last.is_empty() {
        return None;
    }
    let rest = bytes.strip_prefix(ENVELOPE_START)?.strip_prefix(last.as_bytes())?.strip_prefix(ENVELOPE_PAYLOAD)?;
    let end = rest.iter().rposition(|b| !b.is_ascii_whitespace())?;
    (rest[end] == b'}').then(|| &rest[..end])
}

/// Fields of Connect schemas already seen, by their raw JSON text.
#[derive(Debug, Default)]
pub struct SchemaCache {
    /// Schema text of the last value and key envelopes, for the split without a parse.
    value_text: String,
    key_text: String,
    before: Memo,
    after: Memo,
    key: Memo,
    /// The last merge of image and key fields, by the identity of both lists.
    merge: Option<(Arc<Vec<Field>>, Arc<Vec<Field>>, Arc<Merged>)>,
    /// Columns of unknown type already warned about, by schema name and column path.
    warned: HashSet<(String, Fallback)>,
}

/// An image's columns with the key's added, and where each key column's value goes.
#[derive(Debug)]
struct Merged {
    columns: Arc<Vec<Field>>,
    key: Arc<Vec<String>>,
    key_slots: Vec<usize>,
}

impl SchemaCache {
    fn image_fields(&mut self, schema: &str, image: &str) -> Result<Arc<Vec<Field>>, DecodeError> {
        let memo = if image == "before" { &mut self.before } else { &mut self.after };
        memo.get(schema, &mut self.warned, |parsed| image_fields(parsed, image))
    }

    fn key_fields(&mut self, schema: &str) -> Result<Arc<Vec<Field>>, DecodeError> {
        self.key.get(schema, &mut self.warned, connect::struct_fields)
    }

    fn merged(&mut self, image: &Arc<Vec<Field>>, key: &Arc<Vec<Field>>) -> Arc<Merged> {
        if let Some((i, k, merged)) = &self.merge {
            if Arc::ptr_eq(i, image) && Arc::ptr_eq(k, key) {
                return merged.clone();
            }
        }
        let columns = merge_key_fields(image.as_ref().clone(), key);
        let key_slots = key.iter().map(|k| columns.iter().position(|c| c.name == k.name).expect("merged")).collect();
        let key_names = Arc::new(key.iter().map(|f| f.name.clone()).collect());
        let merged = Arc::new(Merged { columns: Arc::new(columns), key: key_names, key_slots });
        self.merge = Some((image.clone(), key.clone(), merged.clone()));
        merged
    }
}

/// Schema text → fields, remembering the last text so an unchanged schema costs one compare.
#[derive(Debug, Default)]
struct Memo {
    by_text: HashMap<String, Arc<Vec<Field>>>,
    last: Option<(String, Arc<Vec<Field>>)>,
}

/// Bounds the cache: a stream whose schema changes on every record must not grow it forever.
const MAX_CACHED_SCHEMAS: usize = 256;

impl Memo {
    fn get(
        &mut self,
        raw: &str,
        warned: &mut HashSet<(String, Fallback)>,
        convert: impl FnOnce(&Value) -> Result<(Vec<Field>, Vec<Fallback>), DecodeError>,
    ) -> Result<Arc<Vec<Field>>, DecodeError> {
        if let Some((text, fields)) = &self.last {
            if text == raw {
                return Ok(fields.clone());
            }
        }
        let fields = match self.by_text.get(raw) {
            Some(fields) => fields.clone(),
            None => {
                let fields = parse_fields(raw, warned, convert)?;
                if self.by_text.len() >= MAX_CACHED_SCHEMAS {
                    self.by_text.clear();
                }
                self.by_text.insert(raw.to_string(), fields.clone());
                fields
            }
        };
        self.last = Some((raw.to_string(), fields.clone()));
        Ok(fields)
    }
}

fn parse_fields(
    raw: &str,
    warned: &mut HashSet<(String, Fallback)>,
    convert: impl FnOnce(&Value) -> Result<(Vec<Field>, Vec<Fallback>), DecodeError>,
) -> Result<Arc<Vec<Field>>, DecodeError> {
    let parsed: Value = serde_json::from_str(raw).map_err(|e| invalid_json("schema", e))?;
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
    Ok(Arc::new(fields))
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

/// `source.ts_us`, else `source.ts_ms`, in microseconds; anything unreadable is no time.
fn source_ts(source: &RawValue) -> Option<i64> {
    #[derive(Deserialize)]
    struct Times {
        ts_us: Option<Value>,
        ts_ms: Option<Value>,
    }
    let times: Times = serde_json::from_str(source.get()).ok()?;
    times.ts_us.as_ref().and_then(Value::as_i64).or_else(|| times.ts_ms.as_ref().and_then(Value::as_i64).map(|ms| ms * 1_000))
}
