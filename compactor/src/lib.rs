//! # floe-compactor
//!
//! Owns compaction: planning which files of a keyed table to rewrite, in full or only what
//! changed ([`plan`]), executing the latest-record-per-key rewrite with DataFusion under a
//! memory limit that spills to disk ([`execute`], [`incremental`]), and committing it as one atomic `replace` snapshot through `floe-catalog`
//! ([`compact`]). The ranking is the shared definition in `floe_catalog::layout`, so a compacted
//! table answers the `_latest` view exactly as before.

pub mod compact;
pub mod error;
pub mod execute;
mod gather;
pub mod incremental;
mod keys;
mod latest;
pub mod plan;

pub use compact::{compact_table, CompactOptions, CompactionReport};
pub use error::{CompactError, Result};
pub use plan::{CompactionKind, PlanPolicy};
