//! The append producer: adds data files as one `append` snapshot, carrying summary properties
//! (the sink stores source positions there), and merges small manifests the way Iceberg's
//! merge-append does, so the manifest list, and with it commit time, stays flat as commits pile up.

use std::collections::{BTreeMap, HashMap};

use iceberg::spec::{DataFile, ManifestContentType, ManifestFile, ManifestStatus, Operation};
use iceberg::{TableIdent, TableUpdate};

use crate::catalog::Catalog;
use crate::commit::{commit_with_retry, RetryPolicy, TableChange};
use crate::error::Result;
use crate::maintenance::snapshots_beyond_newest;
use crate::snapshot::{EntryWrite, SnapshotWriter};
use crate::table::{live_file, FloeTable};

/// Table properties of Iceberg's merge-append. floe merges sooner than Java's 100 manifests: a
/// sink commits every few seconds, and every reader that is not a long-lived floe process (a
/// compaction, DuckDB, PyIceberg, Trino) fetches each manifest of the snapshot it reads, a
/// request each in object storage.
pub const MERGE_ENABLED: &str = "commit.manifest-merge.enabled";
pub const MIN_COUNT_TO_MERGE: &str = "commit.manifest.min-count-to-merge";
pub const TARGET_MANIFEST_SIZE: &str = "commit.manifest.target-size-bytes";
/// How many snapshots an append keeps (the newest, including its own); older ones are removed
/// from the metadata in the same commit. 0 keeps every snapshot. metadata.json holds every
/// snapshot and is rewritten by each commit, so without a bound commit time grows with history.
pub const RETAIN_SNAPSHOTS: &str = "floe.append.retain-snapshots";
const DEFAULT_RETAIN_SNAPSHOTS: usize = 100;
const DEFAULT_MIN_COUNT_TO_MERGE: usize = 8;
const DEFAULT_TARGET_MANIFEST_SIZE: i64 = 8 * 1024 * 1024;

/// When and how far manifests are merged on append.
#[derive(Debug, Clone, Copy)]
pub struct MergePolicy {
    pub enabled: bool,
    pub min_count_to_merge: usize,
    pub target_size_bytes: i64,
}

impl MergePolicy {
    pub fn from_properties(props: &HashMap<String, String>) -> Self {
        let get = |key: &str| props.get(key).and_then(|v| v.parse::<i64>().ok());
        Self {
            enabled: props.get(MERGE_ENABLED).map(|v| v != "false").unwrap_or(true),
            min_count_to_merge: get(MIN_COUNT_TO_MERGE).map(|v| v.max(2) as usize).unwrap_or(DEFAULT_MIN_COUNT_TO_MERGE),
            target_size_bytes: get(TARGET_MANIFEST_SIZE).unwrap_or(DEFAULT_TARGET_MANIFEST_SIZE),
        }
    }

    /// Groups of small data manifests to merge into one each; empty when no merge is due.
    ///
    /// Manifests are tiered by how many files they list, each tier spanning a factor of
    /// `min_count_to_merge`: a tier that holds that many manifests is merged, and the result
    /// lands a tier up. So a snapshot lists at most `min_count_to_merge` manifests per tier
    /// (a few tiers in all), and each entry is rewritten about log(files) times, not once every
    /// few commits as when every small manifest is merged again.
    fn plan(&self, manifests: &[ManifestFile]) -> Vec<Vec<ManifestFile>> {
        if !self.enabled {
            return vec![];
        }
        let mut tiers: BTreeMap<u32, Vec<&ManifestFile>> = BTreeMap::new();
        let small = manifests.iter().filter(|m| m.content == ManifestContentType::Data && m.manifest_length < self.target_size_bytes);
        for manifest in small {
            tiers.entry(self.tier(manifest)).or_default().push(manifest);
        }
        tiers.into_values().filter(|tier| tier.len() >= self.min_count_to_merge).flat_map(|tier| self.bins(tier)).collect()
    }

    /// `⌊log_min_count(files listed)⌋`.
    fn tier(&self, manifest: &ManifestFile) -> u32 {
        let files = u64::from(manifest.added_files_count.unwrap_or(0)) + u64::from(manifest.existing_files_count.unwrap_or(0));
        files.max(1).ilog(self.min_count_to_merge as u64)
    }

