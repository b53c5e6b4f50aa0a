//! The commit layer against a real SQLite catalog and real files on disk.

use std::collections::{HashMap, HashSet};

use floe_catalog::append::{append, prepare_append};
use floe_catalog::commit::stage_change;
use floe_catalog::iceberg::spec::Operation;
use floe_catalog::replace::{prepare_replace, replace};
use floe_catalog::testing::*;
use floe_catalog::{Catalog, CatalogError, RetryPolicy, SqlCatalog};

#[tokio::test]
async fn namespaces_and_tables_lifecycle() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    assert_eq!(t.catalog.list_tables(table.ident().namespace()).await.unwrap(), vec![table.ident().clone()]);
    let again = t
        .catalog
        .create_table(table.ident(), floe_catalog::iceberg::TableCreation::builder().name("people".into()).schema(people_schema()).build());
    assert!(matches!(again.await, Err(CatalogError::TableAlreadyExists(_))));

    let renamed = ident("shop", "customers");
    t.catalog.rename_table(table.ident(), &renamed).await.unwrap();
    assert!(!t.catalog.table_exists(table.ident()).await.unwrap());
    assert_eq!(t.catalog.load_table(&renamed).await.unwrap().metadata().uuid(), table.metadata().uuid());

    assert!(matches!(t.catalog.drop_namespace(renamed.namespace()).await, Err(CatalogError::NamespaceNotEmpty(_))));
    t.catalog.drop_table(&renamed).await.unwrap();
    assert!(matches!(t.catalog.load_table(&renamed).await, Err(CatalogError::TableNotFound(_))));
    t.catalog.drop_namespace(renamed.namespace()).await.unwrap();
    assert!(t.catalog.list_namespaces().await.unwrap().is_empty());
}

#[tokio::test]
async fn append_round_trips_with_summary_totals_and_properties() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let files = write_people(&table, &[1, 2, 3]).await;
    let props = HashMap::from([("floe.source-offsets".to_string(), "{\"0\":3}".to_string())]);
    let table = append(&t.catalog, table.ident(), files, props, &RetryPolicy::default()).await.unwrap();
    let files = write_people(&table, &[4, 5]).await;
    let table = append(&t.catalog, table.ident(), files, no_props(), &RetryPolicy::default()).await.unwrap();

    let reloaded = t.catalog.load_table(table.ident()).await.unwrap();
    assert_eq!(read_ids(&reloaded).await, vec![1, 2, 3, 4, 5]);
    let snapshot = reloaded.current_snapshot().unwrap();
    assert_eq!(snapshot.sequence_number(), 2);
    assert_eq!(snapshot.summary().operation, Operation::Append);
    let summary = reloaded.current_summary();
    assert_eq!(summary["total-records"], "5");
    assert_eq!(summary["total-data-files"], "2");
    assert_eq!(summary["added-records"], "2");
    let first = reloaded.metadata().snapshot_by_id(snapshot.parent_snapshot_id().unwrap()).unwrap();
    assert_eq!(first.summary().additional_properties["floe.source-offsets"], "{\"0\":3}");
}

#[tokio::test]
async fn concurrent_committers_one_wins_the_other_conflicts() {
    let t = test_catalog().await;
    let base = create_people(&t.catalog, "people").await;
    let a = prepare_append(&base, write_people(&base, &[1]).await, no_props()).await.unwrap();
    let b = prepare_append(&base, write_people(&base, &[2]).await, no_props()).await.unwrap();
    t.catalog.commit_table(&base, a).await.unwrap();
    let lost = t.catalog.commit_table(&base, b).await;
    assert!(matches!(lost, Err(CatalogError::Conflict { retryable: true, .. })), "{lost:?}");
    let table = t.catalog.load_table(base.ident()).await.unwrap();
    assert_eq!(read_ids(&table).await, vec![1]);
    assert_eq!(table.metadata().snapshots().len(), 1);
}

