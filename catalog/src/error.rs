//! One error type for the catalog crate. Callers match on [`CatalogError::Conflict`] to decide
//! whether to reload and retry; everything else is final for that attempt.

use iceberg::TableIdent;

/// Result alias used throughout `floe-catalog`.
pub type Result<T, E = CatalogError> = std::result::Result<T, E>;

/// Errors of the catalog and commit layer.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    /// Someone else committed first, or a requirement no longer holds. Nothing was written
    /// to the table pointer; reload and re-validate before trying again.
    /// `retryable` is false when reloading cannot help (the files to replace are gone).
    #[error("commit conflict on {table}: {reason}")]
    Conflict { table: String, reason: String, retryable: bool },

    #[error("table {0} does not exist")]
    TableNotFound(String),

    #[error("table {0} already exists")]
    TableAlreadyExists(String),

    #[error("namespace {0} does not exist")]
    NamespaceNotFound(String),

    #[error("namespace {0} already exists")]
    NamespaceAlreadyExists(String),

    #[error("namespace {0} is not empty")]
    NamespaceNotEmpty(String),

    /// A schema change Iceberg cannot represent, or one that would lose data.
    #[error("invalid schema change: {0}")]
    InvalidSchemaChange(String),

    /// The caller asked for something that cannot work (bad argument, unsupported setup).
    #[error("{0}")]
    Invalid(String),

    #[error("iceberg: {0}")]
    Iceberg(#[from] iceberg::Error),

    #[error("catalog database: {0}")]
    Database(#[from] sqlx::Error),

    #[error("io: {0}")]
    Io(#[from] std::io::Error),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

impl CatalogError {
    /// The table moved under the caller; reloading and re-validating may succeed.
    pub fn conflict(table: &TableIdent, reason: impl Into<String>) -> Self {
        CatalogError::Conflict { table: table.to_string(), reason: reason.into(), retryable: true }
    }

    /// The table moved in a way no retry can fix.
    pub fn final_conflict(table: &TableIdent, reason: impl Into<String>) -> Self {
        CatalogError::Conflict { table: table.to_string(), reason: reason.into(), retryable: false }
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, CatalogError::Conflict { .. })
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, CatalogError::Conflict { retryable: true, .. })
    }
}
