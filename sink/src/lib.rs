//! # floe-sink
//!
//! Owns the path from change records to committed Iceberg rows, in the order data flows:
//!
//! - [`source`]: the [`source::Source`] seam (batches of positioned records; seek, pause, resume,
//!   committed-position notices) and its connectors: files and stdin, and Kafka consumer groups
//!   that resume each partition at its table's committed position.
//! - [`decode`]: the [`decode::Decoder`] seam and Debezium JSON, with and without the Connect
//!   schema envelope, every logical type → a faithful Iceberg type.
//! - [`schema_sync`]: compatible changes evolve the table, incompatible ones are refused.
//! - [`columnar`]: rows appended straight into Arrow builders typed by the table's schema.
//! - [`table_sink`]: one table's batch, written to Parquet and committed with its input positions;
//!   [`unavailable`] fills unchanged TOASTed values first.
//! - [`ingest`]: the loop tying them together, with size- and time-based flushes, Parquet writing
//!   overlapped with decoding, and tables that fail or pause alone; [`dead_letter`] keeps every
//!   record that could not become a row; [`metrics`] are the sink's Prometheus metrics.
//!
//! The sink only appends. It writes metadata exclusively through `floe-catalog`.

pub mod columnar;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod diagnostics;
pub mod error;
mod escapes;
pub mod ingest;
mod json_text;
pub mod metrics;
pub mod schema_sync;
pub mod source;
pub mod table_sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unavailable;
mod utf8;

pub use config::SinkConfig;
pub use error::{Result, SinkError};
pub use ingest::{Control, IngestControl, IngestReport, Ingestor};

/// The cores this process may use (1 when unknown): how many threads are worth starting.
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
