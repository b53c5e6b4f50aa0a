//! # floe-catalog
//!
//! The Iceberg catalog and commit layer of floe, and the **only** code in floe that writes
//! Iceberg metadata. It owns:
//!
//! - [`SqlCatalog`]: the embedded catalog (SQLite by default, PostgreSQL by URL) in the Iceberg
//!   JDBC layout, so PyIceberg's `SqlCatalog` and Java's `JdbcCatalog` read the same tables;
//! - [`rest::RestCatalog`]: any Iceberg REST catalog, floe's own `serve` included;
//! - the commit model ([`commit`]): requirements checked against current metadata, updates
//!   applied, new `metadata.json` written, pointer swapped by compare-and-swap, typed
//!   [`CatalogError::Conflict`] on a lost race, and one bounded retry helper;
//! - snapshot producers on top of it: [`append`] (with manifest merging), [`replace`] (atomic
//!   rewrite), [`schema_update`] (add, widen, relax, rename, drop) and [`maintenance`]
//!   (expire snapshots, delete unreferenced files);
//! - [`pause`]: a table's pause, kept in its properties;
//! - [`layout`]: floe's table layout and the latest-record ranking, shared by every reader;
//! - [`writer`]: Arrow batches → Parquet data files with field ids and column metrics;
//!   [`deletes`]: position-delete files; [`read`]: a file's columns in file order.
//!
//! Data flows in one direction: the sink and the compactor hand data files and schema changes
//! to this crate; views read tables through [`Catalog::load_table`].

pub mod append;
pub mod catalog;
pub mod commit;
pub mod deletes;
mod dictionary;
pub mod error;
pub mod layout;
pub mod maintenance;
pub mod pause;
pub mod read;
pub mod replace;
pub mod rest;
pub mod schema_update;
mod snapshot;
pub mod sql;
pub mod storage;
pub mod table;
#[cfg(feature = "testing")]
pub mod testing;
pub mod writer;

pub use catalog::Catalog;
pub use commit::{commit_tables_with_retry, commit_with_retry, RetryPolicy, TableChange};
pub use error::{CatalogError, Result};
pub use sql::SqlCatalog;
pub use table::{FloeTable, LiveFile};

/// Re-exported so callers use the exact iceberg version this crate commits with.
pub use iceberg;
