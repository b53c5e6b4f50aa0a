//! Shared machinery of every snapshot producer: manifest writers bound to one new snapshot,
//! the manifest list, the snapshot summary with correct totals, and the resulting
//! requirements and updates. Append and replace differ only in which manifests they carry over
//! and which entries they write; the rest lives here, once.

use std::collections::HashMap;

use iceberg::spec::{
    DataContentType, DataFile, DataFileFormat, FormatVersion, ManifestContentType, ManifestFile, ManifestListWriter, ManifestWriter,
    ManifestWriterBuilder, Operation, Snapshot, SnapshotReference, SnapshotRetention, SnapshotSummaryCollector, Summary, MAIN_BRANCH,
};
use iceberg::{TableRequirement, TableUpdate};
use uuid::Uuid;

use crate::commit::TableChange;
use crate::error::{CatalogError, Result};
use crate::table::{FloeTable, LiveFile};

/// Summary totals as (total, added, removed): each is carried from the parent and moved by
/// what this snapshot adds and removes.
const TOTAL_PAIRS: [(&str, &str, &str); 6] = [
    ("total-data-files", "added-data-files", "deleted-data-files"),
    ("total-records", "added-records", "deleted-records"),
    ("total-files-size", "added-files-size", "removed-files-size"),
    ("total-delete-files", "added-delete-files", "removed-delete-files"),
    ("total-position-deletes", "added-position-deletes", "removed-position-deletes"),
    ("total-equality-deletes", "added-equality-deletes", "removed-equality-deletes"),
];

/// How one entry is written into a manifest of the new snapshot.
#[derive(Debug, Clone)]
pub(crate) enum EntryWrite {
    /// A file this snapshot adds.
    Added(DataFile),
    /// A live file carried over unchanged (its sequence numbers preserved).
    Existing(LiveFile),
    /// A file this snapshot removes.
    Deleted(LiveFile),
}

impl EntryWrite {
    fn data_file(&self) -> &DataFile {
        match self {
            EntryWrite::Added(file) => file,
            EntryWrite::Existing(live) | EntryWrite::Deleted(live) => &live.data_file,
        }
    }
}

/// Builds one new snapshot of `table`.
pub(crate) struct SnapshotWriter<'a> {
    table: &'a FloeTable,
    snapshot_id: i64,
    sequence_number: i64,
    commit_uuid: Uuid,
    manifests_written: u64,
    summary: SnapshotSummaryCollector,
}

impl<'a> SnapshotWriter<'a> {
    pub(crate) fn new(table: &'a FloeTable) -> Result<Self> {
        if table.metadata().format_version() != FormatVersion::V2 {
            return Err(CatalogError::Invalid(format!("{}: floe writes format-version 2 tables only", table.ident())));
        }
        Ok(Self {
            table,
            snapshot_id: unique_snapshot_id(table),
            sequence_number: table.metadata().next_sequence_number(),
            commit_uuid: Uuid::now_v7(),
            manifests_written: 0,
            summary: SnapshotSummaryCollector::default(),
        })
    }

    fn new_manifest_writer(&mut self, content: ManifestContentType) -> Result<ManifestWriter> {
        let metadata = self.table.metadata();
        let path = format!("{}/metadata/{}-m{}.{}", metadata.location(), self.commit_uuid, self.manifests_written, DataFileFormat::Avro);
        self.manifests_written += 1;
        let output = self.table.file_io().new_output(path)?;
        let builder = ManifestWriterBuilder::new(
            output,
            Some(self.snapshot_id),
            metadata.current_schema().clone(),
            metadata.default_partition_spec().as_ref().clone(),
        );
        Ok(match content {
            ManifestContentType::Data => builder.build_v2_data(),
            ManifestContentType::Deletes => builder.build_v2_deletes(),
        })
    }

    /// Writes `entries` into manifests, one for data files and one for delete files (Iceberg
    /// keeps the two apart), and counts added and removed files in the summary.
    pub(crate) async fn write_manifests(&mut self, entries: Vec<EntryWrite>) -> Result<Vec<ManifestFile>> {
        let (data, deletes): (Vec<_>, Vec<_>) = entries.into_iter().partition(|e| e.data_file().content_type() == DataContentType::Data);
        let mut manifests = vec![];
        for (content, entries) in [(ManifestContentType::Data, data), (ManifestContentType::Deletes, deletes)] {
            if !entries.is_empty() {
                manifests.push(self.write_manifest(content, entries).await?);
            }
        }
        Ok(manifests)
    }

