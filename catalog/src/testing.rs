//! Test fixtures (feature `testing`): a temporary embedded catalog, a small keyed table, and
//! reading a table back through iceberg-rust's scan. Used by this crate's tests and by floe's
//! end-to-end tests; not part of the production API.

use std::collections::HashMap;
use std::sync::Arc;

use crate::writer::{table_arrow_schema, write_data_files};
use crate::{Catalog, FloeTable, SqlCatalog};
use arrow_array::{Array, Int32Array, Int64Array, RecordBatch, StringArray};
use futures::TryStreamExt;
use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
use iceberg::{NamespaceIdent, TableCreation, TableIdent};

pub struct TestCatalog {
    pub dir: tempfile::TempDir,
    pub catalog: SqlCatalog,
}

/// An embedded catalog in a temporary directory. Its tables' files are there too, unless
/// `FLOE_TEST_WAREHOUSE` names a bucket (`s3://bucket`, reached with the AWS variables): then
/// they go to a prefix of their own in it. `.ci/test` runs the ingest, view and compaction
/// suites both ways.
pub async fn test_catalog() -> TestCatalog {
    let dir = tempfile::tempdir().unwrap();
    let catalog = match suite_warehouse(dir.path()) {
        Some(location) => {
            let warehouse = crate::storage::Warehouse::parse(&location, HashMap::new()).unwrap();
            SqlCatalog::open_embedded_with(dir.path(), warehouse).await.unwrap()
        }
        None => SqlCatalog::open_embedded(dir.path()).await.unwrap(),
    };
    TestCatalog { dir, catalog }
}

/// `$FLOE_TEST_WAREHOUSE/<dir's name>`, when the variable is set: a warehouse no other test shares.
pub fn suite_warehouse(dir: &std::path::Path) -> Option<String> {
    let base = std::env::var("FLOE_TEST_WAREHOUSE").ok().filter(|b| !b.is_empty())?;
    let name = dir.file_name().map(|n| n.to_string_lossy().trim_start_matches('.').to_string()).unwrap_or_default();
    Some(format!("{}/{name}", base.trim_end_matches('/')))
}

pub fn ident(ns: &str, name: &str) -> TableIdent {
    TableIdent::new(NamespaceIdent::new(ns.to_string()), name.to_string())
}

/// `id long (key), name string, amount int`.
pub fn people_schema() -> Schema {
    Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long))),
            Arc::new(NestedField::optional(2, "name", Type::Primitive(PrimitiveType::String))),
            Arc::new(NestedField::required(3, "amount", Type::Primitive(PrimitiveType::Int))),
        ])
        .with_identifier_field_ids(vec![1])
        .build()
        .unwrap()
}

pub async fn create_people(catalog: &dyn Catalog, name: &str) -> FloeTable {
    let id = ident("shop", name);
    if !catalog.namespace_exists(id.namespace()).await.unwrap() {
        catalog.create_namespace(id.namespace()).await.unwrap();
    }
    let creation = TableCreation::builder().name(name.to_string()).schema(people_schema()).build();
    catalog.create_table(&id, creation).await.unwrap()
}

/// A batch for the table's current schema (`id, name, amount` as the first three columns;
/// later columns are null).
pub fn people_batch(table: &FloeTable, ids: &[i64]) -> RecordBatch {
    let schema = table_arrow_schema(table).unwrap();
    let mut columns: Vec<Arc<dyn Array>> = vec![
        Arc::new(Int64Array::from(ids.to_vec())),
        Arc::new(StringArray::from(ids.iter().map(|i| format!("p{i}")).collect::<Vec<_>>())),
    ];
    let amount: Arc<dyn Array> = match schema.field(2).data_type() {
        arrow_schema::DataType::Int64 => Arc::new(Int64Array::from(ids.iter().map(|i| i * 10).collect::<Vec<_>>())),
        _ => Arc::new(Int32Array::from(ids.iter().map(|i| (*i as i32) * 10).collect::<Vec<_>>())),
    };
    columns.push(amount);
    for field in schema.fields().iter().skip(3) {
        columns.push(arrow_array::new_null_array(field.data_type(), ids.len()));
    }
    RecordBatch::try_new(schema, columns).unwrap()
}

pub async fn write_people(table: &FloeTable, ids: &[i64]) -> Vec<iceberg::spec::DataFile> {
    write_data_files(table, [people_batch(table, ids)]).await.unwrap()
}

