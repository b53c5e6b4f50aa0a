//! Debezium JSON (JsonConverter output, with or without the schema envelope) → [`ChangeEvent`].
//!
//! With `schemas.enable=true` every record repeats its Connect schema (kilobytes of JSON). When a
//! record's schema text is byte-for-byte the one before it, the envelope is split with a compare
//! instead of a parse, and the schema's fields come from the cache. Payloads are read without a
//! JSON tree: the envelope's members are borrowed, and the image is read straight into values
//! aligned with the schema's fields. A value that an NDJSON line hands over as a shared head and
//! its rest still escaped ([`ValueHead`]) is read escaped, by a payload's shape, when the head is
//! known; otherwise it is unescaped and read as JSON.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use floe_catalog::iceberg::spec::{Schema, SchemaRef};
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use tracing::warn;

use super::connect::Fallback;
use super::infer::{infer_fields, ColumnHints};
use super::json_object::read_object;
use super::payload::{read_payload, Image, Payload};
use super::shape::{Form, Shapes};
use super::{connect, ChangeEvent, Columns, DecodeError, Decoded, Decoder, Field, Op, TableState};
use crate::escapes::{escaped_len, unescape_all};
use crate::json_text::bytes_space_trimmed;
use crate::source::{Message, ValueHead};

/// The Debezium JSON decoder: [`decode_debezium_json`] behind the [`Decoder`] seam.
#[derive(Debug, Default)]
pub struct DebeziumJson {
    cache: SchemaCache,
    /// The last value head ([`Message::value_head`]) whose payload's start is known.
    known_head: Option<KnownHead>,
    /// A value put together from its head and rest: of a known head, the payload's part,
    /// escaped; else the whole value, unescaped. Kept to reuse its allocation.
    scratch: BytesMut,
    /// A known head's payload that no shape read escaped, unescaped.
    unescaped: BytesMut,
}

/// The largest scratch buffer a decoder keeps between values.
const MAX_KEPT_SCRATCH: usize = 1 << 20;

/// A value head that holds the start of a payload: an envelope's schema before it, or nothing
/// (a bare payload). While the decoder's last value schema is the one it held, a value with this
/// very head (the same allocation, kept alive here so it cannot be another's) needs no compare
/// of the schema, and its payload is read escaped.
#[derive(Debug)]
struct KnownHead {
    head: ValueHead,
    /// The head's escaped text from the payload's start.
    escaped_payload: Bytes,
    /// [`LastSchema::version`] when it was split.
    version: u64,
    envelope: Envelope,
}

/// What comes before a known head's payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Envelope {
    /// The last value schema.
    Schema,
    /// A null schema.
    NullSchema,
    /// Nothing: the value is the payload.
    Bare,
}

impl Decoder for DebeziumJson {
    fn decode(&mut self, message: &Message, table: TableState<'_>) -> Decoded {
        let key = message.key.as_deref();
        let decoded = match (&message.value_head, message.value.as_deref()) {
            (Some(head), Some(rest)) => self.decode_with_head(key, head, rest, table),
            (_, value) => decode_debezium_json(key, value, table.schema, table.hints, &mut self.cache),
        };
        match decoded {
            Ok(Some(event)) => Decoded::Change(event),
            Ok(None) => Decoded::Tombstone,
            Err(reason) => Decoded::DeadLetter(reason),
        }
    }

    fn fork(&self) -> Box<dyn Decoder> {
        Box::new(DebeziumJson::default())
    }
}

