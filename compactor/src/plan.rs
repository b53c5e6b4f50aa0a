//! What a compaction will do, decided from metadata before any data is read.
//!
//! - **Full**: rewrite every live data file into key-sorted files holding the latest record per
//!   key, and drop every delete file.
//! - **Incremental**: rewrite only the files appended since the last compaction (the delta)
//!   into new compacted files, and retire the compacted rows they supersede with position
//!   deletes. It costs in proportion to what changed. Chosen while the table has compaction
//!   output and the rows superseded so far, plus the delta, stay under
//!   [`PlanPolicy::full_rewrite_ratio`] of the compacted rows; past that (or past
//!   [`PlanPolicy::max_delete_files`]) a full rewrite restores a clean, sorted table.

use floe_catalog::layout::{key_columns, paths, TableFiles};
use floe_catalog::FloeTable;
use serde::Serialize;
use std::collections::HashSet;

use crate::error::{CompactError, Result};

pub use floe_catalog::layout::SUMMARY_COMPACTION;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CompactionKind {
    Full,
    Incremental,
}

impl CompactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CompactionKind::Full => "full",
            CompactionKind::Incremental => "incremental",
        }
    }
}

/// When a compaction rewrites everything rather than only what changed.
#[derive(Debug, Clone, Copy)]
pub struct PlanPolicy {
    /// Incremental while (superseded compacted rows + delta rows) ≤ this × compacted rows.
    /// 0 always rewrites fully.
    pub full_rewrite_ratio: f64,
    /// Incremental only while the table has fewer position-delete files than this (every
    /// reader loads them all).
    pub max_delete_files: usize,
}

impl Default for PlanPolicy {
    fn default() -> Self {
        Self { full_rewrite_ratio: 0.1, max_delete_files: 32 }
    }
}

/// The files a compaction reads and replaces.
#[derive(Debug, Clone)]
pub struct CompactionPlan {
    pub kind: CompactionKind,
    pub base_snapshot_id: i64,
    /// Every live file of the base snapshot, by role.
    pub files: TableFiles,
}

impl CompactionPlan {
    /// The data files the rewrite reads in full.
    pub fn input(&self) -> Vec<&floe_catalog::LiveFile> {
        match self.kind {
            CompactionKind::Full => self.files.data_files().collect(),
            CompactionKind::Incremental => self.files.delta.iter().collect(),
        }
    }

    /// The files the commit removes.
    pub fn remove(&self) -> HashSet<String> {
        match self.kind {
            CompactionKind::Full => paths(self.files.data_files().chain(&self.files.deletes)),
            CompactionKind::Incremental => paths(&self.files.delta),
        }
    }

    pub fn rows_in(&self) -> u64 {
        self.input().iter().map(|f| f.data_file.record_count()).sum()
    }

    pub fn bytes_in(&self) -> u64 {
        self.input().iter().map(|f| f.data_file.file_size_in_bytes()).sum()
    }

    /// The same base, rewritten in full.
    pub fn into_full(self) -> Self {
        Self { kind: CompactionKind::Full, ..self }
    }
}

/// Why a table is left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    Empty,
    /// Nothing was appended since the last compaction.
    NothingNew,
}

/// Plans a compaction of the table's current snapshot, or says why none is needed.
pub async fn plan(table: &FloeTable, policy: &PlanPolicy) -> Result<Result<CompactionPlan, Skip>> {
    if key_columns(table.current_schema()).is_none() {
        return Err(CompactError::NotKeyed(table.ident().to_string()));
    }
    let Some(snapshot) = table.current_snapshot() else { return Ok(Err(Skip::Empty)) };
    let files = TableFiles::of(table).await?;
    if files.data_files().next().is_none() {
        return Ok(Err(Skip::Empty));
    }
    if files.delta.is_empty() {
        return Ok(Err(Skip::NothingNew));
    }
    let kind = if incremental_fits(&files, policy) { CompactionKind::Incremental } else { CompactionKind::Full };
    Ok(Ok(CompactionPlan { kind, base_snapshot_id: snapshot.snapshot_id(), files }))
}

fn incremental_fits(files: &TableFiles, policy: &PlanPolicy) -> bool {
    let rows = |files: &[floe_catalog::LiveFile]| files.iter().map(|f| f.data_file.record_count()).sum::<u64>();
    let compacted = rows(&files.compacted);
    let churn = rows(&files.deletes) + rows(&files.delta);
    compacted > 0 && files.deletes.len() < policy.max_delete_files && (churn as f64) <= policy.full_rewrite_ratio * compacted as f64
}
