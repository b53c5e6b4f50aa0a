//! The replace producer: atomically removes a named set of files and adds new ones, as one
//! `replace` snapshot (what Iceberg calls a rewrite). Added files may be position-delete files
//! over live data files (how an incremental compaction retires superseded rows). Files not
//! named stay live, including files appended by others after the caller read its base
//! snapshot: the change is computed against the table's current snapshot, and only manifests
//! that hold a removed file are rewritten. A named file that is no longer live is a conflict:
//! someone else already rewrote it.

use std::collections::{HashMap, HashSet};

use iceberg::spec::{DataFile, ManifestStatus, Operation};
use iceberg::TableIdent;

use crate::catalog::Catalog;
use crate::commit::{commit_with_retry, RetryPolicy, TableChange};
use crate::error::{CatalogError, Result};
use crate::snapshot::{EntryWrite, SnapshotWriter};
use crate::table::{live_file, FloeTable};

/// What one replace snapshot does.
#[derive(Debug, Clone, Default)]
pub struct FileRewrite {
    /// Paths of the live files (data or delete) to remove.
    pub remove: HashSet<String>,
    /// New data and delete files.
    pub add: Vec<DataFile>,
    /// Paths of files that must still be live for the rewrite to make sense (the data files the
    /// added position deletes point into).
    pub require_live: HashSet<String>,
}

impl FileRewrite {
    pub fn new(remove: HashSet<String>, add: Vec<DataFile>) -> Self {
        Self { remove, add, require_live: HashSet::new() }
    }
}

/// The change that applies `rewrite` to the table's current snapshot.
pub async fn prepare_replace(table: &FloeTable, rewrite: &FileRewrite, properties: HashMap<String, String>) -> Result<TableChange> {
    let Some(snapshot) = table.current_snapshot().cloned() else {
        return Err(CatalogError::final_conflict(table.ident(), "table has no snapshot to replace files in"));
    };
    let remove = &rewrite.remove;
    let mut writer = SnapshotWriter::new(table)?;
    let manifests = table.manifests(&snapshot).await?;
    let mut kept = Vec::with_capacity(manifests.len());
    // The entries of every manifest that holds a removed file, written together with the added
    // files: a few new manifests per rewrite, however many manifests it touched (on object
    // storage, each is a request).
    let mut rewritten = vec![];
    let mut found = HashSet::new();
    let mut required_found = 0;
    for (manifest, entries) in table.manifest_entries(&manifests).await? {
        let live = entries.iter().filter(|e| e.status() != ManifestStatus::Deleted);
        required_found += live.clone().filter(|e| rewrite.require_live.contains(e.file_path())).count();
        if !live.clone().any(|e| remove.contains(e.file_path())) {
            kept.push(manifest);
            continue;
        }
        rewritten.extend(live.map(|e| {
            if remove.contains(e.file_path()) {
                found.insert(e.file_path().to_string());
                EntryWrite::Deleted(live_file(e))
            } else {
                EntryWrite::Existing(live_file(e))
            }
        }));
    }
    if found.len() != remove.len() {
        let missing: Vec<_> = remove.difference(&found).take(3).cloned().collect();
        return Err(CatalogError::final_conflict(
            table.ident(),
            format!("{} file(s) to replace are no longer live, e.g. {missing:?}", remove.len() - found.len()),
        ));
    }
    if required_found != rewrite.require_live.len() {
        return Err(CatalogError::final_conflict(
            table.ident(),
            format!("{} data file(s) the new deletes apply to are no longer live", rewrite.require_live.len() - required_found),
        ));
    }
    rewritten.extend(rewrite.add.iter().cloned().map(EntryWrite::Added));
    kept.extend(writer.write_manifests(rewritten).await?);
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
    let rewrite = FileRewrite::new(remove, add);
    let committed = commit_with_retry(catalog, ident, policy, |table| {
        let (rewrite, properties) = (&rewrite, properties.clone());
        async move { prepare_replace(&table, rewrite, properties).await.map(Some) }
    })
    .await?;
    Ok(committed.expect("replace always produces a change"))
}