impl DebeziumJson {
    /// Decodes a value given as its `head` and the `rest`, escaped. A head met before is not
    /// compared again: only the payload's part of it is put together with the rest.
    fn decode_with_head(
        &mut self,
        key: Option<&[u8]>,
        head: &ValueHead,
        rest: &[u8],
        table: TableState<'_>,
    ) -> Result<Option<ChangeEvent>, DecodeError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        let decoded = self.decode_joined(&mut scratch, key, head, rest, table);
        // Kept for the next value, unless an unusually large one grew it.
        if scratch.capacity() <= MAX_KEPT_SCRATCH {
            self.scratch = scratch;
        }
        if self.unescaped.capacity() > MAX_KEPT_SCRATCH {
            self.unescaped = BytesMut::new();
        }
        decoded
    }

    /// Decodes `head` and the escaped `rest` put together in `scratch`: of a known head, only
    /// the payload's part, escaped; else all of it, unescaped (and the head is learned).
    fn decode_joined(
        &mut self,
        scratch: &mut BytesMut,
        key: Option<&[u8]>,
        head: &ValueHead,
        rest: &[u8],
        table: TableState<'_>,
    ) -> Result<Option<ChangeEvent>, DecodeError> {
        scratch.clear();
        if let Some(known) = self.known_head.as_ref().filter(|known| known.holds(head, self.cache.value_last.version)) {
            scratch.extend_from_slice(&known.escaped_payload);
            scratch.extend_from_slice(rest);
            let schema = (known.envelope == Envelope::Schema).then_some(SchemaText::Last);
            let payload = match known.envelope {
                Envelope::Bare => Some(&scratch[..]),
                Envelope::Schema | Envelope::NullSchema => payload_before_envelope_end(scratch, Form::Escaped),
            };
            if let Some(payload) = payload {
                if let Some(decoded) = decode_escaped(key, schema, payload, table, &mut self.cache) {
                    return decoded;
                }
                unescape_all(b"", payload, &mut self.unescaped).map_err(|e| invalid_json("value", e))?;
                return decode_payload(key, schema, &self.unescaped, table.schema, table.hints, &mut self.cache);
            }
            // Not the envelope's usual end: read as a whole, for the error it deserves.
        }
        unescape_all(&head.text, rest, scratch).map_err(|e| invalid_json("value", e))?;
        let (schema, payload) = split_envelope(scratch, &mut self.cache.value_last)?;
        let payload_at = payload.as_ptr() as usize - scratch.as_ptr() as usize;
        // An envelope in the usual layout (schema, then payload): the next value with this head
        // has the same schema.
        let usual = split_as_last(scratch, &self.cache.value_last.text).is_some_and(|(_, p)| p.as_ptr() == payload.as_ptr());
        let envelope = match (schema, usual) {
            _ if payload_at == 0 && is_bare(&head.text) => Some(Envelope::Bare),
            (None, true) => Some(Envelope::NullSchema),
            (Some(_), true) => Some(Envelope::Schema),
            (_, false) => None,
        };
        let escaped_at = (payload_at <= head.text.len()).then(|| escaped_len(&head.escaped, payload_at)).flatten();
        if let (Some(envelope), Some(escaped_at)) = (envelope, escaped_at) {
            let (head, version) = (head.clone(), self.cache.value_last.version);
            let escaped_payload = head.escaped.slice(escaped_at..);
            self.known_head = Some(KnownHead { head, escaped_payload, version, envelope });
        }
        decode_payload(key, schema, payload, table.schema, table.hints, &mut self.cache)
    }
}

/// Whether a value that starts with `head` is a bare payload whatever follows: its first
/// member's name is whole in the head, and not one an envelope has (see [`split_envelope`]).
fn is_bare(head: &[u8]) -> bool {
    first_member_name(head).is_some_and(|name| !matches!(name, b"schema" | b"payload"))
}

/// Decodes a payload still escaped by a shape the decoder knows; `None` when none fits, and the
/// payload is to be unescaped and read as JSON.
fn decode_escaped(
    key: Option<&[u8]>,
    value_schema: Option<SchemaText<'_>>,
    escaped: &[u8],
    table: TableState<'_>,
    cache: &mut SchemaCache,
) -> Option<Result<Option<ChangeEvent>, DecodeError>> {
    let fields = cache.known_after_fields(value_schema, table.schema)?;
    let text = crate::utf8::text(escaped).ok()?;
    let mut after_values = vec![];
    let payload = cache.shapes.read(text, Form::Escaped, &fields, &mut after_values)?;
    // A schemaless image with other members than the known fields is read again as JSON.
    if let (None, Image::Read(read)) = (value_schema, &payload.after) {
        if !read.are(&fields) {
            return None;
        }
    }
    Some(decode_read(key, value_schema, payload, Some(fields), after_values, escaped, table.schema, table.hints, cache))
}

impl KnownHead {
    /// Whether `head` is this very head, and the last value schema still the one it held.
    fn holds(&self, head: &ValueHead, version: u64) -> bool {
        self.version == version && self.head.is(head)
    }
}

/// Decodes one record. `Ok(None)` is a tombstone (null value), which carries no change.
/// `table_schema` and `hints` type the columns of schemaless records.
pub fn decode_debezium_json(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    table_schema: Option<&SchemaRef>,
    hints: &ColumnHints,
    cache: &mut SchemaCache,
) -> Result<Option<ChangeEvent>, DecodeError> {
    let Some(value) = value else { return Ok(None) };
    let (value_schema, payload_bytes) = split_envelope(value, &mut cache.value_last)?;
    decode_payload(key, value_schema, payload_bytes, table_schema, hints, cache)
}

/// Decodes a record whose value's envelope is split: its schema (none for a bare payload) and
/// its payload.
fn decode_payload(
    key: Option<&[u8]>,
    value_schema: Option<SchemaText<'_>>,
    payload_bytes: &[u8],
    table_schema: Option<&SchemaRef>,
    hints: &ColumnHints,
    cache: &mut SchemaCache,
) -> Result<Option<ChangeEvent>, DecodeError> {
    let after_fields = cache.known_after_fields(value_schema, table_schema);
    let mut after_values = vec![];
    let Some(payload) = read_shaped(payload_bytes, after_fields.as_ref(), &mut after_values, &mut cache.shapes)? else {
        return Ok(None);
    };
    decode_read(key, value_schema, payload, after_fields, after_values, payload_bytes, table_schema, hints, cache)
}

