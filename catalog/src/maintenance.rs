//! Table maintenance: expiring old snapshots, then deleting files no retained snapshot or
//! metadata version references. Without both, a rewrite never makes storage smaller.
//!
//! Deletion only considers files older than a grace period, because a writer in flight has
//! written files it has not committed yet. The same pass removes what a crash left behind:
//! metadata written but never swapped in, manifests of a lost race, data never committed.

use std::collections::HashSet;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use iceberg::spec::{ManifestStatus, MAIN_BRANCH};
use iceberg::{TableIdent, TableRequirement, TableUpdate};
use tracing::info;

use crate::catalog::Catalog;
use crate::commit::{commit_with_retry, RetryPolicy, TableChange};
use crate::error::Result;
use crate::storage::{list_files, ListedFile};
use crate::table::FloeTable;

/// Which snapshots to expire.
#[derive(Debug, Clone)]
pub struct ExpireOptions {
    /// Snapshots committed before this instant may be expired.
    pub older_than: DateTime<Utc>,
    /// The newest `retain_last` snapshots are kept whatever their age (at least 1).
    pub retain_last: usize,
}

/// Ids of the snapshots older than the newest `keep` (at least 1), never the current one
/// (`main` is the only ref floe writes), newest first.
pub fn snapshots_beyond_newest(table: &FloeTable, keep: usize) -> Vec<(i64, i64)> {
    let metadata = table.metadata();
    let current = metadata.current_snapshot_id();
    let mut by_age: Vec<_> = metadata.snapshots().collect();
    by_age.sort_by_key(|s| std::cmp::Reverse(s.timestamp_ms()));
    let expirable: HashSet<i64> = expirable_snapshots(table).map(|s| s.snapshot_id()).collect();
    let beyond = by_age.into_iter().skip(keep.max(1)).filter(|s| Some(s.snapshot_id()) != current && expirable.contains(&s.snapshot_id()));
    beyond.map(|s| (s.snapshot_id(), s.timestamp_ms())).collect()
}

/// The snapshots expiry may remove: all but those a tag, or a branch other than `main`, points
/// at. iceberg drops a reference with the snapshot it names, and a user's tag must outlive
/// floe's maintenance.
pub fn expirable_snapshots(table: &FloeTable) -> impl Iterator<Item = &iceberg::spec::SnapshotRef> {
    let held = snapshots_held_by_refs(table);
    table.metadata().snapshots().filter(move |s| !held.contains(&s.snapshot_id()))
}

/// Snapshots a tag, or a branch other than `main`, points at. (iceberg 0.10.1 has no accessor
/// for the references: they are read from the metadata's JSON form, once per expiry.)
fn snapshots_held_by_refs(table: &FloeTable) -> HashSet<i64> {
    let json = serde_json::to_value(table.metadata()).unwrap_or_default();
    let refs = json.get("refs").and_then(|r| r.as_object()).into_iter().flatten();
    refs.filter(|(name, _)| name.as_str() != MAIN_BRANCH).filter_map(|(_, r)| r.get("snapshot-id").and_then(|id| id.as_i64())).collect()
}

/// Snapshot ids `options` expires in `table`: beyond the newest `retain_last` and older than
/// `older_than`.
pub fn snapshots_to_expire(table: &FloeTable, options: &ExpireOptions) -> Vec<i64> {
    let cutoff = options.older_than.timestamp_millis();
    snapshots_beyond_newest(table, options.retain_last).into_iter().filter(|(_, ts)| *ts < cutoff).map(|(id, _)| id).collect()
}

