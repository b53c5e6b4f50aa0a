//! Filters and limits reach the Iceberg scan: a query reads only the files whose statistics
//! allow a match, on tables and on the `_latest` views, and still returns the same rows.

mod common;

use common::*;
use floe_catalog::testing::test_catalog;
use floe_catalog::SqlCatalog;
use floe_sink::source::file::from_reader;
use floe_sink::testing::{Column, TableEvents};
use floe_sink::{Ingestor, SinkConfig};
use serde_json::json;

/// Three commits, one file each, with the keys 0–9, 10–19 and 20–29.
async fn three_files(catalog: &SqlCatalog) {
    let gen = TableEvents::new("pg.shop.items", vec![Column::new("note", "string")]);
    for part in 0..3 {
        let lines: Vec<String> = (part * 10..part * 10 + 10).map(|id| gen.upsert("c", id, &[json!(format!("item {id}"))])).collect();
        let source = from_reader(Box::new(std::io::Cursor::new(lines.join("\n").into_bytes())), format!("part-{part}"));
        Ingestor::new(catalog, SinkConfig::default()).run(source, &|_| {}).await.unwrap();
    }
}

/// The files the physical plan of `query` scans, per scan.
async fn files_scanned(catalog: &SqlCatalog, query: &str) -> Vec<usize> {
    let explained = json_rows(&floe_views::query(catalog, &format!("EXPLAIN {query}")).await.unwrap());
    let plan = explained.iter().find(|r| r["plan_type"] == "physical_plan").expect("a physical plan")["plan"].as_str().unwrap().to_string();
    let files = |line: &str| line.split(", ").nth(1)?.strip_suffix(" files")?.parse().ok();
    plan.lines().filter(|l| l.contains("ParallelSnapshotScan:")).filter_map(files).collect()
}

#[tokio::test]
async fn a_key_lookup_reads_only_the_file_that_can_hold_the_key() {
    let t = test_catalog().await;
    three_files(&t.catalog).await;
    assert_eq!(files_scanned(&t.catalog, "SELECT * FROM shop.items").await, vec![3]);
    assert_eq!(files_scanned(&t.catalog, "SELECT * FROM shop.items WHERE id = 15").await, vec![1]);
    // Through the view's ranking too (its truncate check scans the table again, filtered on _op).
    let latest = files_scanned(&t.catalog, "SELECT * FROM shop.items_latest WHERE id = 15").await;
    assert!(latest.contains(&1) && latest.iter().all(|&n| n <= 3), "{latest:?}");
    let rows = json_rows(&floe_views::query(&t.catalog, "SELECT id, note FROM shop.items_latest WHERE id = 15").await.unwrap());
    assert_eq!(rows, vec![json!({"id": 15, "note": "item 15"})]);
}

#[tokio::test]
async fn a_limit_without_filters_reads_only_the_files_it_needs() {
    let t = test_catalog().await;
    three_files(&t.catalog).await;
    assert_eq!(files_scanned(&t.catalog, "SELECT * FROM shop.items LIMIT 5").await, vec![1]);
    let rows = floe_views::query(&t.catalog, "SELECT * FROM shop.items LIMIT 25").await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 25);
}