/// The change of a payload read with `after_fields` (its image in `after_values` when read by
/// them). `payload_bytes` is the payload as JSON, read again for a schemaless image whose
/// members are not the fields'.
#[allow(clippy::too_many_arguments)]
fn decode_read(
    key: Option<&[u8]>,
    value_schema: Option<SchemaText<'_>>,
    payload: Payload<'_>,
    after_fields: Option<Columns>,
    mut after_values: Vec<Value>,
    payload_bytes: &[u8],
    table_schema: Option<&SchemaRef>,
    hints: &ColumnHints,
    cache: &mut SchemaCache,
) -> Result<Option<ChangeEvent>, DecodeError> {
    let code = payload.op.as_deref().ok_or_else(|| DecodeError::new("value has no 'op' field"))?;
    let op = Op::parse(code).ok_or_else(|| DecodeError::new(format!("unsupported op '{code}'")))?;
    let source_ts_micros = payload.source_ts_micros;
    if op == Op::Truncate {
        return Ok(Some(ChangeEvent::truncate(source_ts_micros)));
    }

    let image_name = if op == Op::Delete { "before" } else { "after" };
    let (image, read) = match (op, payload.after) {
        (Op::Delete, _) => (payload.before, None),
        (_, Image::Raw(raw)) => (Some(raw), None),
        (_, Image::Read(members)) => (None, Some(members)),
        (_, Image::Absent) => (None, None),
    };
    let image = match image.map(|raw| raw.get()) {
        Some(text) if text.starts_with('{') => Some(text),
        None if op == Op::Delete || read.is_some() => None,
        _ => return Err(DecodeError::new(format!("'{code}' event without an '{image_name}' image"))),
    };
    let (key_schema, key_payload) = match key {
        Some(bytes) => split_envelope(bytes, &mut cache.key_last)?,
        None => (None, &b"null"[..]),
    };
    let key_payload = crate::utf8::text(key_payload).map_err(|e| invalid_json("key", e))?;
    if !key_payload.trim_start().starts_with('{') {
        return Err(DecodeError::new("record has no key: floe needs the primary key to keep current state"));
    }

    let (columns, mut values) = match (value_schema, read, after_fields) {
        // Read with the envelope's fields for `after`, or with the last schemaless record's
        // when this one has exactly their members.
        (Some(_), Some(_), Some(fields)) => (fields, after_values),
        (None, Some(read), Some(fields)) if read.are(&fields) => (fields, after_values),
        (None, Some(_), _) => {
            let reread = parse_payload(payload_bytes, None, &mut after_values)?.expect("an object payload");
            let Image::Raw(raw) = reread.after else { unreachable!("read once, so present") };
            cache.schemaless(0, raw.get(), table_schema, hints).map_err(|e| invalid_json("value", e))?
        }
        (Some(schema), _, _) => {
            let fields = cache.image_fields(schema, image_name)?;
            let mut values = Vec::with_capacity(fields.len());
            if let Some(text) = image {
                read_object(text, &fields, &mut values).map_err(|e| invalid_json(image_name, e))?;
            } else {
                values.resize(fields.len(), Value::Null);
            }
            (fields, values)
        }
        (None, _, _) => match image {
            Some(text) => cache.schemaless(0, text, table_schema, hints).map_err(|e| invalid_json("value", e))?,
            None => (Arc::new(vec![]), vec![]),
        },
    };
    let (key_fields, key_values) = match key_schema {
        Some(schema) => {
            let fields = cache.key_fields(schema)?;
            let mut values = Vec::with_capacity(fields.len());
            if read_object(key_payload, &fields, &mut values).map_err(|e| invalid_json("key", e))?.members == 0 {
                return Err(DecodeError::new("record key has no columns"));
            }
            (fields, values)
        }
        None => {
            let (fields, values) = cache.schemaless(1, key_payload, table_schema, hints).map_err(|e| invalid_json("key", e))?;
            if values.is_empty() {
                return Err(DecodeError::new("record key has no columns"));
            }
            (fields, values)
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
fn schemaless_values(text: &str, table_schema: Option<&Schema>, hints: &ColumnHints) -> Result<(Vec<Field>, Vec<Value>), DecodeError> {
    let mut object: Map<String, Value> = serde_json::from_str(text).map_err(|e| DecodeError::new(e.to_string()))?;
    let fields = infer_fields(&object, table_schema, hints)?;
    let values = fields.iter().map(|f| object.remove(&f.name).unwrap_or(Value::Null)).collect();
    Ok((fields, values))
}

fn invalid_json(what: &str, e: impl std::fmt::Display) -> DecodeError {
    DecodeError::new(format!("{what} is not valid JSON: {e}"))
}

/// [`parse_payload`], by a shape the decoder knows when one fits; a payload read in full into
/// `after_fields` teaches its shape.
fn read_shaped<'a>(
    bytes: &'a [u8],
    after_fields: Option<&Columns>,
    after_values: &mut Vec<Value>,
    shapes: &mut Shapes,
) -> Result<Option<Payload<'a>>, DecodeError> {
    let Some(fields) = after_fields else {
        return parse_payload(bytes, None, after_values);
    };
    let text = crate::utf8::text(bytes).ok();
    if let Some(payload) = text.and_then(|text| shapes.read(text, Form::Plain, fields, after_values)) {
        return Ok(Some(payload));
    }
    let payload = parse_payload(bytes, Some(fields.as_slice()), after_values)?;
    if let (Some(text), Some(Payload { after: Image::Read(_), .. })) = (text, &payload) {
        shapes.learn(text, fields);
    }
    Ok(payload)
}

/// The payload's members; `None` for a null payload (a tombstone).
/// With `after_fields`, the `after` image is read into `after_values` in the same pass
/// ([`read_payload`]); an image that is not an object is then read again as text, for the error
/// such an event deserves.
fn parse_payload<'a>(
    bytes: &'a [u8],
    after_fields: Option<&[Field]>,
    after_values: &mut Vec<Value>,
) -> Result<Option<Payload<'a>>, DecodeError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return match serde_json::from_slice::<Value>(bytes).map_err(|e| invalid_json("value", e))? {
            Value::Null => Ok(None),
            _ => Err(DecodeError::new("value payload is not a JSON object")),
        };
    }
    match read_payload(bytes, after_fields, after_values) {
        Ok(payload) => Ok(Some(payload)),
        Err(_) if after_fields.is_some() => parse_payload(bytes, None, after_values),
        Err(e) => Err(invalid_json("value", e)),
    }
}

