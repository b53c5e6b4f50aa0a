//! Tables written by floe's commit layer, read back by floe's reader, by PyIceberg 0.12 through
//! floe's SQLite catalog, and by DuckDB over the Parquet files PyIceberg plans.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::*;
use floe_catalog::append::append;
use floe_catalog::iceberg::spec::{NestedField, PrimitiveType, StructType, Type};
use floe_catalog::maintenance::{expire_snapshots, remove_unreferenced_files, ExpireOptions};
use floe_catalog::replace::replace;
use floe_catalog::schema_update::{update_schema, SchemaChange};
use floe_catalog::testing::*;
use floe_catalog::{FloeTable, RetryPolicy, SqlCatalog};
use serde_json::Value;

fn paths(files: &[floe_catalog::iceberg::spec::DataFile]) -> HashSet<String> {
    files.iter().map(|f| f.file_path().to_string()).collect()
}

async fn appended(catalog: &SqlCatalog) -> FloeTable {
    let p = RetryPolicy::default();
    let t = create_people(catalog, "appended").await;
    let t = append(catalog, t.ident(), write_people(&t, &[1, 2, 3]).await, no_props(), &p).await.unwrap();
    append(catalog, t.ident(), write_people(&t, &[4, 5]).await, no_props(), &p).await.unwrap()
}

async fn replaced(catalog: &SqlCatalog) -> FloeTable {
    let p = RetryPolicy::default();
    let t = create_people(catalog, "replaced").await;
    let first = write_people(&t, &[1, 2]).await;
    let t = append(catalog, t.ident(), first.clone(), no_props(), &p).await.unwrap();
    let t = append(catalog, t.ident(), write_people(&t, &[3]).await, no_props(), &p).await.unwrap();
    let t = replace(catalog, t.ident(), paths(&first), write_people(&t, &[1, 2]).await, no_props(), &p).await.unwrap();
    append(catalog, t.ident(), write_people(&t, &[4]).await, no_props(), &p).await.unwrap()
}

async fn evolved(catalog: &SqlCatalog) -> FloeTable {
    let p = RetryPolicy::default();
    let t = create_people(catalog, "evolved").await;
    let t = append(catalog, t.ident(), write_people(&t, &[1, 2]).await, no_props(), &p).await.unwrap();
    let address = Type::Struct(StructType::new(vec![
        Arc::new(NestedField::optional(0, "city", Type::Primitive(PrimitiveType::String))),
        Arc::new(NestedField::optional(0, "zip", Type::Primitive(PrimitiveType::Int))),
    ]));
    let changes = [
        SchemaChange::AddColumn { parent: None, name: "address".into(), field_type: address, doc: None },
        SchemaChange::Widen { path: "amount".into(), to: PrimitiveType::Long },
        SchemaChange::Widen { path: "address.zip".into(), to: PrimitiveType::Long },
        SchemaChange::MakeOptional { path: "amount".into() },
        SchemaChange::Rename { path: "name".into(), new_name: "full_name".into() },
    ];
    let t = update_schema(catalog, t.ident(), &changes, &p).await.unwrap();
    let t = append(catalog, t.ident(), write_people(&t, &[3]).await, no_props(), &p).await.unwrap();
    let changes = [
        SchemaChange::Drop { path: "address".into() },
        SchemaChange::AddColumn { parent: None, name: "tier".into(), field_type: Type::Primitive(PrimitiveType::Long), doc: None },
    ];
    let t = update_schema(catalog, t.ident(), &changes, &p).await.unwrap();
    append(catalog, t.ident(), write_people(&t, &[4]).await, no_props(), &p).await.unwrap()
}

async fn expired(catalog: &SqlCatalog) -> FloeTable {
    let t = replaced_named(catalog, "expired").await;
    let now = chrono::Utc::now() + chrono::Duration::seconds(1);
    let options = ExpireOptions { older_than: now, retain_last: 1 };
    let (t, _) = expire_snapshots(catalog, t.ident(), &options, &RetryPolicy::default()).await.unwrap();
    remove_unreferenced_files(&t, now).await.unwrap();
    t
}

async fn replaced_named(catalog: &SqlCatalog, name: &str) -> FloeTable {
    let p = RetryPolicy::default();
    let t = create_people(catalog, name).await;
    let first = write_people(&t, &[7, 8]).await;
    let t = append(catalog, t.ident(), first.clone(), no_props(), &p).await.unwrap();
    replace(catalog, t.ident(), paths(&first), write_people(&t, &[7, 8]).await, no_props(), &p).await.unwrap()
}

#[tokio::test]
async fn pyiceberg_and_duckdb_read_what_floe_writes() {
    let t = test_catalog().await;
    let tables = vec![appended(&t.catalog).await, replaced(&t.catalog).await, evolved(&t.catalog).await, expired(&t.catalog).await];
    let names: Vec<String> = tables.iter().map(|t| t.ident().to_string()).collect();
    let mut args = vec![data_dir_arg(t.dir.path())];
    args.extend(names.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let read = run_python_json("read_tables.py", &args);

    for table in &tables {
        let name = table.ident().to_string();
        let ours = json_rows(&read_all(table).await);
        let mut theirs: Vec<Value> = read[&name]["pyiceberg"].as_array().unwrap().clone();
        theirs.iter_mut().for_each(strip_nulls);
        theirs.sort_by_key(|r| r.to_string());
        assert!(!ours.is_empty(), "{name}: floe read no rows");
        assert_eq!(ours, theirs, "{name}: floe and PyIceberg disagree");
        let duck: Vec<i64> = read[&name]["duckdb_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
        assert_eq!(duck, read_ids(table).await, "{name}: DuckDB over the planned files disagrees");
        assert_eq!(read[&name]["files"].as_u64().unwrap() as usize, table.live_files().await.unwrap().len());
    }
}
