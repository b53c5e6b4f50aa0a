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

/// A new PostgreSQL schema in `$FLOE_TEST_POSTGRES_URL`'s database, as if the database were new:
/// its name, and the URL that puts tables there.
async fn fresh_schema(admin: &sqlx::PgPool) -> (String, String) {
    let schema = format!("fresh_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE SCHEMA {schema}")).execute(admin).await.unwrap();
    let url = postgres_url();
    let separator = if url.contains('?') { '&' } else { '?' };
    (schema.clone(), format!("{url}{separator}options=-c%20search_path%3D{schema}"))
}

#[tokio::test]
async fn catalogs_opened_at_once_on_a_new_database_all_open() {
    let admin = sqlx::PgPool::connect(&postgres_url()).await.unwrap();
    let (schema, url) = fresh_schema(&admin).await;
    let dir = tempfile::tempdir().unwrap();
    let warehouse = dir.path().display().to_string();
    let names: Vec<String> = (0..6).map(|i| format!("c{i}")).collect();
    let opens = names.iter().map(|name| floe_catalog::SqlCatalog::open(&url, name, &warehouse));
    for (i, opened) in futures::future::join_all(opens).await.into_iter().enumerate() {
        let catalog = opened.unwrap_or_else(|e| panic!("catalog {i} failed to open: {e}"));
        assert!(catalog.list_namespaces().await.unwrap().is_empty(), "catalog {i} starts empty");
    }
    sqlx::query(&format!("DROP SCHEMA {schema} CASCADE")).execute(&admin).await.unwrap();
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