/// A Connect schema's text: the same bytes as the last envelope's (kept in [`LastSchema`]), or
/// another one, which is now the last.
#[derive(Debug, Clone, Copy)]
enum SchemaText<'a> {
    Last,
    New(&'a str),
}

/// The schema text of the last envelope, and how many times it changed: fields derived from
/// it are reused while the count is the same, without comparing the text again.
#[derive(Debug, Default)]
struct LastSchema {
    text: String,
    version: u64,
}

/// `{"schema": …, "payload": …}` → (Some(schema text), payload bytes); anything else is a bare
/// payload. When the schema is byte for byte the last envelope's, it is that complete JSON
/// value, so the split needs no parse.
fn split_envelope<'a>(bytes: &'a [u8], last: &mut LastSchema) -> Result<(Option<SchemaText<'a>>, &'a [u8]), DecodeError> {
    if let Some((_, payload)) = split_as_last(bytes, &last.text) {
        return Ok(((last.text != "null").then_some(SchemaText::Last), payload));
    }
    // JsonConverter writes the schema first; a document starting otherwise is a bare payload.
    if !matches!(first_member_name(bytes), Some(b"schema" | b"payload")) {
        return Ok((None, bytes));
    }
    if let Ok(parts) = serde_json::from_slice::<HashMap<&str, &RawValue>>(bytes) {
        if let (2, Some(schema), Some(payload)) = (parts.len(), parts.get("schema"), parts.get("payload")) {
            last.text.clear();
            last.text.push_str(schema.get());
            last.version += 1;
            let payload = payload.get().as_bytes();
            let schema = (schema.get() != "null").then_some(SchemaText::New(schema.get()));
            return Ok((schema, payload));
        }
    }
    Ok((None, bytes))
}

/// The (schema, payload) of `{"schema": <last>, "payload": …}`, with any whitespace between
/// tokens, when the schema is byte for byte `last`.
fn split_as_last<'a>(bytes: &'a [u8], last: &str) -> Option<(&'a [u8], &'a [u8])> {
    if last.is_empty() {
        return None;
    }
    let rest = bytes_space_trimmed(token(token(token(bytes, b"{")?, b"\"schema\"")?, b":")?);
    let (schema, rest) = (rest.get(..last.len())?, rest.get(last.len()..)?);
    if schema != last.as_bytes() {
        return None;
    }
    let payload = token(token(token(rest, b",")?, b"\"payload\"")?, b":")?;
    Some((schema, payload_before_envelope_end(payload, Form::Plain)?))
}

/// The payload at the start of `rest`, written in `form`, without the envelope's closing brace
/// after it.
fn payload_before_envelope_end(rest: &[u8], form: Form) -> Option<&[u8]> {
    Some(space_trimmed(space_trimmed(rest, form).strip_suffix(b"}")?, form))
}

/// `bytes` without whitespace, as `form` writes it, at either end.
fn space_trimmed(bytes: &[u8], form: Form) -> &[u8] {
    let start = bytes.iter().take_while(|byte| form.is_space(**byte)).count();
    let end = bytes.len() - bytes[start..].iter().rev().take_while(|byte| form.is_space(**byte)).count();
    &bytes[start..end]
}

/// The name of the first member of the object that `bytes` starts with, when it is whole there
/// and written without escapes.
fn first_member_name(bytes: &[u8]) -> Option<&[u8]> {
    let name = token(token(bytes, b"{")?, b"\"")?;
    let end = memchr::memchr2(b'"', b'\\', name)?;
    (name[end] == b'"').then(|| &name[..end])
}

