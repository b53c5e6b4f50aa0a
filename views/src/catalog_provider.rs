//! floe's catalog as a DataFusion catalog: namespaces are schemas, tables are tables, and every
//! keyed table `t` has the view `t_latest`, its current state.
//!
//! Tables resolve lazily: a query loads the tables it names, each at its current snapshot, when
//! it is planned, so a long-lived session sees new tables, snapshots and schema changes without
//! a restart, and one query reads one snapshot of each table it names. DataFusion's listings
//! (`information_schema`, `SHOW TABLES`, and a server's `pg_catalog`) are synchronous, so the
//! names are cached and [`FloeCatalogProvider::refresh`] renews them; a server calls it before
//! each statement.
//!
//! Each session's provider carries its [`SessionAccess`]: tables the session may not read are
//! not listed and fail with "permission denied" when named, and columns it may not read are
//! left out of the table's and the view's schema.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use datafusion::catalog::{CatalogProvider, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::datasource::ViewTable;
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::iceberg::{NamespaceIdent, TableIdent};
use floe_catalog::layout::{key_columns, paths, TableFiles};
use floe_catalog::{Catalog, CatalogError, FloeTable};

use crate::access::{Columns, SessionAccess};
use crate::latest::{latest_view_split_sql, latest_view_sql, quote, LATEST_SUFFIX};
use crate::scan::ParallelSnapshotScan;

/// The name floe's catalog has in a session.
pub const CATALOG_NAME: &str = "floe";

/// Tables per schema, as last listed, each with its key columns when it is keyed (and so has
/// a latest view).
#[derive(Debug, Default)]
struct Listing {
    schemas: BTreeMap<String, BTreeMap<String, Option<Vec<String>>>>,
    at: Option<Instant>,
}

/// A table or latest view a session may read, as last listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub schema: String,
    pub name: String,
    /// A `_latest` view over a keyed table, rather than a table.
    pub is_view: bool,
    /// The columns that identify a row, on a latest view (the table's identifier fields): unique
    /// there, unlike in the table, which keeps every change of a key. `None` when the session
    /// may not read one of them.
    pub unique_key: Option<Vec<String>>,
}

/// floe's catalog, for DataFusion.
#[derive(Debug)]
pub struct FloeCatalogProvider {
    catalog: Arc<dyn Catalog>,
    listing: Arc<RwLock<Listing>>,
    /// Partitions a table scan is spread over.
    partitions: usize,
    /// Schemas a session added (a server's `pg_catalog`), in front of floe's namespaces.
    added: RwLock<BTreeMap<String, Arc<dyn SchemaProvider>>>,
    access: SessionAccess,
}

impl FloeCatalogProvider {
    /// A provider over `catalog` that may read everything, whose scans use `partitions`
    /// parallel partitions. Its listing is empty until [`refresh`](Self::refresh).
    pub fn new(catalog: Arc<dyn Catalog>, partitions: usize) -> Self {
        let access = SessionAccess::everything();
        Self { catalog, listing: Arc::default(), partitions: partitions.max(1), added: RwLock::default(), access }
    }

    /// A provider for one more session, reading what `access` allows: the same catalog and
    /// listing, and schemas of its own.
    pub fn for_session(&self, access: SessionAccess) -> Self {
        let listing = self.listing.clone();
        Self { catalog: self.catalog.clone(), listing, partitions: self.partitions, added: RwLock::default(), access }
    }

    /// Whether the session may read anything in `schema`.
    fn sees_any(&self, schema: &str, tables: &BTreeMap<String, Option<Vec<String>>>) -> bool {
        tables.keys().any(|table| self.access.columns(schema, table).is_some())
    }

