//! The dead-letter table: every record that could not become a row, with its raw bytes, its
//! input position and the reason. It is an ordinary Iceberg table (`floe.dead_letters` by
//! default), written through the same [`TableSink`] as data, so it is exactly-once too.

use std::sync::Arc;

use floe_catalog::iceberg::spec::{NestedField, PrimitiveType, Schema, Type};

use crate::decode::Cell;
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

/// The dead-letter row for `record`, by column name.
pub fn dead_letter_row(record: &SourceRecord, target_table: Option<String>, reason: &str) -> Vec<(&'static str, Cell)> {
    let message = record.message.as_ref().ok();
    let bytes = |b: Option<&[u8]>| b.map_or(Cell::Null, |b| Cell::Bytes(b.to_vec()));
    vec![
        ("stream", Cell::Text(record.stream.to_string())),
        ("partition", Cell::Int(record.partition.into())),
        ("offset", Cell::Int(record.offset)),
        ("topic", message.map_or(Cell::Null, |m| Cell::Text(m.topic.to_string()))),
        ("target_table", target_table.map_or(Cell::Null, Cell::Text)),
        ("key", bytes(message.and_then(|m| m.key.as_deref()))),
        // A value whose escapes are not valid is only in `raw`, as read.
        ("value", bytes(message.and_then(|m| m.whole_value()?.ok()).as_deref())),
        ("raw", Cell::Bytes(record.raw_bytes())),
        ("reason", Cell::Text(reason.to_string())),
        ("failed_at", Cell::Int(chrono::Utc::now().timestamp_micros())),
    ]
}
