//! `floe tables` and `floe describe namespace.table`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use floe_catalog::{Catalog, FloeTable};

pub async fn tables(catalog: &dyn Catalog) -> Result<ExitCode> {
    println!("{:<32} {:>12} {:>8}", "table", "rows", "files");
    for namespace in catalog.list_namespaces().await? {
        for ident in catalog.list_tables(&namespace).await? {
            let table = catalog.load_table(&ident).await?;
            let summary = table.current_summary();
            let get = |k: &str| summary.get(k).cloned().unwrap_or_else(|| "0".into());
            println!("{:<32} {:>12} {:>8}", ident.to_string(), get("total-records"), get("total-data-files"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn describe(catalog: &dyn Catalog, name: &str) -> Result<ExitCode> {
    let ident = floe_sink::config::parse_table_name(name).with_context(|| format!("'{name}' is not namespace.table"))?;
    let table = catalog.load_table(&ident).await?;
    print!("{}", describe_text(&table));
    Ok(ExitCode::SUCCESS)
}

fn describe_text(table: &FloeTable) -> String {
    let metadata = table.metadata();
    let schema = table.current_schema();
    let keys = floe_catalog::layout::identifier_columns(schema);
    let summary = table.current_summary();
    let get = |k: &str| summary.get(k).cloned().unwrap_or_else(|| "0".into());
    let mut out = format!("table:     {}\nlocation:  {}\nmetadata:  {}\n", table.ident(), metadata.location(), table.metadata_location());
    out += &format!("key:       {}\n", if keys.is_empty() { "(none)".into() } else { keys.join(", ") });
    out +=
        &format!("rows:      {}\nfiles:     {}\nbytes:     {}\n", get("total-records"), get("total-data-files"), get("total-files-size"));
    out += &format!("\nschema (id {}):\n", schema.schema_id());
    for field in schema.as_struct().fields() {
        let required = if field.required { "required" } else { "optional" };
        out += &format!("  {:>3}  {:<24} {:<24} {required}\n", field.id, field.name, field.field_type.to_string());
    }
    out += "\nsnapshots (newest first):\n";
    let mut snapshots: Vec<_> = metadata.snapshots().collect();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.sequence_number()));
    for s in snapshots.iter().take(20) {
        let props = &s.summary().additional_properties;
        let added = props.get("added-records").map(String::as_str).unwrap_or("0");
        let deleted = props.get("deleted-records").map(String::as_str).unwrap_or("0");
        let when = s.timestamp().map(|t| t.to_rfc3339()).unwrap_or_default();
        out += &format!(
            "  {:>4}  {:<20} {:<8} +{added} -{deleted}  {when}\n",
            s.sequence_number(),
            s.snapshot_id(),
            s.summary().operation.as_str()
        );
    }
    if snapshots.len() > 20 {
        out += &format!("  … {} older\n", snapshots.len() - 20);
    }
    out += &compaction_history(&snapshots);
    out
}

/// Compactions among the retained snapshots, newest first, from their summaries.
fn compaction_history(snapshots: &[&floe_catalog::iceberg::spec::SnapshotRef]) -> String {
    let compactions: Vec<_> =
        snapshots.iter().filter(|s| s.summary().additional_properties.contains_key(floe_compactor::plan::SUMMARY_COMPACTION)).collect();
    if compactions.is_empty() {
        return "\ncompactions: none retained\n".into();
    }
    let mut out = "\ncompactions (newest first):\n".to_string();
    for s in compactions {
        let p = &s.summary().additional_properties;
        let get = |k: &str| p.get(&format!("floe.compaction.{k}")).map(String::as_str).unwrap_or("?");
        let when = s.timestamp().map(|t| t.to_rfc3339()).unwrap_or_default();
        let kind = p.get(floe_compactor::plan::SUMMARY_COMPACTION).map(String::as_str).unwrap_or("?");
        out += &format!(
            "  {when}  {kind:<11}  rows {} → {} (superseded {})  files {} → {}  bytes {} → {}  {} ms\n",
            get("rows-in"),
            get("rows-out"),
            get("rows-superseded"),
            get("files-in"),
            get("files-out"),
            get("bytes-in"),
            get("bytes-out"),
            get("duration-ms")
        );
    }
    out
}
