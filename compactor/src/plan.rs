//! What a compaction would do, decided before any data is read.

use floe_catalog::iceberg::spec::Operation;
use floe_catalog::layout::key_columns;
use floe_catalog::{FloeTable, LiveFile};

use crate::error::{CompactError, Result};

pub use floe_catalog::layout::SUMMARY_COMPACTION;

/// The files a compaction reads and replaces.
#[derive(Debug, Clone)]
pub struct CompactionPlan {
    pub base_snapshot_id: i64,
    pub files: Vec<LiveFile>,
    pub rows_in: u64,
    pub bytes_in: u64,
}

/// Why a table is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Empty,
    /// Nothing was appended since the last compaction.
    NothingNew,
}

/// Plans a full compaction of the table's current snapshot, or says why none is needed.
pub async fn plan(table: &FloeTable) -> Result<Result<CompactionPlan, Skip>> {
    if key_columns(table.current_schema()).is_none() {
        return Err(CompactError::NotKeyed(table.ident().to_string()));
    }
    let Some(snapshot) = table.current_snapshot() else { return Ok(Err(Skip::Empty)) };
    let files = table.live_files().await?;
    if files.is_empty() {
        return Ok(Err(Skip::Empty));
    }
    // Appends that landed while the last compaction ran are live beside its output even when
    // its replace is the newest snapshot, so "nothing new" means every live file is its output.
    let summary = snapshot.summary();
    let is_compaction = summary.operation == Operation::Replace && summary.additional_properties.contains_key(SUMMARY_COMPACTION);
    if is_compaction && files.iter().all(|f| f.snapshot_id == snapshot.snapshot_id()) {
        return Ok(Err(Skip::NothingNew));
    }
    Ok(Ok(CompactionPlan {
        base_snapshot_id: snapshot.snapshot_id(),
        rows_in: files.iter().map(|f| f.data_file.record_count()).sum(),
        bytes_in: files.iter().map(|f| f.data_file.file_size_in_bytes()).sum(),
        files,
    }))
}
