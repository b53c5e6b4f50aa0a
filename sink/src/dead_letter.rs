//! The dead-letter table: every record that could not become a row, with its raw bytes, its
//! input position and the reason. It is an ordinary Iceberg table (`floe.dead_letters` by
//! default), written through the same [`TableSink`] as data, so it is exactly-once too.

use std::sync::Arc;

use floe_catalog::iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use serde_json::{json, Value};

use crate::source::SourceRecord;

/// Columns: `stream, partition, offset, topic, target_table, key, value, raw, reason, failed_at`.
pub fn dead_letter_schema() -> Schema {
    use PrimitiveType as P;
    let fields = [
        ("stream", P::String, true),
        ("partition", P::Int, true),
        ("offset", P::Long, true),
        ("topic", P::String, false),
        ("target_table", P::String, false),
        ("key", P::Binary, false),
        ("value", P::Binary, false),
        ("raw", P::Binary, true),
        ("reason", P::String, true),
        ("failed_at", P::Timestamptz, true),
    ];
    Schema::builder()
        .with_fields(
            fields
                .into_iter()
                .enumerate()
                .map(|(i, (name, ty, required))| Arc::new(NestedField::new(i as i32 + 1, name, Type::Primitive(ty), required))),
        )
        .build()
        .expect("dead-letter schema is valid")
}

/// The dead-letter row for `record`.
pub fn dead_letter_row(record: &SourceRecord, target_table: Option<String>, reason: &str) -> Value {
    let message = record.message.as_ref().ok();
    json!({
        "stream": record.stream,
        "partition": record.partition,
        "offset": record.offset,
        "topic": message.map(|m| m.topic.clone()),
        "target_table": target_table,
        "key": message.and_then(|m| m.key.as_deref()).map(hex),
        "value": message.and_then(|m| m.value.as_deref()).map(hex),
        "raw": hex(&record.raw),
        "reason": reason,
        "failed_at": chrono::Utc::now().timestamp_micros(),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
