pub type Result<T, E = CompactError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Catalog(#[from] floe_catalog::CatalogError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Iceberg(#[from] floe_catalog::iceberg::Error),
    /// A hashed rewrite would hold more than this many bytes; the spilling plan takes over.
    #[error("the in-memory rewrite would exceed the memory limit of {0} bytes")]
    OverBudget(usize),
    #[error("unexpected input: {0}")]
    Invalid(String),
    #[error("{0} is not a keyed floe table")]
    NotKeyed(String),
}
