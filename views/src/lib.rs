//! # floe-views
//!
//! Owns reading: floe's catalog as a DataFusion catalog ([`catalog_provider`]) where every table
//! is `namespace.table` and every keyed table has a current-state view `namespace.table_latest`
//! ([`latest`]), resolved lazily so long-lived sessions stay current, and shown to each session
//! only as far as its [`access`] policy allows; the parallel snapshot scan
//! with filter and limit pushdown ([`scan`]) that the views and the compactor read with; and
//! rendering of results ([`output`]). Views read tables only through `floe-catalog` and never
//! write.

pub mod access;
pub mod catalog_provider;
pub mod error;
pub mod latest;
pub mod output;
pub mod scan;
pub mod session;

pub use error::{Result, ViewError};
pub use output::{render, OutputFormat};
pub use session::session;

/// DataFusion's rules for a reader: no DDL, no DML (`COPY … TO` included), no statements that
/// change the session's shared state.
pub fn read_only() -> datafusion::execution::context::SQLOptions {
    datafusion::execution::context::SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// Runs one read query against a fresh session and returns its batches. Anything but a read is
/// refused ([`read_only`]).
pub async fn query(catalog: &dyn floe_catalog::Catalog, sql: &str) -> Result<Vec<arrow::record_batch::RecordBatch>> {
    let ctx = session(catalog).await?;
    Ok(ctx.sql_with_options(sql, read_only()).await?.collect().await?)
}
