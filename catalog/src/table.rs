//! A loaded table: identifier, metadata, the location that metadata was read from, and the
//! FileIO to read its files. Cheap to clone; immutable. A commit returns a new `FloeTable`.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use futures::stream::{self, StreamExt, TryStreamExt};
use iceberg::io::FileIO;
use iceberg::spec::{
    DataFile, ManifestEntryRef, ManifestFile, ManifestList, ManifestStatus, SchemaRef, SnapshotRef, TableMetadata, TableMetadataRef,
};
use iceberg::table::Table;
use iceberg::TableIdent;
use moka::sync::Cache;

use crate::error::Result;

/// How many manifests are read at once when a snapshot's file list is needed.
const MANIFEST_READ_CONCURRENCY: usize = 16;

/// Manifests and manifest lists never change once written, and every one has a name of its
/// own: their parsed contents are kept by location, so that one compaction's plan, commit and
/// cleanup read each once (on object storage, each read is a request). Bounded by the number
/// of entries and manifests held.
static MANIFESTS: LazyLock<Cache<String, Arc<Vec<ManifestEntryRef>>>> = LazyLock::new(|| {
    Cache::builder()
        .weigher(|_, entries: &Arc<Vec<ManifestEntryRef>>| entries.len().try_into().unwrap_or(u32::MAX))
        .max_capacity(1 << 20)
        .build()
});
static MANIFEST_LISTS: LazyLock<Cache<String, Arc<Vec<ManifestFile>>>> = LazyLock::new(|| {
    Cache::builder().weigher(|_, list: &Arc<Vec<ManifestFile>>| list.len().try_into().unwrap_or(u32::MAX)).max_capacity(1 << 18).build()
});

#[derive(Debug, Clone)]
pub struct FloeTable {
    ident: TableIdent,
    metadata: TableMetadataRef,
    metadata_location: String,
    file_io: FileIO,
    /// `metadata`'s current schema, looked up once: writers ask for it on every row.
    current_schema: SchemaRef,
}

/// A live data file of a snapshot, with the sequence numbers a rewrite must preserve.
#[derive(Debug, Clone)]
pub struct LiveFile {
    pub data_file: DataFile,
    pub snapshot_id: i64,
    pub sequence_number: i64,
    pub file_sequence_number: Option<i64>,
}

impl LiveFile {
    pub fn path(&self) -> &str {
        self.data_file.file_path()
    }

    /// A data file, as opposed to a delete file.
    pub fn is_data(&self) -> bool {
        self.data_file.content_type() == iceberg::spec::DataContentType::Data
    }
}

impl FloeTable {
    pub fn new(ident: TableIdent, metadata: TableMetadata, metadata_location: String, file_io: FileIO) -> Self {
        let current_schema = metadata.current_schema().clone();
        Self { ident, metadata: Arc::new(metadata), metadata_location, file_io, current_schema }
    }

    pub fn ident(&self) -> &TableIdent {
        &self.ident
    }

    pub fn metadata(&self) -> &TableMetadata {
        &self.metadata
    }

    pub fn metadata_location(&self) -> &str {
        &self.metadata_location
    }

    pub fn file_io(&self) -> &FileIO {
        &self.file_io
    }

    pub fn current_schema(&self) -> &SchemaRef {
        &self.current_schema
    }

    pub fn current_snapshot(&self) -> Option<&SnapshotRef> {
        self.metadata.current_snapshot()
    }

    pub fn current_snapshot_id(&self) -> Option<i64> {
        self.metadata.current_snapshot_id()
    }

    /// Summary properties of the current snapshot (empty before the first commit).
    pub fn current_summary(&self) -> HashMap<String, String> {
        self.current_snapshot().map(|s| s.summary().additional_properties.clone()).unwrap_or_default()
    }

    /// A read-only iceberg-rust `Table`, for scans and readers. Must be called inside a tokio runtime.
    pub fn iceberg_table(&self) -> Result<Table> {
        Ok(Table::builder()
            .identifier(self.ident.clone())
            .metadata(self.metadata.clone())
            .metadata_location(self.metadata_location.clone())
            .file_io(self.file_io.clone())
            .readonly(true)
            .runtime(iceberg::Runtime::try_current()?)
            .build()?)
    }

    /// The manifests listed by `snapshot`'s manifest list.
    pub async fn manifests(&self, snapshot: &SnapshotRef) -> Result<Vec<ManifestFile>> {
        if let Some(list) = MANIFEST_LISTS.get(snapshot.manifest_list()) {
            return Ok(list.as_ref().clone());
        }
        let bytes = self.file_io.new_input(snapshot.manifest_list())?.read().await?;
        let list = ManifestList::parse_with_version(&bytes, self.metadata.format_version())?;
        let list: Vec<ManifestFile> = list.consume_entries().into_iter().collect();
        MANIFEST_LISTS.insert(snapshot.manifest_list().to_string(), Arc::new(list.clone()));
        Ok(list)
    }

    /// Entries of the given manifests, loaded concurrently, in manifest order.
    pub async fn manifest_entries(&self, manifests: &[ManifestFile]) -> Result<Vec<(ManifestFile, Vec<ManifestEntryRef>)>> {
        let file_io = &self.file_io;
        stream::iter(manifests.iter().cloned())
            .map(|manifest| async move {
                if let Some(entries) = MANIFESTS.get(&manifest.manifest_path) {
                    return Ok((manifest, entries.as_ref().clone()));
                }
                let entries = manifest.load_manifest(file_io).await?.entries().to_vec();
                MANIFESTS.insert(manifest.manifest_path.clone(), Arc::new(entries.clone()));
                Ok::<_, crate::CatalogError>((manifest, entries))
            })
            .buffered(MANIFEST_READ_CONCURRENCY)
            .try_collect()
            .await
    }

    /// Every file (data and delete) live in the current snapshot.
    pub async fn live_files(&self) -> Result<Vec<LiveFile>> {
        match self.current_snapshot() {
            Some(snapshot) => self.live_files_of(&snapshot.clone()).await,
            None => Ok(vec![]),
        }
    }

    /// Every file (data and delete) live in `snapshot`.
    pub async fn live_files_of(&self, snapshot: &SnapshotRef) -> Result<Vec<LiveFile>> {
        let manifests = self.manifests(snapshot).await?;
        let loaded = self.manifest_entries(&manifests).await?;
        Ok(loaded
            .into_iter()
            .flat_map(|(_, entries)| entries)
            .filter(|e| e.status() != ManifestStatus::Deleted)
            .map(|e| live_file(&e))
            .collect())
    }
}

pub(crate) fn live_file(entry: &ManifestEntryRef) -> LiveFile {
    LiveFile {
        data_file: entry.data_file().clone(),
        snapshot_id: entry.snapshot_id().unwrap_or_default(),
        sequence_number: entry.sequence_number().unwrap_or_default(),
        file_sequence_number: entry.file_sequence_number,
    }
}