pub fn prepare_expire(table: &FloeTable, options: &ExpireOptions) -> Option<TableChange> {
    let expired = snapshots_to_expire(table, options);
    if expired.is_empty() {
        return None;
    }
    Some(TableChange::new(
        vec![
            TableRequirement::UuidMatch { uuid: table.metadata().uuid() },
            TableRequirement::RefSnapshotIdMatch { r#ref: MAIN_BRANCH.to_string(), snapshot_id: table.current_snapshot_id() },
        ],
        vec![TableUpdate::RemoveSnapshots { snapshot_ids: expired }],
    ))
}

/// Expires snapshots of `ident`; returns the table after the commit and how many were expired.
pub async fn expire_snapshots(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    options: &ExpireOptions,
    policy: &RetryPolicy,
) -> Result<(FloeTable, usize)> {
    let before = catalog.load_table(ident).await?.metadata().snapshots().len();
    let committed = commit_with_retry(catalog, ident, policy, |table| async move { Ok(prepare_expire(&table, options)) }).await?;
    let table = match committed {
        Some(table) => table,
        None => catalog.load_table(ident).await?,
    };
    let expired = before.saturating_sub(table.metadata().snapshots().len());
    info!(table = %ident, expired, "expired snapshots");
    Ok((table, expired))
}

/// What a cleanup deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanupReport {
    pub files_deleted: usize,
    pub bytes_deleted: u64,
}

/// Every file the table's metadata versions and retained snapshots reference, by location as
/// [`list_files`] spells it.
pub async fn referenced_files(table: &FloeTable) -> Result<HashSet<String>> {
    let metadata = table.metadata();
    let mut paths = vec![table.metadata_location().to_string()];
    paths.extend(metadata.metadata_log().iter().map(|log| log.metadata_file.clone()));
    for snapshot in metadata.snapshots() {
        paths.push(snapshot.manifest_list().to_string());
        let manifests = table.manifests(snapshot).await?;
        paths.extend(manifests.iter().map(|m| m.manifest_path.clone()));
        for (_, entries) in table.manifest_entries(&manifests).await? {
            paths.extend(entries.iter().filter(|e| e.status() != ManifestStatus::Deleted).map(|e| e.file_path().to_string()));
        }
    }
    Ok(paths.iter().map(|p| comparable(p)).collect())
}

/// `location` as listings spell it: an object URL as it is, a local file as a plain path.
fn comparable(location: &str) -> String {
    match crate::storage::is_object_url(location) {
        true => location.to_string(),
        false => local_path(location).display().to_string(),
    }
}

/// Deletes files under the table's location that nothing references and that are older than
/// `older_than`, local or in a bucket alike. `table` must be freshly loaded.
pub async fn remove_unreferenced_files(table: &FloeTable, older_than: DateTime<Utc>) -> Result<CleanupReport> {
    let listed = list_table_files(table)?.await?;
    remove_unreferenced_listed(table, older_than, listed).await
}

/// Every file under the table's location, listed when the future runs: it owns what it needs,
/// so it can be spawned to list while other work goes on.
pub fn list_table_files(table: &FloeTable) -> Result<impl std::future::Future<Output = Result<Vec<ListedFile>>> + Send + 'static> {
    let file_io = table.iceberg_table()?.file_io().clone();
    let location = table.metadata().location().to_string();
    Ok(async move { list_files(&file_io, &location).await })
}

/// [`remove_unreferenced_files`] of files `listed` before. A file is deleted only when `table`
/// (freshly loaded) does not reference it and it is older than `older_than`, so a listing made
/// earlier is safe: what was written since is not in it, and what was listed and is still
/// referenced stays.
pub async fn remove_unreferenced_listed(table: &FloeTable, older_than: DateTime<Utc>, listed: Vec<ListedFile>) -> Result<CleanupReport> {
    let referenced = referenced_files(table).await?;
    let file_io = table.iceberg_table()?.file_io().clone();
    let mut report = CleanupReport::default();
    let mut orphans = vec![];
    for file in listed {
        if referenced.contains(&file.location) || file.modified >= older_than {
            continue;
        }
        report.files_deleted += 1;
        report.bytes_deleted += file.size;
        orphans.push(file.location);
    }
    // One stream: an object store deletes them in bulk requests.
    file_io.delete_stream(futures::stream::iter(orphans)).await?;
    info!(table = %table.ident(), files = report.files_deleted, bytes = report.bytes_deleted, "removed unreferenced files");
    Ok(report)
}

/// Local filesystem path of a warehouse location (`/p`, `file:/p` or `file:///p`).
pub fn local_path(location: &str) -> PathBuf {
    let stripped = location.strip_prefix("file://").or_else(|| location.strip_prefix("file:")).unwrap_or(location);
    PathBuf::from(stripped)
}