/// All rows of the table's current snapshot, through iceberg-rust's scan.
pub async fn read_all(table: &FloeTable) -> Vec<RecordBatch> {
    if table.current_snapshot().is_none() {
        return vec![];
    }
    let scan = table.iceberg_table().unwrap().scan().build().unwrap();
    scan.to_arrow().await.unwrap().try_collect().await.unwrap()
}

/// Sorted ids in the table.
pub async fn read_ids(table: &FloeTable) -> Vec<i64> {
    let mut ids: Vec<i64> = read_all(table)
        .await
        .iter()
        .flat_map(|b| {
            let col = b.column_by_name("id").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().clone();
            col.values().to_vec()
        })
        .collect();
    ids.sort();
    ids
}

pub fn no_props() -> HashMap<String, String> {
    HashMap::new()
}

/// Sets table properties in one commit and returns the table after it.
pub async fn set_properties(catalog: &SqlCatalog, table: &FloeTable, props: &[(&str, &str)]) -> FloeTable {
    let updates = props.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let change = crate::TableChange::new(vec![], vec![iceberg::TableUpdate::SetProperties { updates }]);
    catalog.commit_table(table, change).await.unwrap()
}

/// A catalog in the database at `url` (e.g. PostgreSQL), under a catalog name of its own so
/// tests sharing a database never see each other's tables; the warehouse is a temp dir.
pub async fn test_catalog_at(url: &str) -> TestCatalog {
    let dir = tempfile::tempdir().unwrap();
    let name = format!("test_{}", uuid::Uuid::new_v4().simple());
    let warehouse = std::fs::canonicalize(dir.path()).unwrap().display().to_string();
    let catalog = SqlCatalog::open(url, &name, &warehouse).await.unwrap();
    TestCatalog { dir, catalog }
}

/// What [`Catalog::commit_tables`] promises, on `catalog`'s database: a change whose
/// requirement fails commits nothing to any table, and transactions racing to append to two
/// tables move both or neither, so the two always hold the same rows.
pub async fn assert_multi_table_commits_are_all_or_none(catalog: &dyn Catalog) {
    use crate::append::prepare_append;
    use iceberg::TableRequirement;

    let (a, b) = (create_people(catalog, "a").await, create_people(catalog, "b").await);
    let props = |value: &str| iceberg::TableUpdate::SetProperties { updates: HashMap::from([("x".to_string(), value.to_string())]) };
    let holds = crate::TableChange::new(vec![TableRequirement::UuidMatch { uuid: a.metadata().uuid() }], vec![props("1")]);
    let fails = crate::TableChange::new(vec![TableRequirement::CurrentSchemaIdMatch { current_schema_id: 99 }], vec![props("1")]);
    let refused = catalog.commit_tables(vec![(a.ident().clone(), holds.clone()), (b.ident().clone(), fails)]).await;
    assert!(matches!(refused, Err(crate::CatalogError::Conflict { .. })), "{refused:?}");
    for table in [&a, &b] {
        let now = catalog.load_table(table.ident()).await.unwrap();
        assert_eq!(now.metadata_location(), table.metadata_location(), "{} untouched", table.ident());
    }
    let twice = catalog.commit_tables(vec![(a.ident().clone(), holds.clone()), (a.ident().clone(), holds)]).await;
    assert!(matches!(twice, Err(crate::CatalogError::Invalid(_))), "{twice:?}");

    let mut racers = vec![];
    for id in 0..6i64 {
        let (catalog, a, b) = (catalog.shared(), a.clone(), b.clone());
        racers.push(tokio::spawn(async move {
            let (a, b) = (catalog.load_table(a.ident()).await.unwrap(), catalog.load_table(b.ident()).await.unwrap());
            let into_a = prepare_append(&a, write_people(&a, &[id]).await, HashMap::new()).await.unwrap();
            let into_b = prepare_append(&b, write_people(&b, &[id]).await, HashMap::new()).await.unwrap();
            catalog.commit_tables(vec![(a.ident().clone(), into_a), (b.ident().clone(), into_b)]).await.is_ok()
        }));
    }
    let mut landed = 0;
    for racer in racers {
        landed += usize::from(racer.await.unwrap());
    }
    let (a, b) = (catalog.load_table(a.ident()).await.unwrap(), catalog.load_table(b.ident()).await.unwrap());
    assert!(landed >= 1);
    assert_eq!(read_ids(&a).await, read_ids(&b).await, "both tables or neither");
    assert_eq!((a.metadata().snapshots().len(), b.metadata().snapshots().len()), (landed, landed));
}
