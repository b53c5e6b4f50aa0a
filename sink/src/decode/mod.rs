//! Decoding: raw key/value bytes of one source record → a [`ChangeEvent`] with typed columns
//! and the source's values, or a [`DecodeError`] that sends the record to the dead-letter table.
//!
//! Every wire format implements [`Decoder`]; Debezium JSON ([`DebeziumJson`], with and without
//! the Connect schema envelope) is the first. A decoder only reads: the values are converted
//! into the table's Arrow columns by [`crate::columnar`], typed by the columns' [`Kind`]s.

pub mod connect;
pub mod debezium;
pub mod infer;
pub mod json_object;
pub mod kind;
pub mod parallel;
pub mod payload;
pub mod shape;
pub mod value;

use std::sync::Arc;

use floe_catalog::iceberg::spec::SchemaRef;
use serde_json::{Map, Value};

pub use debezium::{decode_debezium_json, DebeziumJson, SchemaCache};
pub use infer::ColumnHints;
pub use kind::{Field, Kind, TimeUnit};
pub use value::{canonical, cell, Cell};

use crate::source::Message;

/// A record's column list, shared by every record under one schema.
pub type Columns = Arc<Vec<Field>>;
/// A record's key column names, shared likewise.
pub type KeyNames = Arc<Vec<String>>;

/// What a decoder knows of the destination table: schemaless records are typed by it.
#[derive(Debug, Clone, Copy)]
pub struct TableState<'a> {
    /// The table's current schema, if it exists yet.
    pub schema: Option<&'a SchemaRef>,
    /// Column types configured for the table.
    pub hints: &'a ColumnHints,
}

/// What one message decodes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Change(ChangeEvent),
    /// A Kafka tombstone (no value, or a null payload): it carries no change.
    Tombstone,
    /// The message cannot become a row; the reason goes to the dead-letter table.
    DeadLetter(DecodeError),
}

/// A wire format: one message → a change, a tombstone or a dead letter. Decoders keep state
/// across messages (schema caches), so each ingest owns one.
pub trait Decoder: Send {
    fn decode(&mut self, message: &Message, table: TableState<'_>) -> Decoded;

    /// A new decoder of the same format and settings, with empty caches: another thread
    /// decodes with it.
    fn fork(&self) -> Box<dyn Decoder>;
}

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
    /// Columns the source declared (or that were inferred) for this record. Records under one
    /// Connect schema share one list, so work keyed by it (schema sync) is done once.
    pub columns: Columns,
    /// Whether `columns` is the source's complete schema, so a table column missing from it
    /// has vanished from the source (false for schemaless records, whose nulls are simply absent).
    pub complete_schema: bool,
    /// Names of the key columns, in key order (empty for truncates).
    pub key: KeyNames,
    /// The source's values, one per column of `columns`, as the source encoded them: the
    /// after-image, or for deletes the before-image overlaid with the key.
    pub values: Vec<Value>,
    /// The source's change time, microseconds since epoch.
    pub source_ts_micros: Option<i64>,
}

impl ChangeEvent {
    /// A change without columns: a truncate.
    pub fn truncate(source_ts_micros: Option<i64>) -> Self {
        let (columns, key) = (Arc::default(), Arc::default());
        Self { op: Op::Truncate, columns, complete_schema: false, key, values: vec![], source_ts_micros }
    }

    /// The source value of column `name`.
    pub fn value(&self, name: &str) -> Option<&Value> {
        self.columns.iter().position(|c| c.name == name).map(|i| &self.values[i])
    }

    /// Every value in its canonical JSON form (what [`canonical`] makes of it), by column name.
    pub fn canonical_row(&self) -> Result<Map<String, Value>, DecodeError> {
        let pairs = self.columns.iter().zip(&self.values);
        pairs.map(|(c, v)| Ok((c.name.clone(), canonical(v, &c.kind).map_err(|e| e.in_column(&c.name))?))).collect()
    }
}
