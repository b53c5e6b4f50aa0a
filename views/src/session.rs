//! A DataFusion session over the catalog: every table as `namespace.table`, and for every keyed
//! table the view `namespace.table_latest`. Each table is pinned to the snapshot current when
//! the session was built, so one query sees one consistent state.
//!
//! A compacted table's view reads the compaction output apart from what was appended since
//! (scans registered in the `floe_internal` schema), so only the new rows are ranked: reading a
//! freshly compacted table costs a filter, not a sort.

use std::sync::Arc;

use datafusion::catalog::MemorySchemaProvider;
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::layout::{paths, TableFiles};
use floe_catalog::{Catalog, FloeTable};
use iceberg_datafusion::IcebergStaticTableProvider;
use tracing::debug;

use crate::error::Result;
use crate::latest::{latest_view_split_sql, latest_view_sql, quote, LATEST_SUFFIX};
use crate::scan::ParallelSnapshotScan;

/// Schema of the scans the latest views of compacted tables are built on.
pub const INTERNAL_SCHEMA: &str = "floe_internal";

fn internal_schema(ctx: &SessionContext) -> Result<Arc<dyn datafusion::catalog::SchemaProvider>> {
    let catalog = ctx.catalog("floe").expect("default catalog exists");
    if let Some(schema) = catalog.schema(INTERNAL_SCHEMA) {
        return Ok(schema);
    }
    catalog.register_schema(INTERNAL_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    Ok(catalog.schema(INTERNAL_SCHEMA).expect("just registered"))
}

/// The latest view of a table with compaction output, over scans of its compacted and delta
/// files registered in [`INTERNAL_SCHEMA`].
fn split_latest_view(ctx: &SessionContext, schema_name: &str, table: &FloeTable, files: &TableFiles) -> Result<Option<String>> {
    let internal = internal_schema(ctx)?;
    let partitions = ctx.copied_config().target_partitions();
    let mut names = vec![];
    for (part, files) in [("compacted", &files.compacted), ("delta", &files.delta)] {
        let name = format!("{schema_name}.{}.{part}", table.ident().name());
        let scan = ParallelSnapshotScan::new(table.iceberg_table()?, partitions)?.only_files(paths(files));
        internal.register_table(name.clone(), Arc::new(scan))?;
        names.push(format!("{}.{}", quote(INTERNAL_SCHEMA), quote(&name)));
    }
    Ok(latest_view_split_sql(&names[0], &names[1], table.current_schema()))
}

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
            let files = TableFiles::of(&table).await?;
            let select = if files.compacted.is_empty() {
                latest_view_sql(&qualified, table.current_schema())
            } else {
                split_latest_view(&ctx, &schema_name, &table, &files)?
            };
            if let Some(select) = select {
                let view = format!("{}.{}", quote(&schema_name), quote(&format!("{}{LATEST_SUFFIX}", ident.name())));
                ctx.sql(&format!("CREATE VIEW {view} AS {select}")).await?;
                debug!(table = %ident, "registered latest view");
            }
        }
    }
    Ok(ctx)
}