/// `rest` after `expected`, skipping whitespace before it.
fn token<'b>(rest: &'b [u8], expected: &[u8]) -> Option<&'b [u8]> {
    bytes_space_trimmed(rest).strip_prefix(expected)
}

/// Fields of Connect schemas already seen, by their raw JSON text.
#[derive(Debug, Default)]
pub struct SchemaCache {
    /// The last value and key envelopes' schemas, for the split without a parse.
    value_last: LastSchema,
    key_last: LastSchema,
    before: Memo,
    after: Memo,
    key: Memo,
    /// Shapes of the payloads read, to read the next ones by.
    shapes: Shapes,
    /// The last merge of image and key fields, by the identity of both lists.
    merge: Option<LastMerge>,
    /// Columns of unknown type already warned about, by schema name and column path.
    warned: HashSet<(String, Fallback)>,
    /// The fields last typed for schemaless images (0) and keys (1), with the table schema they
    /// were typed by (kept, so that its identity cannot be taken by another).
    schemaless: [Option<Typed>; 2],
}

/// The last merge, by the identity of the image and key lists it merged.
#[derive(Debug)]
struct LastMerge {
    image: Columns,
    key: Columns,
    merged: Arc<Merged>,
}

/// Schemaless fields as typed by a table schema.
#[derive(Debug)]
struct Typed {
    schema: Option<SchemaRef>,
    fields: Columns,
}

/// An image's columns with the key's added, and where each key column's value goes.
#[derive(Debug)]
struct Merged {
    columns: Arc<Vec<Field>>,
    key: Arc<Vec<String>>,
    key_slots: Vec<usize>,
}

impl SchemaCache {
    /// A schemaless object's fields and values. Once a table has every column of a stream, its
    /// records have the same members typed the same way: the last fields are reused when this
    /// object has exactly their members and the table schema is the same one.
    fn schemaless(
        &mut self,
        slot: usize,
        text: &str,
        table_schema: Option<&SchemaRef>,
        hints: &ColumnHints,
    ) -> Result<(Arc<Vec<Field>>, Vec<Value>), DecodeError> {
        if let Some(fields) = self.typed_by(slot, table_schema) {
            let mut values = Vec::with_capacity(fields.len());
            let read = read_object(text, &fields, &mut values)?;
            if read.members == fields.len() && read.matched == fields.len() {
                return Ok((fields, values));
            }
        }
        let (fields, values) = schemaless_values(text, table_schema.map(|s| s.as_ref()), hints)?;
        let fields = Arc::new(fields);
        // Only fields typed by name (configured, or already in the table) are the same for the
        // next record whatever its values; inferred ones depend on the value, so are not kept.
        let typed_by_name = |f: &Field| hints.contains_key(&f.name) || table_schema.is_some_and(|s| s.field_by_name(&f.name).is_some());
        self.schemaless[slot] = fields.iter().all(typed_by_name).then(|| Typed { schema: table_schema.cloned(), fields: fields.clone() });
        Ok((fields, values))
    }

    /// The `after` image's fields, when known before its payload is read: the envelope's, or
    /// the fields the last schemaless image was typed with by this same table schema.
    fn known_after_fields(&mut self, schema: Option<SchemaText>, table_schema: Option<&SchemaRef>) -> Option<Columns> {
        match schema {
            Some(schema) => self.image_fields(schema, "after").ok(),
            None => self.typed_by(0, table_schema),
        }
    }

    /// The fields last typed for schemaless `slot` by `table_schema`, if it is still the one.
    fn typed_by(&self, slot: usize, table_schema: Option<&SchemaRef>) -> Option<Columns> {
        let Typed { schema, fields } = self.schemaless[slot].as_ref()?;
        schema.as_ref().zip(table_schema).is_some_and(|(a, b)| Arc::ptr_eq(a, b)).then(|| fields.clone())
    }

    fn image_fields(&mut self, schema: SchemaText, image: &str) -> Result<Arc<Vec<Field>>, DecodeError> {
        let memo = if image == "before" { &mut self.before } else { &mut self.after };
        memo.get(schema, &self.value_last, &mut self.warned, |parsed| image_fields(parsed, image))
    }

    fn key_fields(&mut self, schema: SchemaText) -> Result<Arc<Vec<Field>>, DecodeError> {
        self.key.get(schema, &self.key_last, &mut self.warned, connect::struct_fields)
    }

    fn merged(&mut self, image: &Arc<Vec<Field>>, key: &Arc<Vec<Field>>) -> Arc<Merged> {
        if let Some(last) = &self.merge {
            if Arc::ptr_eq(&last.image, image) && Arc::ptr_eq(&last.key, key) {
                return last.merged.clone();
            }
        }
        let columns = merge_key_fields(image.as_ref().clone(), key);
        let key_slots = key.iter().map(|k| columns.iter().position(|c| c.name == k.name).expect("merged")).collect();
        let key_names = Arc::new(key.iter().map(|f| f.name.clone()).collect());
        let merged = Arc::new(Merged { columns: Arc::new(columns), key: key_names, key_slots });
        self.merge = Some(LastMerge { image: image.clone(), key: key.clone(), merged: merged.clone() });
        merged
    }
}

