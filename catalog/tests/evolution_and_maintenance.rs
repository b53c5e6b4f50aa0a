//! Schema changes, manifest merging and snapshot expiry, against a real catalog.

use std::collections::HashSet;
use std::sync::Arc;

use arrow_array::{Array, Int64Array};
use floe_catalog::append::{append, MIN_COUNT_TO_MERGE};
use floe_catalog::iceberg::spec::{NestedField, PrimitiveType, StructType, Type};
use floe_catalog::maintenance::{expire_snapshots, local_path, remove_unreferenced_files, ExpireOptions};
use floe_catalog::replace::replace;
use floe_catalog::schema_update::{update_schema, SchemaChange};
use floe_catalog::testing::*;
use floe_catalog::{Catalog, CatalogError, RetryPolicy};

fn long() -> Type {
    Type::Primitive(PrimitiveType::Long)
}

#[tokio::test]
async fn schema_changes_keep_old_data_readable_and_never_reuse_ids() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let table = append(&t.catalog, table.ident(), write_people(&table, &[1, 2]).await, no_props(), &RetryPolicy::default()).await.unwrap();
    let address = Type::Struct(StructType::new(vec![
        Arc::new(NestedField::optional(0, "city", Type::Primitive(PrimitiveType::String))),
        Arc::new(NestedField::optional(0, "zip", Type::Primitive(PrimitiveType::Int))),
    ]));
    let changes = vec![
        SchemaChange::AddColumn { parent: None, name: "address".into(), field_type: address, doc: None },
        SchemaChange::AddColumn { parent: Some("address".into()), name: "country".into(), field_type: long(), doc: None },
        SchemaChange::Widen { path: "amount".into(), to: PrimitiveType::Long },
        SchemaChange::Widen { path: "address.zip".into(), to: PrimitiveType::Long },
        SchemaChange::MakeOptional { path: "amount".into() },
        SchemaChange::Rename { path: "name".into(), new_name: "full_name".into() },
    ];
    let policy = RetryPolicy::default();
    let table = update_schema(&t.catalog, table.ident(), &changes, &policy).await.unwrap();
    let schema = table.current_schema();
    assert_eq!(schema.field_by_name("address").unwrap().id, 4);
    assert_eq!(schema.field_by_name("address.city").unwrap().id, 5);
    assert_eq!(schema.field_by_name("address.zip").unwrap().id, 6);
    assert_eq!(schema.field_by_name("address.country").unwrap().id, 7);
    assert_eq!(*schema.field_by_name("address.zip").unwrap().field_type, long());
    assert_eq!(*schema.field_by_name("amount").unwrap().field_type, long());
    assert!(!schema.field_by_name("amount").unwrap().required);
    assert_eq!(schema.field_by_name("full_name").unwrap().id, 2);

    // New rows under the new schema; old rows read with widened types and null new columns.
    let table = append(&t.catalog, table.ident(), write_people(&table, &[3]).await, no_props(), &policy).await.unwrap();
    let batches = read_all(&table).await;
    let amounts: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column_by_name("amount").unwrap().as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
        .collect();
    let mut amounts = amounts;
    amounts.sort();
    assert_eq!(amounts, vec![10, 20, 30]);
    assert!(batches.iter().all(|b| b.column_by_name("address").unwrap().null_count() == b.num_rows()));

    // Drop, then re-add a column of the same name: it gets a new id, never the old one.
    let table = update_schema(&t.catalog, table.ident(), &[SchemaChange::Drop { path: "address".into() }], &policy).await.unwrap();
    let readd = SchemaChange::AddColumn { parent: None, name: "address".into(), field_type: long(), doc: None };
    let table = update_schema(&t.catalog, table.ident(), &[readd], &policy).await.unwrap();
    assert_eq!(table.current_schema().field_by_name("address").unwrap().id, 8);
    assert_eq!(read_ids(&table).await, vec![1, 2, 3]);
}

