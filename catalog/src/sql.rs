//! The embedded SQL catalog, in the Iceberg JDBC catalog layout, so PyIceberg's `SqlCatalog`
//! and Java's `JdbcCatalog` open the same database:
//!
//! ```sql
//! iceberg_tables(catalog_name, table_namespace, table_name,
//!                metadata_location, previous_metadata_location, iceberg_type)
//! iceberg_namespace_properties(catalog_name, namespace, property_key, property_value)
//! ```
//!
//! SQLite is the default (a file under the data directory, WAL mode so a sink and a compactor
//! in different processes can share it); a `postgres://` URL selects PostgreSQL. The pointer
//! swap is one conditional `UPDATE … WHERE metadata_location = <expected>`: one affected row
//! means this commit won.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use iceberg::io::FileIO;
use iceberg::spec::{TableMetadata, TableMetadataBuilder};
use iceberg::{MetadataLocation, NamespaceIdent, TableCreation, TableIdent};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, Row};
use tracing::{debug, info};

use crate::catalog::Catalog;
use crate::commit::{stage_change, StagedMetadata, TableChange};
use crate::error::{CatalogError, Result};
use crate::storage::Warehouse;
use crate::table::FloeTable;

/// The catalog name floe uses unless told otherwise.
pub const DEFAULT_CATALOG_NAME: &str = "floe";
/// Catalog database file inside the data directory.
pub const CATALOG_DB_FILE: &str = "catalog.db";
/// Warehouse directory inside the data directory.
pub const WAREHOUSE_DIR: &str = "warehouse";

/// Property PyIceberg writes for a namespace created without properties.
const NAMESPACE_EXISTS_PROPERTY: &str = "exists";

const CREATE_TABLES_SQL: &str = "CREATE TABLE IF NOT EXISTS iceberg_tables (
    catalog_name VARCHAR(255) NOT NULL,
    table_namespace VARCHAR(255) NOT NULL,
    table_name VARCHAR(255) NOT NULL,
    metadata_location VARCHAR(1000),
    previous_metadata_location VARCHAR(1000),
    iceberg_type VARCHAR(5),
    PRIMARY KEY (catalog_name, table_namespace, table_name))";

const CREATE_NAMESPACES_SQL: &str = "CREATE TABLE IF NOT EXISTS iceberg_namespace_properties (
    catalog_name VARCHAR(255) NOT NULL,
    namespace VARCHAR(255) NOT NULL,
    property_key VARCHAR(255) NOT NULL,
    property_value VARCHAR(1000),
    PRIMARY KEY (catalog_name, namespace, property_key))";

/// Whether `error` is PostgreSQL refusing a `CREATE … IF NOT EXISTS` that raced another one:
/// a unique violation in its system catalog (23505), the relation existing after all (42P07),
/// or the table's row type existing after all (42710, "type … already exists").
fn is_creation_race(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(e) if matches!(e.code().as_deref(), Some("23505" | "42P07" | "42710")))
}

/// A catalog stored in SQLite or PostgreSQL.
#[derive(Debug, Clone)]
pub struct SqlCatalog {
    pool: AnyPool,
    name: String,
    warehouse: String,
    file_io: FileIO,
    /// The last metadata read or committed per table. Metadata files are immutable, so an entry
    /// is valid exactly while the pointer still names its location; loading then costs one query.
    loaded: Arc<Mutex<HashMap<TableIdent, FloeTable>>>,
}

impl SqlCatalog {
    /// Opens (creating if needed) the embedded default: `<data_dir>/catalog.db` with the
    /// warehouse in `<data_dir>/warehouse`.
    pub async fn open_embedded(data_dir: &Path) -> Result<Self> {
        let warehouse = Warehouse::local(&data_dir.join(WAREHOUSE_DIR))?;
        Self::open_embedded_with(data_dir, warehouse).await
    }