/// Schema text → fields, remembering the last text so an unchanged schema costs one compare,
/// and the [`LastSchema`] version it came from, so the last envelope's schema costs none.
#[derive(Debug, Default)]
struct Memo {
    by_text: HashMap<String, Arc<Vec<Field>>>,
    last: Option<(String, Arc<Vec<Field>>)>,
    version: Option<u64>,
}

/// Bounds the cache: a stream whose schema changes on every record must not grow it forever.
const MAX_CACHED_SCHEMAS: usize = 256;

impl Memo {
    fn get(
        &mut self,
        schema: SchemaText,
        envelope: &LastSchema,
        warned: &mut HashSet<(String, Fallback)>,
        convert: impl FnOnce(&Value) -> Result<(Vec<Field>, Vec<Fallback>), DecodeError>,
    ) -> Result<Arc<Vec<Field>>, DecodeError> {
        if let (SchemaText::Last, Some((_, fields))) = (schema, &self.last) {
            if self.version == Some(envelope.version) {
                return Ok(fields.clone());
            }
        }
        let text = match schema {
            SchemaText::Last => envelope.text.as_str(),
            SchemaText::New(text) => text,
        };
        let fields = self.get_by_text(text, warned, convert)?;
        self.version = Some(envelope.version);
        Ok(fields)
    }