#[tokio::test]
async fn incompatible_schema_changes_are_refused() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let policy = RetryPolicy::default();
    let refused = [
        SchemaChange::Widen { path: "id".into(), to: PrimitiveType::Int },
        SchemaChange::Widen { path: "name".into(), to: PrimitiveType::Long },
        SchemaChange::Drop { path: "id".into() },
        SchemaChange::MakeOptional { path: "id".into() },
        SchemaChange::Rename { path: "name".into(), new_name: "amount".into() },
        SchemaChange::AddColumn { parent: None, name: "name".into(), field_type: long(), doc: None },
        SchemaChange::Drop { path: "missing".into() },
    ];
    for change in refused {
        let result = update_schema(&t.catalog, table.ident(), std::slice::from_ref(&change), &policy).await;
        assert!(matches!(result, Err(CatalogError::InvalidSchemaChange(_))), "{change:?} → {result:?}");
    }
    let unchanged = t.catalog.load_table(table.ident()).await.unwrap();
    assert_eq!(unchanged.metadata().schemas_iter().len(), 1);
}

#[tokio::test]
async fn small_manifests_are_merged_in_tiers_so_the_list_stays_bounded() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let mut table = set_properties(&t.catalog, &table, &[(MIN_COUNT_TO_MERGE, "10")]).await;
    for id in 0..35 {
        let files = write_people(&table, &[id]).await;
        table = append(&t.catalog, table.ident(), files, no_props(), &RetryPolicy::default()).await.unwrap();
        let manifests = table.manifests(table.current_snapshot().unwrap()).await.unwrap();
        // Tiers of 1-9 and 10-99 files: at most 10 manifests in each (9 kept, and the new one).
        let files = |m: &floe_catalog::iceberg::spec::ManifestFile| m.added_files_count.unwrap_or(0) + m.existing_files_count.unwrap_or(0);
        let (ones, tens) = manifests.iter().partition::<Vec<_>, _>(|m| files(m) < 10);
        assert!(ones.len() <= 10 && tens.len() <= 10, "after {} appends: {} and {} manifests", id + 1, ones.len(), tens.len());
    }
    let manifests = table.manifests(table.current_snapshot().unwrap()).await.unwrap();
    assert_eq!(manifests.len(), 3 + 5, "35 files: three merged manifests of 10, five of 1");
    assert_eq!(read_ids(&table).await, (0..35).collect::<Vec<_>>());
    assert_eq!(table.live_files().await.unwrap().len(), 35);
    assert_eq!(table.current_summary()["total-records"], "35");
}

#[tokio::test]
async fn expire_and_cleanup_shrink_storage_after_a_rewrite() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let policy = RetryPolicy::default();
    let mut table = table;
    let mut old_files = vec![];
    for id in 0..5 {
        let files = write_people(&table, &[id]).await;
        old_files.extend(files.clone());
        table = append(&t.catalog, table.ident(), files, no_props(), &policy).await.unwrap();
    }
    let remove: HashSet<String> = old_files.iter().map(|f| f.file_path().to_string()).collect();
    let compacted = write_people(&table, &[0, 1, 2, 3, 4]).await;
    let table = replace(&t.catalog, table.ident(), remove.clone(), compacted, no_props(), &policy).await.unwrap();

    let options = ExpireOptions { older_than: chrono::Utc::now() + chrono::Duration::seconds(1), retain_last: 1 };
    let (table, expired) = expire_snapshots(&t.catalog, table.ident(), &options, &policy).await.unwrap();
    assert_eq!(expired, 5);
    assert_eq!(table.metadata().snapshots().len(), 1);
    let report = remove_unreferenced_files(&table, chrono::Utc::now() + chrono::Duration::seconds(1)).await.unwrap();
    assert!(report.files_deleted >= 5 + 5, "{report:?}");
    assert!(remove.iter().all(|p| !local_path(p).exists()), "rewritten data files are deleted");
    assert_eq!(read_ids(&t.catalog.load_table(table.ident()).await.unwrap()).await, vec![0, 1, 2, 3, 4]);
    // A second pass finds nothing more to delete.
    let again = remove_unreferenced_files(&table, chrono::Utc::now() + chrono::Duration::seconds(1)).await.unwrap();
    assert_eq!(again.files_deleted, 0);
}

