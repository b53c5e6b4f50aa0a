//! A DataFusion session over the catalog: every table as `namespace.table`, and for every keyed
//! table the view `namespace.table_latest`. Each table is pinned to the snapshot current when
//! the session was built, so one query sees one consistent state.

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::Catalog;
use iceberg_datafusion::IcebergStaticTableProvider;
use tracing::debug;

use crate::error::Result;
use crate::latest::{latest_view_sql, quote, LATEST_SUFFIX};

/// Builds a session with every table of `catalog` registered.
pub async fn session(catalog: &dyn Catalog) -> Result<SessionContext> {
    let config = SessionConfig::new().with_information_schema(true).with_default_catalog_and_schema("floe", "public");
    let ctx = SessionContext::new_with_config(config);
    let df_catalog = ctx.catalog("floe").expect("default catalog exists");
    for namespace in catalog.list_namespaces().await? {
        let schema_name = namespace.join(".");
        df_catalog.register_schema(&schema_name, Arc::new(MemorySchemaProvider::new()))?;
        let schema_provider = df_catalog.schema(&schema_name).expect("just registered");
        for ident in catalog.list_tables(&namespace).await? {
            let table = catalog.load_table(&ident).await?;
            let provider = IcebergStaticTableProvider::try_new_from_table(table.iceberg_table()?).await?;
            schema_provider.register_table(ident.name().to_string(), Arc::new(provider))?;
            let qualified = format!("{}.{}", quote(&schema_name), quote(ident.name()));
            if let Some(select) = latest_view_sql(&qualified, table.current_schema()) {
                let view = format!("{}.{}", quote(&schema_name), quote(&format!("{}{LATEST_SUFFIX}", ident.name())));
                ctx.sql(&format!("CREATE VIEW {view} AS {select}")).await?;
                debug!(table = %ident, "registered latest view");
            }
        }
    }
    Ok(ctx)
}
