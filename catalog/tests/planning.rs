//! floe's own scan planning (from the manifests it caches) against iceberg-rust's planner.

use std::collections::HashSet;

use floe_catalog::append::append;
use floe_catalog::read::{planned_tasks, scan_tasks};
use floe_catalog::testing::*;
use floe_catalog::RetryPolicy;

/// What a reader does with a task: which file, which bytes, which fields.
fn shape(task: &floe_catalog::iceberg::scan::FileScanTask) -> (String, u64, u64, Option<u64>, Vec<i32>, i32) {
    let schema_id = task.schema.schema_id();
    (task.data_file_path.clone(), task.start, task.length, task.record_count, task.project_field_ids.clone(), schema_id)
}

#[tokio::test]
async fn tasks_planned_from_cached_manifests_are_the_ones_icebergs_planner_makes() {
    let t = test_catalog().await;
    let mut table = create_people(&t.catalog, "people").await;
    for ids in [&[1, 2][..], &[3], &[4, 5, 6]] {
        let files = write_people(&table, ids).await;
        table = append(&t.catalog, table.ident(), files, no_props(), &RetryPolicy::default()).await.unwrap();
    }
    let live = table.live_files().await.unwrap();
    // Two of the three files: the planner leaves the others out.
    let paths: HashSet<String> = live.iter().skip(1).map(|f| f.path().to_string()).collect();
    let columns = vec!["name".to_string(), "id".to_string()];

    let mut ours: Vec<_> =
        planned_tasks(&table, &columns, &paths).await.unwrap().expect("no deletes: floe plans").iter().map(shape).collect();
    let mut icebergs: Vec<_> =
        scan_tasks(&table.iceberg_table().unwrap(), &columns, Some(&paths), None).await.unwrap().iter().map(shape).collect();
    ours.sort();
    icebergs.sort();
    assert_eq!(ours.len(), 2);
    assert_eq!(ours, icebergs);
}

#[tokio::test]
async fn a_table_that_maps_names_to_field_ids_is_left_to_icebergs_planner() {
    let t = test_catalog().await;
    let table = create_people(&t.catalog, "people").await;
    let files = write_people(&table, &[1]).await;
    let table = append(&t.catalog, table.ident(), files, no_props(), &RetryPolicy::default()).await.unwrap();
    let mapping = r#"[{"field-id": 1, "names": ["id"]}, {"field-id": 2, "names": ["name"]}]"#;
    let table = set_properties(&t.catalog, &table, &[("schema.name-mapping.default", mapping)]).await;
    let paths = table.live_files().await.unwrap().iter().map(|f| f.path().to_string()).collect();
    assert!(planned_tasks(&table, &["id".to_string()], &paths).await.unwrap().is_none());
}