#[tokio::test]
async fn racing_appends_with_retry_lose_nothing() {
    let t = test_catalog().await;
    let base = create_people(&t.catalog, "people").await;
    let mut tasks = vec![];
    for writer in 0..4i64 {
        let catalog = t.catalog.clone();
        let ident = base.ident().clone();
        let base = base.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..5i64 {
                let files = write_people(&base, &[writer * 100 + round]).await;
                append(&catalog, &ident, files, no_props(), &RetryPolicy { max_attempts: 50, ..Default::default() }).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let table = t.catalog.load_table(base.ident()).await.unwrap();
    let expected: Vec<i64> = (0..4).flat_map(|w| (0..5).map(move |r| w * 100 + r)).collect::<Vec<_>>();
    let mut expected = expected;
    expected.sort();
    assert_eq!(read_ids(&table).await, expected);
    assert_eq!(table.current_summary()["total-records"], "20");
}

#[tokio::test]
async fn replace_keeps_files_appended_after_its_base() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let old = write_people(&table, &[1, 2]).await;
    let table = append(&t.catalog, table.ident(), old.clone(), no_props(), &RetryPolicy::default()).await.unwrap();

    // The compactor reads its base, meanwhile the sink appends.
    let base = table.clone();
    let late = write_people(&table, &[3]).await;
    append(&t.catalog, table.ident(), late, no_props(), &RetryPolicy::default()).await.unwrap();

    let remove: HashSet<String> = old.iter().map(|f| f.file_path().to_string()).collect();
    let rewritten = write_people(&base, &[1, 2]).await;
    // Staged against the stale base: the pointer moved, so it is a conflict...
    let stale =
        prepare_replace(&base, &floe_catalog::replace::FileRewrite::new(remove.clone(), rewritten.clone()), no_props()).await.unwrap();
    assert!(t.catalog.commit_table(&base, stale).await.unwrap_err().is_retryable());
    // ...and the retrying producer rebuilds it on the current snapshot.
    let table = replace(&t.catalog, base.ident(), remove.clone(), rewritten, no_props(), &RetryPolicy::default()).await.unwrap();
    assert_eq!(read_ids(&table).await, vec![1, 2, 3]);
    let snapshot = table.current_snapshot().unwrap();
    assert_eq!(snapshot.summary().operation, Operation::Replace);
    assert_eq!(table.current_summary()["total-data-files"], "2");
    assert_eq!(table.current_summary()["deleted-data-files"], "1");
    let live: HashSet<String> = table.live_files().await.unwrap().iter().map(|f| f.data_file.file_path().to_string()).collect();
    assert!(live.is_disjoint(&remove));

    // Replacing the same files again: they are gone, and no retry can change that.
    let again = replace(&t.catalog, table.ident(), remove, vec![], no_props(), &RetryPolicy::default()).await;
    assert!(matches!(again, Err(CatalogError::Conflict { retryable: false, .. })), "{again:?}");
}

#[tokio::test]
async fn two_replaces_of_the_same_files_one_wins() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let old = write_people(&table, &[1, 2]).await;
    let table = append(&t.catalog, table.ident(), old.clone(), no_props(), &RetryPolicy::default()).await.unwrap();
    let remove: HashSet<String> = old.iter().map(|f| f.file_path().to_string()).collect();
    let policy = RetryPolicy::default();
    let first = replace(&t.catalog, table.ident(), remove.clone(), write_people(&table, &[1, 2]).await, no_props(), &policy);
    let second = replace(&t.catalog, table.ident(), remove, write_people(&table, &[1, 2]).await, no_props(), &policy);
    let (a, b) = tokio::join!(first, second);
    assert!(a.is_ok() != b.is_ok(), "exactly one replace wins: {a:?} / {b:?}");
    let table = t.catalog.load_table(table.ident()).await.unwrap();
    assert_eq!(read_ids(&table).await, vec![1, 2]);
}

#[tokio::test]
async fn crash_between_metadata_write_and_swap_leaves_previous_snapshot() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let table = append(&t.catalog, table.ident(), write_people(&table, &[1]).await, no_props(), &RetryPolicy::default()).await.unwrap();
    // Do everything a commit does except the pointer swap, as if the process died there.
    let change = prepare_append(&table, write_people(&table, &[2]).await, no_props()).await.unwrap();
    let staged = stage_change(table.ident(), table.metadata(), table.metadata_location(), change).unwrap();
    staged.metadata.write_to(table.file_io(), &staged.location).await.unwrap();

    let after_crash = t.catalog.load_table(table.ident()).await.unwrap();
    assert_eq!(after_crash.metadata_location(), table.metadata_location());
    assert_eq!(read_ids(&after_crash).await, vec![1]);

    let orphan = floe_catalog::maintenance::local_path(&staged.location.to_string());
    assert!(orphan.exists());
    let report = floe_catalog::maintenance::remove_unreferenced_files(&after_crash, chrono::Utc::now() + chrono::Duration::seconds(1))
        .await
        .unwrap();
    assert!(!orphan.exists(), "the orphan metadata file is removed by cleanup");
    // The orphan metadata, its manifest list, its manifest and its data file.
    assert_eq!(report.files_deleted, 4);
    assert_eq!(read_ids(&t.catalog.load_table(table.ident()).await.unwrap()).await, vec![1]);
}

#[tokio::test]
async fn two_processes_creating_one_namespace_both_see_it_created() {
    // Two catalogs on one database, as two sinks of one group are: each one's create either
    // makes the namespace or finds it made, never fails on the other's row.
    let dir = tempfile::tempdir().unwrap();
    for round in 0..20 {
        let (a, b) = (SqlCatalog::open_embedded(dir.path()).await.unwrap(), SqlCatalog::open_embedded(dir.path()).await.unwrap());
        let namespace = floe_catalog::iceberg::NamespaceIdent::new(format!("lab{round}"));
        let (first, second) = tokio::join!(a.create_namespace(&namespace), b.create_namespace(&namespace));
        for result in [first, second] {
            assert!(matches!(result, Ok(()) | Err(CatalogError::NamespaceAlreadyExists(_))), "round {round}: {result:?}");
        }
        assert!(a.namespace_exists(&namespace).await.unwrap());
    }
}

#[tokio::test]
async fn a_commit_to_several_tables_moves_all_of_them_or_none() {
    let t = test_catalog().await;
    assert_multi_table_commits_are_all_or_none(&t.catalog).await;
}