    /// Opens (creating if needed) `<data_dir>/catalog.db`, with tables in `warehouse`.
    pub async fn open_embedded_with(data_dir: &Path, warehouse: Warehouse) -> Result<Self> {
        std::fs::create_dir_all(data_dir)?;
        let data_dir = std::fs::canonicalize(data_dir)?;
        let url = format!("sqlite://{}?mode=rwc", data_dir.join(CATALOG_DB_FILE).display());
        Self::open_with(&url, DEFAULT_CATALOG_NAME, warehouse).await
    }

    /// Opens a catalog at a `sqlite://` or `postgres://` URL, with tables under `warehouse`
    /// (an absolute local path).
    pub async fn open(url: &str, name: &str, warehouse: &str) -> Result<Self> {
        Self::open_with(url, name, Warehouse { location: warehouse.to_string(), file_io: FileIO::new_with_fs() }).await
    }

    /// Opens a catalog at a `sqlite://` or `postgres://` URL, with tables in `warehouse`.
    pub async fn open_with(url: &str, name: &str, warehouse: Warehouse) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let is_sqlite = url.starts_with("sqlite:");
        let pool = AnyPoolOptions::new()
            // SQLite serialises writers anyway; one connection avoids SQLITE_BUSY inside a process.
            .max_connections(if is_sqlite { 1 } else { 8 })
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if is_sqlite {
                        conn.execute("PRAGMA journal_mode=WAL").await?;
                        conn.execute("PRAGMA busy_timeout=30000").await?;
                    }
                    Ok(())
                })
            })
            .connect(url)
            .await?;
        let catalog = Self {
            pool,
            name: name.to_string(),
            warehouse: warehouse.location.trim_end_matches('/').to_string(),
            file_io: warehouse.file_io,
            loaded: Arc::default(),
        };
        catalog.ensure_schema().await?;
        Ok(catalog)
    }

    /// Creates the catalog's tables where they are missing. Several processes may do so at once
    /// on a new database: in PostgreSQL, two `CREATE TABLE IF NOT EXISTS` of one table can both
    /// find it missing, and the later one fails on the system catalog's unique index; the table
    /// exists by then, so the statement is run again. A column another process added meanwhile
    /// is likewise found on a second look.
    async fn ensure_schema(&self) -> Result<()> {
        for create in [CREATE_TABLES_SQL, CREATE_NAMESPACES_SQL] {
            if let Err(e) = self.pool.execute(create).await {
                if !is_creation_race(&e) {
                    return Err(e.into());
                }
                self.pool.execute(create).await?;
            }
        }
        // Databases created by PyIceberg lack `iceberg_type`; Java's JDBC catalog wants it.
        let has_type = || self.pool.execute("SELECT iceberg_type FROM iceberg_tables WHERE 1 = 0");
        if has_type().await.is_err() {
            if let Err(e) = self.pool.execute("ALTER TABLE iceberg_tables ADD COLUMN iceberg_type VARCHAR(5)").await {
                has_type().await.map_err(|_| e)?;
            }
        }
        Ok(())
    }

    /// The database pool, for floe's own records that live beside the catalog.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    fn default_table_location(&self, ident: &TableIdent) -> String {
        format!("{}/{}/{}", self.warehouse, ident.namespace().join("/"), ident.name())
    }

    async fn metadata_location_of(&self, ident: &TableIdent) -> Result<Option<String>> {
        let row: Option<AnyRow> = sqlx::query(
            "SELECT metadata_location FROM iceberg_tables
             WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3
               AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)",
        )
        .bind(&self.name)
        .bind(namespace_key(ident.namespace()))
        .bind(ident.name())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get::<String, _>(0)).transpose()?)
    }

    async fn read_table(&self, ident: &TableIdent, location: String) -> Result<FloeTable> {
        if let Some(table) = self.cached(ident).filter(|t| t.metadata_location() == location) {
            return Ok(table);
        }
        let metadata = TableMetadata::read_from(&self.file_io, &location).await?;
        let table = FloeTable::new(ident.clone(), metadata, location, self.file_io.clone());
        self.remember(&table);
        Ok(table)
    }

    fn cached(&self, ident: &TableIdent) -> Option<FloeTable> {
        self.loaded.lock().expect("cache lock").get(ident).cloned()
    }

    fn remember(&self, table: &FloeTable) {
        self.loaded.lock().expect("cache lock").insert(table.ident().clone(), table.clone());
    }

    /// Moves the pointer from `expected` to `new` through `executor` (the pool, or a
    /// transaction of several moves); a conflict if it no longer points at `expected`.
    async fn swap_pointer<'e>(
        &self,
        executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
        ident: &TableIdent,
        expected: &str,
        new: &str,
    ) -> Result<()> {
        let result = sqlx::query(
            "UPDATE iceberg_tables SET metadata_location = $1, previous_metadata_location = $2
             WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5
               AND metadata_location = $6",
        )
        .bind(new)
        .bind(expected)
        .bind(&self.name)
        .bind(namespace_key(ident.namespace()))
        .bind(ident.name())
        .bind(expected)
        .execute(executor)
        .await?;
        if result.rows_affected() == 1 {
            Ok(())
        } else {
            Err(CatalogError::conflict(ident, "table pointer moved since the change was staged"))
        }
    }

    /// Checks and applies `change` on the table's current metadata (`base`'s when it is still
    /// current, saving a read) and writes the new metadata file. Returns the location the new
    /// one replaces, and the new one.
    async fn stage_and_write(&self, ident: &TableIdent, base: Option<&FloeTable>, change: TableChange) -> Result<(String, StagedMetadata)> {
        let current_location = self.metadata_location_of(ident).await?.ok_or_else(|| CatalogError::TableNotFound(ident.to_string()))?;
        let current = match base.filter(|base| base.metadata_location() == current_location) {
            Some(base) => base.clone(),
            None => self.read_table(ident, current_location.clone()).await?,
        };
        let staged = stage_change(ident, current.metadata(), &current_location, change)?;
        staged.metadata.write_to(&self.file_io, &staged.location).await?;
        Ok((current_location, staged))
    }

    /// The table `staged` made, now committed.
    fn committed(&self, ident: &TableIdent, staged: StagedMetadata) -> FloeTable {
        let location = staged.location.to_string();
        debug!(table = %ident, %location, "swapped metadata pointer");
        let table = FloeTable::new(ident.clone(), staged.metadata, location, self.file_io.clone());
        self.remember(&table);
        table
    }

    /// Removes metadata files no pointer names: staged for a commit that did not happen. Left
    /// behind on an error, they are orphans for cleanup.
    async fn discard(&self, staged: &[&StagedMetadata]) {
        for metadata in staged {
            let _ = self.file_io.delete(metadata.location.to_string()).await;
        }
    }
}

