//! # floe-sink
//!
//! Owns the path from change records to committed Iceberg rows: sources ([`source`]: files,
//! stdin), Debezium decoding ([`decode`]: JSON with and without the Connect schema envelope,
//! every logical type → a faithful Iceberg type), schema sync ([`schema_sync`]: compatible
//! changes evolve the table, incompatible ones are refused), writing and committing with input
//! positions ([`table_sink`]), unchanged TOASTed values filled from the previous row
//! ([`unavailable`]), and the dead-letter table ([`dead_letter`]).
//!
//! The sink only appends. It writes metadata exclusively through `floe-catalog`.

pub mod columnar;
pub mod config;
pub mod dead_letter;
pub mod decode;
pub mod diagnostics;
pub mod error;
pub mod ingest;
pub mod schema_sync;
pub mod source;
pub mod table_sink;
#[cfg(feature = "testing")]
pub mod testing;
pub mod unavailable;

pub use config::SinkConfig;
pub use error::{Result, SinkError};
pub use ingest::{Control, IngestControl, IngestReport, Ingestor};