    /// Lists the namespaces, tables and latest views again.
    pub async fn refresh(&self) -> crate::Result<()> {
        let mut schemas = BTreeMap::new();
        for namespace in self.catalog.list_namespaces().await? {
            let mut tables = BTreeMap::new();
            for ident in self.catalog.list_tables(&namespace).await? {
                let table = match self.catalog.load_table(&ident).await {
                    Ok(table) => table,
                    // Dropped since it was listed.
                    Err(CatalogError::TableNotFound(_)) => continue,
                    Err(e) => return Err(e.into()),
                };
                tables.insert(ident.name().to_string(), key_columns(table.current_schema()));
            }
            schemas.insert(namespace.join("."), tables);
        }
        *self.listing.write().expect("not poisoned") = Listing { schemas, at: Some(Instant::now()) };
        Ok(())
    }

    /// [`refresh`](Self::refresh), unless the listing is younger than `max_age`.
    pub async fn refresh_if_older_than(&self, max_age: Duration) -> crate::Result<()> {
        let fresh = self.listing.read().expect("not poisoned").at.is_some_and(|at| at.elapsed() < max_age);
        if fresh {
            return Ok(());
        }
        self.refresh().await
    }

    /// The catalog this provider presents.
    pub fn catalog(&self) -> &Arc<dyn Catalog> {
        &self.catalog
    }

    /// Every table and latest view the session may read, schema by schema, as last listed.
    pub fn relations(&self) -> Vec<Relation> {
        let listing = self.listing.read().expect("not poisoned");
        let mut relations = vec![];
        for (schema, tables) in &listing.schemas {
            for (table, key) in tables {
                let Some(columns) = self.access.columns(schema, table) else { continue };
                let relation = |name: String, is_view, unique_key| Relation { schema: schema.clone(), name, is_view, unique_key };
                relations.push(relation(table.clone(), false, None));
                if let Some(key) = key {
                    let readable = key.iter().all(|k| columns.allows(k)).then(|| key.clone());
                    relations.push(relation(format!("{table}{LATEST_SUFFIX}"), true, readable));
                }
            }
        }
        relations
    }

    fn schema_provider(&self, name: &str) -> FloeSchemaProvider {
        let namespace = NamespaceIdent::from_strs(name.split('.')).unwrap_or_else(|_| NamespaceIdent::new(name.to_string()));
        FloeSchemaProvider {
            name: name.to_string(),
            namespace,
            catalog: self.catalog.clone(),
            listing: self.listing.clone(),
            partitions: self.partitions,
            access: self.access.clone(),
        }
    }
}

impl CatalogProvider for FloeCatalogProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        let listing = self.listing.read().expect("not poisoned");
        let visible = listing.schemas.iter().filter(|(schema, tables)| self.sees_any(schema, tables));
        let mut names: BTreeSet<String> = visible.map(|(schema, _)| schema.clone()).collect();
        names.extend(self.added.read().expect("not poisoned").keys().cloned());
        names.into_iter().collect()
    }

    /// Any name is a schema: a namespace created after the last listing is readable at once,
    /// and one that does not exist simply has no tables.
    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if let Some(added) = self.added.read().expect("not poisoned").get(name) {
            return Some(added.clone());
        }
        Some(Arc::new(self.schema_provider(name)))
    }

    fn register_schema(&self, name: &str, schema: Arc<dyn SchemaProvider>) -> DFResult<Option<Arc<dyn SchemaProvider>>> {
        Ok(self.added.write().expect("not poisoned").insert(name.to_string(), schema))
    }
}

/// One namespace of floe's catalog.
#[derive(Debug)]
struct FloeSchemaProvider {
    name: String,
    namespace: NamespaceIdent,
    catalog: Arc<dyn Catalog>,
    listing: Arc<RwLock<Listing>>,
    partitions: usize,
    access: SessionAccess,
}

impl FloeSchemaProvider {
    /// The columns of `table` this session may read, or why it may not read it.
    fn readable(&self, table: &str) -> DFResult<Columns> {
        let denied = || DataFusionError::Plan(format!("permission denied for table {}.{table}", self.name));
        self.access.columns(&self.name, table).ok_or_else(denied)
    }

