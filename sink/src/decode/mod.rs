//! Decoding: raw key/value bytes of one source record → a [`ChangeEvent`] with typed columns
//! and canonical values, or a [`DecodeError`] that sends the record to the dead-letter table.

pub mod connect;
pub mod debezium;
pub mod infer;
pub mod kind;
pub mod value;

use serde_json::{Map, Value};

pub use debezium::{decode_debezium_json, SchemaCache};
pub use kind::{Field, Kind, TimeUnit};

/// Why a record could not be decoded. Becomes the `reason` of its dead letter.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(String);

impl DecodeError {
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }

    pub fn in_column(self, column: &str) -> Self {
        Self(format!("column {column}: {}", self.0))
    }
}

/// Debezium operation codes, as stored in `_op`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Read,
    Truncate,
}

impl Op {
    pub fn parse(code: &str) -> Option<Op> {
        Some(match code {
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "r" => Op::Read,
            "t" => Op::Truncate,
            _ => return None,
        })
    }

    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// One decoded change.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangeEvent {
    pub op: Op,
    /// Columns the source declared (or that were inferred) for this record.
    pub columns: Vec<Field>,
    /// Whether `columns` is the source's complete schema, so a table column missing from it
    /// has vanished from the source (false for schemaless records, whose nulls are simply absent).
    pub complete_schema: bool,
    /// Names of the key columns, in key order (empty for truncates).
    pub key: Vec<String>,
    /// Canonical values by column name: the after-image, or for deletes the before-image
    /// overlaid with the key.
    pub row: Map<String, Value>,
    /// The source's change time, microseconds since epoch.
    pub source_ts_micros: Option<i64>,
}
