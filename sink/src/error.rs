//! Errors that stop an ingest. Bad records never do: they go to the dead-letter table.

use crate::config::ConfigError;

pub type Result<T, E = SinkError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    Catalog(#[from] floe_catalog::CatalogError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading input: {0}")]
    Io(#[from] std::io::Error),
    #[error("building record batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("internal: {0}")]
    Internal(String),
}