    async fn load(&self, name: &str) -> DFResult<Option<FloeTable>> {
        match self.catalog.load_table(&TableIdent::new(self.namespace.clone(), name.to_string())).await {
            Ok(table) => Ok(Some(table)),
            Err(CatalogError::TableNotFound(_) | CatalogError::NamespaceNotFound(_)) => Ok(None),
            Err(e) => Err(DataFusionError::External(Box::new(e))),
        }
    }

    /// A scan of every column of `table`, for the session's own use.
    fn scan(&self, table: &FloeTable) -> DFResult<ParallelSnapshotScan> {
        ParallelSnapshotScan::new(table.iceberg_table().map_err(external)?, self.partitions).map_err(external)
    }

    /// The latest view of `table` with the `columns` the session may read, planned over scans
    /// of the snapshot just loaded; `None` for a table without key.
    async fn latest_view(&self, table: &FloeTable, columns: &Columns) -> DFResult<Option<Arc<dyn TableProvider>>> {
        // The view's SQL names its inputs; a private context resolves them to these scans, and
        // the plan, which holds the scans themselves, becomes the view.
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_default_catalog_and_schema(CATALOG_NAME, "public"));
        let inputs: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
        ctx.catalog(CATALOG_NAME).expect("default catalog").register_schema("inputs", inputs.clone())?;
        let files = TableFiles::of(table).await.map_err(external)?;
        let select = if files.compacted.is_empty() {
            inputs.register_table("all".into(), Arc::new(self.scan(table)?))?;
            latest_view_sql(&input_name("all"), table.current_schema())
        } else {
            // Compacted: the compaction output apart from what was appended since, so only the
            // new rows are ranked, and reading a freshly compacted table costs a filter.
            inputs.register_table("compacted".into(), Arc::new(self.scan(table)?.only_files(paths(&files.compacted))))?;
            inputs.register_table("delta".into(), Arc::new(self.scan(table)?.only_files(paths(&files.delta))))?;
            latest_view_split_sql(&input_name("compacted"), &input_name("delta"), table.current_schema())
        };
        let Some(select) = select else { return Ok(None) };
        let view = ctx.sql(&select).await?;
        if *columns == Columns::All {
            return Ok(Some(Arc::new(ViewTable::new(view.into_unoptimized_plan(), Some(select)))));
        }
        // The ranking reads every column it needs; the session gets only its own. No
        // definition: it would name the others.
        let names: Vec<String> = view.schema().fields().iter().map(|f| f.name().clone()).filter(|n| columns.allows(n)).collect();
        let view = view.select_columns(&names.iter().map(String::as_str).collect::<Vec<_>>())?;
        Ok(Some(Arc::new(ViewTable::new(view.into_unoptimized_plan(), None))))
    }
}

fn input_name(name: &str) -> String {
    format!("{}.{}", quote("inputs"), quote(name))
}

fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

#[async_trait]
impl SchemaProvider for FloeSchemaProvider {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        let listing = self.listing.read().expect("not poisoned");
        let Some(tables) = listing.schemas.get(&self.name) else { return vec![] };
        let visible = tables.iter().filter(|(table, _)| self.access.columns(&self.name, table).is_some());
        let mut names = vec![];
        for (table, key) in visible {
            names.push(table.clone());
            if key.is_some() {
                names.push(format!("{table}{LATEST_SUFFIX}"));
            }
        }
        names
    }

    async fn table(&self, name: &str) -> DFResult<Option<Arc<dyn TableProvider>>> {
        if let Some(table) = self.load(name).await? {
            let columns = self.readable(name)?;
            return Ok(Some(Arc::new(self.scan(&table)?.only_columns(&columns)?)));
        }
        let Some(base) = name.strip_suffix(LATEST_SUFFIX) else { return Ok(None) };
        match self.load(base).await? {
            Some(table) => self.latest_view(&table, &self.readable(base)?).await,
            None => Ok(None),
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.table_names().iter().any(|n| n == name)
    }
}
