pub type Result<T, E = CompactError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    #[error(transparent)]
    Catalog(#[from] floe_catalog::CatalogError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Iceberg(#[from] floe_catalog::iceberg::Error),
    #[error("{0} is not a keyed floe table")]
    NotKeyed(String),
}
