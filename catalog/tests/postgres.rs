//! The same catalog and commit layer on PostgreSQL, for teams that share one catalog.
//! Runs against `$FLOE_TEST_POSTGRES_URL` (`.ci/test` starts a local PostgreSQL and sets it).

use std::collections::HashSet;

use floe_catalog::append::{append, prepare_append};
use floe_catalog::replace::replace;
use floe_catalog::testing::*;
use floe_catalog::{Catalog, CatalogError, RetryPolicy};

/// The server under test. Missing is a failure, not a skip: a test that passes without its
/// service proves nothing. `.ci/test` (the README's test command) starts one and sets the URL.
fn postgres_url() -> String {
    std::env::var("FLOE_TEST_POSTGRES_URL").expect("FLOE_TEST_POSTGRES_URL is not set: run `.ci/test`, which starts PostgreSQL and sets it")
}

#[tokio::test]
async fn a_commit_to_several_tables_moves_all_of_them_or_none_on_postgres() {
    let t = test_catalog_at(&postgres_url()).await;
    assert_multi_table_commits_are_all_or_none(&t.catalog).await;
}

#[tokio::test]
async fn postgres_catalog_commits_like_sqlite() {
    let url = postgres_url();
    let t = test_catalog_at(&url).await;
    let table = create_people(&t.catalog, "people").await;
    assert_eq!(t.catalog.list_tables(table.ident().namespace()).await.unwrap(), vec![table.ident().clone()]);

    // Append, then a racing commit on the stale base loses with a typed conflict.
    let first = write_people(&table, &[1, 2]).await;
    let stale = prepare_append(&table, write_people(&table, &[9]).await, no_props()).await.unwrap();
    let table = append(&t.catalog, table.ident(), first.clone(), no_props(), &RetryPolicy::default()).await.unwrap();
    assert!(matches!(
        t.catalog.commit_table(&t.catalog.load_table(table.ident()).await.unwrap(), stale.clone()).await,
        Err(CatalogError::Conflict { .. })
    ));

    // Replace keeps a later append.
    let table = append(&t.catalog, table.ident(), write_people(&table, &[3]).await, no_props(), &RetryPolicy::default()).await.unwrap();
    let remove: HashSet<String> = first.iter().map(|f| f.file_path().to_string()).collect();
    let table =
        replace(&t.catalog, table.ident(), remove, write_people(&table, &[1, 2]).await, no_props(), &RetryPolicy::default()).await.unwrap();
    assert_eq!(read_ids(&table).await, vec![1, 2, 3]);

    // Rename and drop.
    let renamed = ident("shop", "customers");
    t.catalog.rename_table(table.ident(), &renamed).await.unwrap();
    assert_eq!(read_ids(&t.catalog.load_table(&renamed).await.unwrap()).await, vec![1, 2, 3]);
    t.catalog.drop_table(&renamed).await.unwrap();
    t.catalog.drop_namespace(renamed.namespace()).await.unwrap();
    assert!(t.catalog.list_namespaces().await.unwrap().is_empty());
}