/// The metadata files of staged changes: (table, (location replaced, new metadata)).
fn staged_files(staged: &[(TableIdent, (String, StagedMetadata))]) -> Vec<&StagedMetadata> {
    staged.iter().map(|(_, (_, metadata))| metadata).collect()
}

/// Multi-level namespaces are stored joined with '.', as PyIceberg and Java do.
fn namespace_key(ns: &NamespaceIdent) -> String {
    ns.join(".")
}

fn namespace_from_key(key: &str) -> Result<NamespaceIdent> {
    Ok(NamespaceIdent::from_vec(key.split('.').map(str::to_string).collect())?)
}

#[async_trait]
impl Catalog for SqlCatalog {
    fn name(&self) -> &str {
        &self.name
    }

    fn shared(&self) -> Arc<dyn Catalog> {
        Arc::new(self.clone())
    }

    fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    fn warehouse(&self) -> &str {
        &self.warehouse
    }

    async fn list_namespaces(&self) -> Result<Vec<NamespaceIdent>> {
        let rows = sqlx::query(
            "SELECT DISTINCT table_namespace FROM iceberg_tables WHERE catalog_name = $1
             UNION SELECT DISTINCT namespace FROM iceberg_namespace_properties WHERE catalog_name = $2",
        )
        .bind(&self.name)
        .bind(&self.name)
        .fetch_all(&self.pool)
        .await?;
        let mut namespaces = rows.iter().map(|r| namespace_from_key(&r.try_get::<String, _>(0)?)).collect::<Result<Vec<_>>>()?;
        namespaces.sort_by_key(namespace_key);
        Ok(namespaces)
    }

    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool> {
        let key = namespace_key(namespace);
        Ok(self.list_namespaces().await?.iter().any(|ns| namespace_key(ns) == key))
    }

