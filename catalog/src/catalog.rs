//! The catalog contract. An implementation stores, per table, a pointer to its current
//! `metadata.json`, and moves that pointer only by compare-and-swap.
//!
//! What every implementation must guarantee:
//! - **Atomic visibility**: a reader sees either the old metadata location or the new one.
//! - **Compare-and-swap**: [`Catalog::commit_table`] moves the pointer only if it still points at
//!   the location the change was computed against; otherwise it returns
//!   [`CatalogError::Conflict`](crate::CatalogError::Conflict) and leaves the pointer alone.
//! - **Already exists** means a row for that identifier exists, whatever it points at.
//!
//! The embedded SQL catalog ([`crate::SqlCatalog`]) is the default; [`crate::rest::RestCatalog`]
//! sends the same requirements and updates to an Iceberg REST catalog.

use async_trait::async_trait;
use iceberg::io::FileIO;
use iceberg::{NamespaceIdent, TableCreation, TableIdent};

use crate::commit::TableChange;
use crate::error::Result;
use crate::table::FloeTable;

#[async_trait]
pub trait Catalog: std::fmt::Debug + Send + Sync {
    /// The catalog name (the `catalog_name` column in the JDBC layout).
    fn name(&self) -> &str;
    /// FileIO for the warehouse the tables live in.
    fn file_io(&self) -> &FileIO;
    /// Root location new tables are created under.
    fn warehouse(&self) -> &str;
    /// This catalog as a shared handle, for readers that outlive a borrow (a query engine's
    /// catalog provider). It shares connections and caches with `self`.
    fn shared(&self) -> std::sync::Arc<dyn Catalog>;

    async fn list_namespaces(&self) -> Result<Vec<NamespaceIdent>>;
    async fn namespace_exists(&self, namespace: &NamespaceIdent) -> Result<bool>;
    async fn create_namespace(&self, namespace: &NamespaceIdent) -> Result<()>;
    /// Drops an empty namespace.
    async fn drop_namespace(&self, namespace: &NamespaceIdent) -> Result<()>;

    async fn list_tables(&self, namespace: &NamespaceIdent) -> Result<Vec<TableIdent>>;
    async fn table_exists(&self, table: &TableIdent) -> Result<bool>;
    /// Creates the table with metadata version 0. The namespace must exist.
    async fn create_table(&self, table: &TableIdent, creation: TableCreation) -> Result<FloeTable>;
    async fn load_table(&self, table: &TableIdent) -> Result<FloeTable>;
    async fn rename_table(&self, from: &TableIdent, to: &TableIdent) -> Result<()>;
    /// Removes the table from the catalog. Its files stay where they are.
    async fn drop_table(&self, table: &TableIdent) -> Result<()>;

    /// Checks `change.requirements` against the table's current metadata, applies the updates,
    /// writes the new metadata file and swaps the pointer. Never overwrites another commit.
    async fn commit_table(&self, base: &FloeTable, change: TableChange) -> Result<FloeTable>;

    /// Commits to several tables at once, all or none: each change is checked against its
    /// table's current metadata, and every pointer moves, or none does. A failed requirement
    /// is a [`CatalogError::Conflict`](crate::CatalogError::Conflict), as for one table.
    async fn commit_tables(&self, changes: Vec<(TableIdent, TableChange)>) -> Result<Vec<FloeTable>>;
}
