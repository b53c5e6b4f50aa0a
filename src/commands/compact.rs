//! `floe compact [namespace.table | --all] [--dry-run]`.

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use floe_catalog::iceberg::TableIdent;
use floe_catalog::layout::key_columns;
use floe_catalog::Catalog;
use floe_compactor::{compact_table, CompactOptions, CompactionReport};

pub async fn run(catalog: &dyn Catalog, table: Option<String>, all: bool, options: &CompactOptions) -> Result<ExitCode> {
    let tables = match (table, all) {
        (Some(name), _) => {
            vec![floe_sink::config::parse_table_name(&name).with_context(|| format!("'{name}' is not namespace.table"))?]
        }
        (None, true) => keyed_tables(catalog).await?,
        (None, false) => bail!("name a table (namespace.table) or pass --all"),
    };
    let mut failed = 0;
    for ident in tables {
        let spinner = crate::progress::spinner(&format!("compacting {ident}"));
        let result = compact_table(catalog, &ident, options).await;
        spinner.finish_and_clear();
        match result {
            Ok(report) => print_report(&report),
            Err(e) => {
                failed += 1;
                eprintln!("{ident}: compaction failed: {e}");
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

pub async fn keyed_tables(catalog: &dyn Catalog) -> Result<Vec<TableIdent>> {
    let mut keyed = vec![];
    for namespace in catalog.list_namespaces().await? {
        for ident in catalog.list_tables(&namespace).await? {
            if key_columns(catalog.load_table(&ident).await?.current_schema()).is_some() {
                keyed.push(ident);
            }
        }
    }
    Ok(keyed)
}

pub fn print_report(r: &CompactionReport) {
    if let Some(reason) = &r.skipped {
        println!("{}: skipped ({reason})", r.table);
        return;
    }
    let verb = if r.dry_run { "would rewrite" } else { "rewrote" };
    let kind = r.kind.map(|k| k.as_str()).unwrap_or("full");
    let mut superseded = if r.rows_superseded > 0 { format!(", retired {} superseded rows", r.rows_superseded) } else { String::new() };
    if r.spilled {
        superseded.push_str(" (spilled: over the memory limit)");
    }
    println!(
        "{}: {kind}: {verb} {} files / {} rows / {} bytes{}",
        r.table,
        r.files_in,
        r.rows_in,
        r.bytes_in,
        if r.dry_run {
            String::new()
        } else {
            format!(
                " into {} files / {} rows / {} bytes{superseded} in {} ms; expired {} snapshots, deleted {} files",
                r.files_out, r.rows_out, r.bytes_out, r.duration_ms, r.expired_snapshots, r.files_deleted
            )
        }
    );
}