    async fn write_manifest(&mut self, content: ManifestContentType, entries: Vec<EntryWrite>) -> Result<ManifestFile> {
        let mut writer = self.new_manifest_writer(content)?;
        let schema = self.table.metadata().current_schema().clone();
        let spec = self.table.metadata().default_partition_spec().clone();
        for entry in entries {
            match entry {
                EntryWrite::Added(file) => {
                    self.summary.add_file(&file, schema.clone(), spec.clone());
                    // A negative sequence number means "inherit from the manifest list".
                    writer.add_file(file, -1)?;
                }
                EntryWrite::Existing(live) => {
                    writer.add_existing_file(live.data_file, live.snapshot_id, live.sequence_number, live.file_sequence_number)?
                }
                EntryWrite::Deleted(live) => {
                    self.summary.remove_file(&live.data_file, schema.clone(), spec.clone());
                    writer.add_delete_file(live.data_file, live.sequence_number, live.file_sequence_number)?
                }
            }
        }
        Ok(writer.write_manifest_file().await?)
    }

    /// Writes the manifest list and returns the change that adds the snapshot and moves `main`
    /// to it, required to apply only if `main` still points where it did when we started.
    pub(crate) async fn finish(
        self,
        operation: Operation,
        manifests: Vec<ManifestFile>,
        properties: HashMap<String, String>,
    ) -> Result<TableChange> {
        let metadata = self.table.metadata();
        let parent = metadata.current_snapshot_id();
        let list_path =
            format!("{}/metadata/snap-{}-0-{}.{}", metadata.location(), self.snapshot_id, self.commit_uuid, DataFileFormat::Avro);
        let output = self.table.file_io().new_output(&list_path)?.writer().await?;
        let mut list = ManifestListWriter::v2(output, self.snapshot_id, parent, self.sequence_number);
        list.add_manifests(manifests.into_iter())?;
        list.close().await?;

        let summary = self.summary(operation, properties);
        let snapshot = Snapshot::builder()
            .with_manifest_list(list_path)
            .with_snapshot_id(self.snapshot_id)
            .with_parent_snapshot_id(parent)
            .with_sequence_number(self.sequence_number)
            .with_summary(summary)
            .with_schema_id(metadata.current_schema_id())
            .with_timestamp_ms(chrono::Utc::now().timestamp_millis())
            .build();
        Ok(TableChange::new(
            vec![
                TableRequirement::UuidMatch { uuid: metadata.uuid() },
                TableRequirement::RefSnapshotIdMatch { r#ref: MAIN_BRANCH.to_string(), snapshot_id: parent },
            ],
            vec![
                TableUpdate::AddSnapshot { snapshot },
                TableUpdate::SetSnapshotRef {
                    ref_name: MAIN_BRANCH.to_string(),
                    reference: SnapshotReference::new(self.snapshot_id, SnapshotRetention::branch(None, None, None)),
                },
            ],
        ))
    }

    /// Caller properties first; computed metrics and totals win on collision, so a caller can
    /// never corrupt the counts other engines rely on.
    fn summary(&self, operation: Operation, properties: HashMap<String, String>) -> Summary {
        let mut props = properties;
        let metrics = self.summary.build();
        let count = |key: &str| metrics.get(key).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        let previous = self.table.current_snapshot().map(|s| s.summary().additional_properties.clone());
        let previous_total = |key: &str| previous.as_ref().and_then(|p| p.get(key)).and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
        for (total, added, removed) in TOTAL_PAIRS {
            let value = previous_total(total) + count(added) - count(removed);
            props.insert(total.to_string(), value.max(0).to_string());
        }
        props.extend(metrics);
        Summary { operation, additional_properties: props }
    }
}

/// A positive snapshot id not used by any snapshot of the table.
fn unique_snapshot_id(table: &FloeTable) -> i64 {
    loop {
        let (hi, lo) = Uuid::new_v4().as_u64_pair();
        let id = ((hi ^ lo) & (i64::MAX as u64)) as i64;
        if id != 0 && table.metadata().snapshot_by_id(id).is_none() {
            return id;
        }
    }
}
