//! The replace producer: atomically removes a named set of data files and adds new ones, as one
//! `replace` snapshot (what Iceberg calls a rewrite). Files not named stay live, including files
//! appended by others after the caller read its base snapshot: the change is computed against
//! the table's current snapshot, and only manifests that hold a removed file are rewritten.
//! A named file that is no longer live is a conflict: someone else already rewrote it.

use std::collections::{HashMap, HashSet};

use iceberg::spec::{DataFile, ManifestStatus, Operation};
use iceberg::TableIdent;

use crate::catalog::Catalog;
use crate::commit::{commit_with_retry, RetryPolicy, TableChange};
use crate::error::{CatalogError, Result};
use crate::snapshot::{EntryWrite, SnapshotWriter};
use crate::table::{live_file, FloeTable};

/// The change that removes the files at `remove` (paths) and adds `add`.
pub async fn prepare_replace(
    table: &FloeTable,
    remove: &HashSet<String>,
    add: Vec<DataFile>,
    properties: HashMap<String, String>,
) -> Result<TableChange> {
    let Some(snapshot) = table.current_snapshot().cloned() else {
        return Err(CatalogError::final_conflict(table.ident(), "table has no snapshot to replace files in"));
    };
    let mut writer = SnapshotWriter::new(table)?;
    let manifests = table.manifests(&snapshot).await?;
    let mut kept = Vec::with_capacity(manifests.len());
    let mut found = HashSet::new();
    for (manifest, entries) in table.manifest_entries(&manifests).await? {
        let touches_removed = entries
            .iter()
            .any(|e| e.status() != ManifestStatus::Deleted && remove.contains(e.file_path()));
        if !touches_removed {
            kept.push(manifest);
            continue;
        }
        let rewritten = entries
            .iter()
            .filter(|e| e.status() != ManifestStatus::Deleted)
            .map(|e| {
                if remove.contains(e.file_path()) {
                    found.insert(e.file_path().to_string());
                    EntryWrite::Deleted(live_file(e))
                } else {
                    EntryWrite::Existing(live_file(e))
                }
            })
            .collect();
        kept.push(writer.write_manifest(rewritten).await?);
    }
    if found.len() != remove.len() {
        let missing: Vec<_> = remove.difference(&found).take(3).cloned().collect();
        return Err(CatalogError::final_conflict(
            table.ident(),
            format!("{} file(s) to replace are no longer live, e.g. {missing:?}", remove.len() - found.len()),
        ));
    }
    if !add.is_empty() {
        kept.push(writer.write_manifest(add.into_iter().map(EntryWrite::Added).collect()).await?);
    }
    writer.finish(Operation::Replace, kept, properties).await
}

/// Replaces `remove` by `add` in `ident`, retrying on a moved pointer. A file in `remove` that
/// is gone from the current snapshot stays a conflict on every attempt and is returned as such.
pub async fn replace(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    remove: HashSet<String>,
    add: Vec<DataFile>,
    properties: HashMap<String, String>,
    policy: &RetryPolicy,
) -> Result<FloeTable> {
    let committed = commit_with_retry(catalog, ident, policy, |table| {
        let (remove, add, properties) = (&remove, add.clone(), properties.clone());
        async move { prepare_replace(&table, remove, add, properties).await.map(Some) }
    })
    .await?;
    Ok(committed.expect("replace always produces a change"))
}