    fn get_by_text(
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
#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::decode::Kind;

    /// Schema first, as JsonConverter writes it.
    fn envelope(schema: Value, payload: Value) -> Vec<u8> {
        format!(r#"{{"schema":{schema},"payload":{payload}}}"#).into_bytes()
    }

    fn value_schema(columns: Value) -> Value {
        let image = |name: &str| json!({"type": "struct", "optional": true, "field": name, "fields": columns.clone()});
        json!({"type": "struct", "fields": [image("before"), image("after"), {"type": "string", "field": "op"}]})
    }

    fn key() -> Vec<u8> {
        envelope(json!({"type": "struct", "fields": [{"type": "int64", "optional": false, "field": "id"}]}), json!({"id": 1}))
    }

    fn decode(key: Option<&[u8]>, value: Option<&[u8]>, cache: &mut SchemaCache) -> Result<Option<ChangeEvent>, DecodeError> {
        decode_debezium_json(key, value, None, &ColumnHints::new(), cache)
    }

    #[test]
    fn a_repeated_schema_is_split_by_compare_and_decodes_the_same() {
        let schema =
            value_schema(json!([{"type": "int64", "optional": false, "field": "id"}, {"type": "string", "optional": true, "field": "s"}]));
        let mut cache = SchemaCache::default();
        let first = envelope(schema.clone(), json!({"after": {"id": 1, "s": "a"}, "op": "c", "source": {"ts_ms": 5}}));
        let second = envelope(schema, json!({"op": "u", "after": {"s": "b", "id": 1}}));
        let a = decode(Some(&key()), Some(&first), &mut cache).unwrap().unwrap();
        assert!(split_as_last(&second, &cache.value_last.text).is_some(), "the second envelope takes the fast path");
        let spaced = format!("{{ \"schema\" : {},\n \"payload\": {{\"op\": \"c\"}} }} ", cache.value_last.text).into_bytes();
        assert_eq!(split_as_last(&spaced, &cache.value_last.text).map(|(_, p)| p), Some(&br#"{"op": "c"}"#[..]));
        let b = decode(Some(&key()), Some(&second), &mut cache).unwrap().unwrap();
        assert!(Arc::ptr_eq(&a.columns, &b.columns), "one schema, one column list");
        assert_eq!((a.op, a.source_ts_micros, &a.values), (Op::Create, Some(5_000), &vec![json!(1), json!("a")]));
        assert_eq!((b.op, b.source_ts_micros, &b.values), (Op::Update, None, &vec![json!(1), json!("b")]));
    }

    #[test]
    fn an_envelope_with_the_payload_first_is_still_split() {
        let schema = value_schema(json!([{"type": "int64", "optional": false, "field": "id"}]));
        let value = json!({"payload": {"after": {"id": 1}, "op": "c"}, "schema": schema}).to_string();
        let event = decode(Some(&key()), Some(value.as_bytes()), &mut SchemaCache::default()).unwrap().unwrap();
        assert!(event.complete_schema, "the schema was read");
    }

    /// `value` as the NDJSON source gives it: its start in the shared `head`, the rest apart and
    /// still escaped, as it was in the line's string.
    fn with_head(head: &ValueHead, value: &[u8]) -> Message {
        let escaped = escaped(value);
        let rest = escaped.strip_prefix(&head.escaped[..]).expect("the value starts with the head");
        Message { value_head: Some(head.clone()), ..Message::new("t".into(), Some(key().into()), Some(rest.to_vec().into())) }
    }

    /// `text` escaped as the content of a JSON string.
    fn escaped(text: &[u8]) -> Vec<u8> {
        crate::escapes::escaped(std::str::from_utf8(text).unwrap()).into_bytes()
    }

    fn head(text: String) -> ValueHead {
        ValueHead::new(text.clone().into(), escaped(text.as_bytes()).into())
    }

    /// What a fresh decoder makes of `value` given whole.
    fn decoded_whole(value: &[u8], table: TableState<'_>) -> Decoded {
        DebeziumJson::default().decode(&Message::new("t".into(), Some(key().into()), Some(value.to_vec().into())), table)
    }

    #[test]
    fn a_value_with_a_shared_head_decodes_as_the_whole_value_does() {
        let a =
            value_schema(json!([{"type": "int64", "optional": false, "field": "id"}, {"type": "string", "optional": true, "field": "s"}]));
        let b = value_schema(json!([{"type": "int64", "optional": false, "field": "id"}]));
        let head_of = |schema: &Value| head(format!(r#"{{"schema":{schema},"payload":{{""#));
        let (head_a, head_null) = (head_of(&a), head_of(&Value::Null));
        let cut = |value: Vec<u8>, head: &ValueHead| (with_head(head, &value), value);
        let whole = |value: Vec<u8>| (Message::new("t".into(), Some(key().into()), Some(value.clone().into())), value);
        let messages = [
            cut(envelope(a.clone(), json!({"op": "c", "after": {"id": 1, "s": "a"}})), &head_a),
            cut(envelope(a.clone(), json!({"op": "u", "after": {"id": 1, "s": "b"}})), &head_a),
            // Another schema between two values of one head: the head's schema is read again.
            whole(envelope(b, json!({"op": "c", "after": {"id": 2}}))),
            cut(envelope(a.clone(), json!({"op": "d", "before": {"id": 1, "s": "b"}})), &head_a),
            cut(envelope(a.clone(), json!({"op": "c", "after": {"id": 3, "s": "c"}})), &head_a),
            // A known head whose value does not end as an envelope does.
            cut([envelope(a, json!({"op": "c", "after": {"id": 6}})), b" x".to_vec()].concat(), &head_a),
            cut(envelope(Value::Null, json!({"op": "c", "after": {"id": 4, "s": "d"}})), &head_null),
            cut(envelope(Value::Null, json!({"op": "c", "after": {"id": 5, "s": "e"}})), &head_null),
        ];
        let (mut by_head, mut by_whole) = (DebeziumJson::default(), DebeziumJson::default());
        let hints = ColumnHints::new();
        let table = || TableState { schema: None, hints: &hints };
        for (i, (message, value)) in messages.iter().enumerate() {
            let expected = by_whole.decode(&Message::new("t".into(), Some(key().into()), Some(value.clone().into())), table());
            assert_eq!(by_head.decode(message, table()), expected, "message {i}");
            assert_eq!(message.whole_value().unwrap().unwrap(), &value[..], "message {i}");
            // Only the payload's part of a known head was put together with the rest.
            let joined_part = message.value_head.is_some() && by_head.scratch.len() < value.len();
            assert_eq!(joined_part, [1, 4, 7].contains(&i), "message {i}: the known head's path");
        }
        assert!(matches!(by_head.decode(&messages[0].0, table()), Decoded::Change(_)));
        let known = by_head.known_head.as_ref().expect("a head split as an envelope is known");
        assert_eq!(known.head.text.as_ptr(), head_a.text.as_ptr());
        assert_eq!(&known.escaped_payload[..], br#"{\""#, "the payload's part of the head, escaped");
    }

    #[test]
    fn a_known_heads_payload_is_read_escaped_and_its_escapes_are_checked() {
        let schema =
            value_schema(json!([{"type": "int64", "optional": false, "field": "id"}, {"type": "string", "optional": true, "field": "s"}]));
        let head = head(format!(r#"{{"schema":{schema},"payload":{{"#));
        let value = |id: i64, s: &str| envelope(schema.clone(), json!({"before": null, "after": {"id": id, "s": s}, "op": "c"}));
        let hints = ColumnHints::new();
        let table = || TableState { schema: None, hints: &hints };
        let mut decoder = DebeziumJson::default();
        for (id, s) in [(1, "a"), (2, "b \"quoted\" \\ \n"), (3, "c")] {
            let value = value(id, s);
            assert_eq!(decoder.decode(&with_head(&head, &value), table()), decoded_whole(&value, table()), "{id}");
        }
        assert_eq!(decoder.known_head.as_ref().map(|known| known.envelope), Some(Envelope::Schema));
        assert!(decoder.scratch.len() < 100, "only the payload was put together");
        assert!(decoder.unescaped.is_empty(), "every payload was read escaped: none had to be unescaped");
        // What is not valid inside the line's string: a bad escape, raw control characters.
        for broken in ["\\\"\\x\\\"", "\\\"\t\\\"", "\\\"\u{1}\\\""] {
            let rest = with_head(&head, &value(4, "x")).value.unwrap();
            let rest = String::from_utf8(rest.to_vec()).unwrap().replace("\\\"x\\\"", broken);
            let message = Message { value: Some(rest.into()), ..with_head(&head, &value(4, "x")) };
            let Decoded::DeadLetter(reason) = decoder.decode(&message, table()) else { panic!("{broken} is a dead letter") };
            assert!(reason.to_string().contains("value is not valid JSON"), "{broken}: {reason}");
        }
    }

    #[test]
    fn whitespace_json_does_not_allow_ends_no_envelope() {
        let schema = value_schema(json!([{"type": "int64", "optional": false, "field": "id"}]));
        let mut cache = SchemaCache::default();
        let value = |payload: Value| envelope(schema.clone(), payload);
        decode(Some(&key()), Some(&value(json!({"after": {"id": 1}, "op": "c"}))), &mut cache).unwrap();
        let form_feed = [value(json!({"after": {"id": 2}, "op": "c"})), b"\x0c".to_vec()].concat();
        assert!(serde_json::from_slice::<Value>(&form_feed).is_err(), "a form feed is not JSON whitespace");
        assert!(decode(Some(&key()), Some(&form_feed), &mut cache).is_err());
    }

    #[test]
    fn a_bare_payloads_head_is_known_and_its_payload_read_escaped() {
        let head = head(r#"{"before":null,"#.to_string());
        let value = |id: i64| format!(r#"{{"before":null,"after":{{"id":{id},"n":{}}},"op":"u"}}"#, id * 2).into_bytes();
        let hints = ColumnHints::new();
        let table = || TableState { schema: None, hints: &hints };
        let mut decoder = DebeziumJson::default();
        for id in 1..=3 {
            let value = value(id);
            assert_eq!(decoder.decode(&with_head(&head, &value), table()), decoded_whole(&value, table()), "{id}");
        }
        let known = decoder.known_head.as_ref().expect("known");
        assert_eq!((known.envelope, &known.escaped_payload[..]), (Envelope::Bare, &head.escaped[..]));
        assert!(!is_bare(br#"{"schema":"#) && !is_bare(br#"{"payl"#) && !is_bare(b"{") && is_bare(br#"{ "op":"#));
    }

    #[test]
    fn a_changed_schema_is_read_again() {
        let mut cache = SchemaCache::default();
        let narrow = value_schema(json!([{"type": "int64", "optional": false, "field": "id"}]));
        let wide =
            value_schema(json!([{"type": "int64", "optional": false, "field": "id"}, {"type": "int32", "optional": true, "field": "n"}]));
        decode(Some(&key()), Some(&envelope(narrow, json!({"after": {"id": 1}, "op": "c"}))), &mut cache).unwrap();
        let event =
            decode(Some(&key()), Some(&envelope(wide, json!({"after": {"id": 1, "n": 2}, "op": "u"}))), &mut cache).unwrap().unwrap();
        assert_eq!(
            event.columns.iter().map(|c| (c.name.as_str(), c.kind.clone())).collect::<Vec<_>>(),
            [("id", Kind::Long), ("n", Kind::Int)]
        );
    }

    #[test]
    fn schemaless_records_and_key_only_deletes() {
        let mut cache = SchemaCache::default();
        let value = br#"{"before": {"id": 3}, "after": null, "op": "d"}"#;
        let event = decode(Some(br#"{"id": 3}"#), Some(value), &mut cache).unwrap().unwrap();
        assert_eq!((event.op, event.complete_schema, event.key.as_slice()), (Op::Delete, false, &["id".to_string()][..]));
        assert_eq!(event.value("id"), Some(&json!(3)));
    }

    #[test]
    fn tombstones_and_what_cannot_be_a_change() {
        let mut cache = SchemaCache::default();
        assert_eq!(decode(Some(&key()), None, &mut cache).unwrap(), None);
        assert_eq!(decode(Some(&key()), Some(b"null"), &mut cache).unwrap(), None);
        let reason = |value: &[u8], key: Option<&[u8]>| decode(key, Some(value), &mut SchemaCache::default()).unwrap_err().to_string();
        assert!(reason(b"{not json", Some(&key())).contains("not valid JSON"));
        assert!(reason(b"[1]", Some(&key())).contains("not a JSON object"));
        assert!(reason(br#"{"after": {"id": 1}}"#, Some(&key())).contains("no 'op'"));
        assert!(reason(br#"{"after": {"id": 1}, "op": "x"}"#, Some(&key())).contains("unsupported op"));
        assert!(reason(br#"{"after": "text", "op": "c"}"#, Some(&key())).contains("without an 'after' image"));
        assert!(reason(br#"{"after": {"id": 1}, "op": "c"}"#, None).contains("no key"));
        assert!(reason(br#"{"after": {"id": 1}, "op": "c"}"#, Some(b"{}")).contains("no columns"));
    }
}