    /// `manifests` packed into bins of up to the target size; a bin of one is left as it is.
    fn bins(&self, mut manifests: Vec<&ManifestFile>) -> Vec<Vec<ManifestFile>> {
        manifests.sort_by_key(|m| m.manifest_length);
        let mut bins: Vec<Vec<ManifestFile>> = vec![vec![]];
        let mut bin_size = 0;
        for manifest in manifests {
            if bin_size + manifest.manifest_length > self.target_size_bytes && !bins.last().unwrap().is_empty() {
                bins.push(vec![]);
                bin_size = 0;
            }
            bin_size += manifest.manifest_length;
            bins.last_mut().unwrap().push(manifest.clone());
        }
        bins.retain(|bin| bin.len() > 1);
        bins
    }
}

/// The change that appends `files` to the table's current snapshot. With no files, the snapshot
/// only records `properties` (used to advance source positions past records that produced no rows).
pub async fn prepare_append(table: &FloeTable, files: Vec<DataFile>, properties: HashMap<String, String>) -> Result<TableChange> {
    let mut writer = SnapshotWriter::new(table)?;
    let existing = match table.current_snapshot() {
        Some(snapshot) => table.manifests(&snapshot.clone()).await?,
        None => vec![],
    };
    let mut manifests = merge_small_manifests(table, &mut writer, existing).await?;
    if !files.is_empty() {
        let added = files.into_iter().map(EntryWrite::Added).collect();
        manifests.extend(writer.write_manifests(added).await?);
    }
    let mut change = writer.finish(Operation::Append, manifests, properties).await?;
    let expired = snapshots_beyond_retention(table);
    if !expired.is_empty() {
        change.updates.push(TableUpdate::RemoveSnapshots { snapshot_ids: expired });
    }
    Ok(change)
}

/// Snapshots to drop so that, with the one being added, at most `floe.append.retain-snapshots`
/// remain. Their files stay until cleanup finds them unreferenced past its grace period.
fn snapshots_beyond_retention(table: &FloeTable) -> Vec<i64> {
    let retain =
        table.metadata().properties().get(RETAIN_SNAPSHOTS).and_then(|v| v.parse::<usize>().ok()).unwrap_or(DEFAULT_RETAIN_SNAPSHOTS);
    if retain == 0 || table.metadata().snapshots().len() < retain {
        return vec![];
    }
    snapshots_beyond_newest(table, retain - 1).into_iter().map(|(id, _)| id).collect()
}

/// Replaces each planned group of small manifests by one manifest of their live entries.
async fn merge_small_manifests(
    table: &FloeTable,
    writer: &mut SnapshotWriter<'_>,
    manifests: Vec<ManifestFile>,
) -> Result<Vec<ManifestFile>> {
    let groups = MergePolicy::from_properties(table.metadata().properties()).plan(&manifests);
    if groups.is_empty() {
        return Ok(manifests);
    }
    let merged_paths: std::collections::HashSet<String> = groups.iter().flatten().map(|m| m.manifest_path.clone()).collect();
    let mut result: Vec<ManifestFile> = manifests.into_iter().filter(|m| !merged_paths.contains(&m.manifest_path)).collect();
    for group in groups {
        let entries = table
            .manifest_entries(&group)
            .await?
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .filter(|e| e.status() != ManifestStatus::Deleted)
            .map(|e| EntryWrite::Existing(live_file(&e)))
            .collect::<Vec<_>>();
        if !entries.is_empty() {
            result.extend(writer.write_manifests(entries).await?);
        }
    }
    Ok(result)
}

/// Appends `files` to `ident`, reloading and retrying on conflict.
pub async fn append(
    catalog: &dyn Catalog,
    ident: &TableIdent,
    files: Vec<DataFile>,
    properties: HashMap<String, String>,
    policy: &RetryPolicy,
) -> Result<FloeTable> {
    let committed = commit_with_retry(catalog, ident, policy, |table| {
        let files = files.clone();
        let properties = properties.clone();
        async move { prepare_append(&table, files, properties).await.map(Some) }
    })
    .await?;
    Ok(committed.expect("append always produces a change"))
}
