//! A DataFusion session over floe's catalog: every table as `namespace.table`, and for every
//! keyed table the view `namespace.table_latest` ([`crate::catalog_provider`]).

use std::sync::Arc;

use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::Catalog;

use crate::catalog_provider::{FloeCatalogProvider, CATALOG_NAME};
use crate::error::Result;

/// The session settings floe's readers share: floe's catalog by default, and
/// `information_schema` for clients that list what is there.
pub fn session_config() -> SessionConfig {
    SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema(CATALOG_NAME, "public")
}

/// A session with `catalog` as its default catalog, its listing current.
pub async fn session(catalog: &dyn Catalog) -> Result<SessionContext> {
    let ctx = SessionContext::new_with_config(session_config());
    let provider = FloeCatalogProvider::new(catalog.shared(), ctx.copied_config().target_partitions());
    provider.refresh().await?;
    ctx.register_catalog(CATALOG_NAME, Arc::new(provider));
    Ok(ctx)
}