#[tokio::test]
async fn appends_keep_only_the_newest_snapshots_and_lose_no_data() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let mut table = set_properties(&t.catalog, &table, &[(floe_catalog::append::RETAIN_SNAPSHOTS, "5")]).await;
    for id in 0..12 {
        let files = write_people(&table, &[id]).await;
        table = append(&t.catalog, table.ident(), files, no_props(), &RetryPolicy::default()).await.unwrap();
    }
    assert_eq!(table.metadata().snapshots().len(), 5);
    let reloaded = t.catalog.load_table(table.ident()).await.unwrap();
    assert_eq!(read_ids(&reloaded).await, (0..12).collect::<Vec<_>>());
    assert_eq!(reloaded.current_summary()["total-records"], "12");
}

#[tokio::test]
async fn two_writers_evolving_a_table_the_same_way_at_once_both_succeed_and_change_it_once() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let string = Type::Primitive(PrimitiveType::String);
    let changes = vec![
        SchemaChange::AddColumn { parent: None, name: "color".into(), field_type: string, doc: None },
        SchemaChange::Widen { path: "amount".into(), to: PrimitiveType::Long },
    ];
    let policy = RetryPolicy::default();
    let ident = table.ident();
    let (first, second) =
        tokio::join!(update_schema(&t.catalog, ident, &changes, &policy), update_schema(&t.catalog, ident, &changes, &policy));
    let (first, second) = (first.unwrap(), second.unwrap());
    assert_eq!(first.metadata_location(), second.metadata_location(), "the loser found its change made and committed nothing");
    let schema = t.catalog.load_table(ident).await.unwrap().current_schema().clone();
    assert_eq!(schema.as_struct().fields().iter().filter(|f| f.name == "color").count(), 1);
    assert_eq!(*schema.field_by_name("amount").unwrap().field_type, long());

    // A column of that name but another type is still refused.
    let clash = [SchemaChange::AddColumn { parent: None, name: "color".into(), field_type: long(), doc: None }];
    let refused = update_schema(&t.catalog, ident, &clash, &policy).await.unwrap_err();
    assert!(refused.to_string().contains("column color already exists, as string"), "{refused}");
}

#[tokio::test]
async fn expiry_keeps_the_snapshots_tags_point_at() {
    use floe_catalog::iceberg::spec::{SnapshotReference, SnapshotRetention};
    use floe_catalog::iceberg::TableUpdate;
    let t = test_catalog().await;
    let policy = RetryPolicy::default();
    let mut table = create_people(&t.catalog, "people").await;
    for id in 0..3 {
        table = append(&t.catalog, table.ident(), write_people(&table, &[id]).await, no_props(), &policy).await.unwrap();
    }
    let first = table.metadata().snapshots().min_by_key(|s| s.timestamp_ms()).unwrap().snapshot_id();
    let tag = SnapshotReference::new(first, SnapshotRetention::Tag { max_ref_age_ms: None });
    let change = floe_catalog::TableChange::new(vec![], vec![TableUpdate::SetSnapshotRef { ref_name: "audit".into(), reference: tag }]);
    let table = t.catalog.commit_table(&table, change).await.unwrap();

    let options = ExpireOptions { older_than: chrono::Utc::now() + chrono::Duration::seconds(1), retain_last: 1 };
    let (table, expired) = expire_snapshots(&t.catalog, table.ident(), &options, &policy).await.unwrap();
    assert_eq!(expired, 1, "the middle snapshot only");
    assert_eq!(table.metadata().snapshot_for_ref("audit").map(|s| s.snapshot_id()), Some(first), "the tag and its snapshot stay");
}