    async fn create_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        if self.namespace_exists(namespace).await? {
            return Err(CatalogError::NamespaceAlreadyExists(namespace_key(namespace)));
        }
        let inserted = sqlx::query(
            "INSERT INTO iceberg_namespace_properties
             (catalog_name, namespace, property_key, property_value) VALUES ($1, $2, $3, $4)",
        )
        .bind(&self.name)
        .bind(namespace_key(namespace))
        .bind(NAMESPACE_EXISTS_PROPERTY)
        .bind("true")
        .execute(&self.pool)
        .await;
        // Another process created it since the check (sinks of one group start together).
        if inserted.is_err() && self.namespace_exists(namespace).await? {
            return Err(CatalogError::NamespaceAlreadyExists(namespace_key(namespace)));
        }
        inserted?;
        info!(namespace = %namespace_key(namespace), "created namespace");
        Ok(())
    }

    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()> {
        if !self.namespace_exists(namespace).await? {
            return Err(CatalogError::NamespaceNotFound(namespace_key(namespace)));
        }
        if !self.list_tables(namespace).await?.is_empty() {
            return Err(CatalogError::NamespaceNotEmpty(namespace_key(namespace)));
        }
        sqlx::query("DELETE FROM iceberg_namespace_properties WHERE catalog_name = $1 AND namespace = $2")
            .bind(&self.name)
            .bind(namespace_key(namespace))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>> {
        let rows = sqlx::query(
            "SELECT table_name FROM iceberg_tables
             WHERE catalog_name = $1 AND table_namespace = $2
               AND (iceberg_type = 'TABLE' OR iceberg_type IS NULL)
             ORDER BY table_name",
        )
        .bind(&self.name)
        .bind(namespace_key(namespace))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok(TableIdent::new(namespace.clone(), r.try_get::<String, _>(0)?))).collect()
    }

    async fn table_exists(&self, table: &TableIdent) -> Result<bool> {
        Ok(self.metadata_location_of(table).await?.is_some())
    }

    async fn create_table(&self, ident: &TableIdent, creation: TableCreation) -> Result<FloeTable> {
        if !self.namespace_exists(ident.namespace()).await? {
            return Err(CatalogError::NamespaceNotFound(namespace_key(ident.namespace())));
        }
        if self.table_exists(ident).await? {
            return Err(CatalogError::TableAlreadyExists(ident.to_string()));
        }
        let location = creation.location.clone().unwrap_or_else(|| self.default_table_location(ident));
        let creation = TableCreation { location: Some(location.clone()), name: ident.name().to_string(), ..creation };
        let metadata = TableMetadataBuilder::from_table_creation(creation)?.build()?.metadata;
        let metadata_location = MetadataLocation::new_with_metadata(&location, &metadata);
        metadata.write_to(&self.file_io, &metadata_location).await?;
        let inserted = sqlx::query(
            "INSERT INTO iceberg_tables (catalog_name, table_namespace, table_name,
               metadata_location, previous_metadata_location, iceberg_type)
             VALUES ($1, $2, $3, $4, NULL, 'TABLE')",
        )
        .bind(&self.name)
        .bind(namespace_key(ident.namespace()))
        .bind(ident.name())
        .bind(metadata_location.to_string())
        .execute(&self.pool)
        .await;
        if inserted.is_err() && self.table_exists(ident).await? {
            // Lost a create race: the other creator's row stands.
            return Err(CatalogError::TableAlreadyExists(ident.to_string()));
        }
        inserted?;
        info!(table = %ident, %location, "created table");
        Ok(FloeTable::new(ident.clone(), metadata, metadata_location.to_string(), self.file_io.clone()))
    }

    async fn load_table(&self, ident: &TableIdent) -> Result<FloeTable> {
        let location = self.metadata_location_of(ident).await?.ok_or_else(|| CatalogError::TableNotFound(ident.to_string()))?;
        self.read_table(ident, location).await
    }

    async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()> {
        if !self.namespace_exists(to.namespace()).await? {
            return Err(CatalogError::NamespaceNotFound(namespace_key(to.namespace())));
        }
        if self.table_exists(to).await? {
            return Err(CatalogError::TableAlreadyExists(to.to_string()));
        }
        let result = sqlx::query(
            "UPDATE iceberg_tables SET table_namespace = $1, table_name = $2
             WHERE catalog_name = $3 AND table_namespace = $4 AND table_name = $5",
        )
        .bind(namespace_key(to.namespace()))
        .bind(to.name())
        .bind(&self.name)
        .bind(namespace_key(from.namespace()))
        .bind(from.name())
        .execute(&self.pool)
        .await?;
        if result.rows_affected() == 0 {
            return Err(CatalogError::TableNotFound(from.to_string()));
        }
        Ok(())
    }

    async fn drop_table(&self, ident: &TableIdent) -> Result<()> {
        let result = sqlx::query("DELETE FROM iceberg_tables WHERE catalog_name = $1 AND table_namespace = $2 AND table_name = $3")
            .bind(&self.name)
            .bind(namespace_key(ident.namespace()))
            .bind(ident.name())
            .execute(&self.pool)
            .await?;
        if result.rows_affected() == 0 {
            return Err(CatalogError::TableNotFound(ident.to_string()));
        }
        Ok(())
    }

    async fn commit_table(&self, base: &FloeTable, change: TableChange) -> Result<FloeTable> {
        let ident = base.ident();
        let (current_location, staged) = self.stage_and_write(ident, Some(base), change).await?;
        if let Err(e) = self.swap_pointer(&self.pool, ident, &current_location, &staged.location.to_string()).await {
            // Nobody references the file we just wrote; remove it now rather than wait for cleanup.
            self.discard(&[&staged]).await;
            return Err(e);
        }
        Ok(self.committed(ident, staged))
    }

    async fn commit_tables(&self, changes: Vec<(TableIdent, TableChange)>) -> Result<Vec<FloeTable>> {
        crate::commit::check_distinct(&changes)?;
        let mut staged = vec![];
        for (ident, change) in changes {
            match self.stage_and_write(&ident, None, change).await {
                Ok(done) => staged.push((ident, done)),
                Err(e) => {
                    self.discard(&staged_files(&staged)).await;
                    return Err(e);
                }
            }
        }
        // Every pointer moves in one database transaction, or none does (dropped: rolled back).
        // Pointers move in one order, so two transactions over the same tables cannot deadlock.
        let mut order: Vec<_> = staged.iter().collect();
        order.sort_by_key(|(ident, _)| (ident.namespace().join("."), ident.name().to_string()));
        let swapped = async {
            let mut transaction = self.pool.begin().await?;
            for (ident, (expected, metadata)) in order {
                self.swap_pointer(&mut *transaction, ident, expected, &metadata.location.to_string()).await?;
            }
            Ok::<_, CatalogError>(transaction)
        };
        let transaction = match swapped.await {
            Ok(transaction) => transaction,
            Err(e) => {
                self.discard(&staged_files(&staged)).await;
                return Err(e);
            }
        };
        // A COMMIT that fails may still have landed: its files stay, for cleanup if it did not.
        transaction.commit().await.map_err(|e| CatalogError::Invalid(format!("committing the transaction, state unknown: {e}")))?;
        Ok(staged.into_iter().map(|(ident, (_, metadata))| self.committed(&ident, metadata)).collect())
    }
}
