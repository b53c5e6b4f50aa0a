pub type Result<T, E = ViewError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(transparent)]
    Catalog(#[from] floe_catalog::CatalogError),
    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error(transparent)]
    Iceberg(#[from] floe_catalog::iceberg::Error),
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
}
