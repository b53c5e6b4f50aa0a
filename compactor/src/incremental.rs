//! The incremental rewrite: only the files appended since the last compaction (the delta) are
//! read. Their latest records become new compacted files; the compacted rows they supersede
//! are retired with one position-delete file. Finding those rows reads just the key columns
//! of the compacted files, so the cost follows the change, not the table.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use floe_catalog::deletes::{read_position_deletes, write_position_deletes, PositionDeletes};
use floe_catalog::layout::{paths, TableFiles};
use floe_catalog::read::read_columns;
use floe_catalog::{FloeTable, LiveFile};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::{CompactError, Result};
use crate::execute::{RewriteOptions, RewriteOutput};
use crate::gather::IndexedInput;
use crate::keys::KeyColumns;
use crate::latest::LatestIndex;

/// How many compacted files have their keys read at once.
const KEY_READ_CONCURRENCY: usize = 4;

/// Compacts `files.delta` onto `files.compacted`. `None` when a full rewrite should do it
/// instead: the delta holds a truncate (which retires every compacted row), or its index
/// does not fit in memory.
pub async fn rewrite_incremental(table: &FloeTable, files: &TableFiles, options: &RewriteOptions) -> Result<Option<RewriteOutput>> {
    let indexed = match IndexedInput::build(table, &paths(&files.delta), options.memory_limit).await {
        Err(CompactError::OverBudget(_)) => return Ok(None),
        indexed => indexed?,
    };
    if indexed.index.latest_truncate().is_some() {
        return Ok(None);
    }
    let superseded = superseded_rows(table, files, &indexed.keys, &indexed.index).await?;
    let (mut add, rows_out) = match indexed.write_latest(table, options).await {
        Err(CompactError::OverBudget(_)) => return Ok(None),
        written => written?,
    };
    let rows_superseded = superseded.values().map(|p| p.len() as u64).sum();
    let require_live = superseded.keys().cloned().collect();
    add.extend(write_position_deletes(table, &superseded).await?);
    Ok(Some(RewriteOutput { add, rows_out, rows_superseded, require_live, spilled: false }))
}

/// Positions of compacted rows whose key the delta touches, leaving out rows already deleted.
/// Each compacted file is searched on its own task.
async fn superseded_rows(table: &FloeTable, files: &TableFiles, keys: &Arc<KeyColumns>, changed: &LatestIndex) -> Result<PositionDeletes> {
    let deleted = read_position_deletes(table, &files.deletes).await?;
    let changed = Arc::new(ChangedKeys { sorted: changed.sorted_keys() });
    let found: Vec<(String, Vec<i64>)> = stream::iter(&files.compacted)
        .map(|file| {
            let already = deleted.get(file.path()).cloned().unwrap_or_default();
            let (table, file, keys, changed) = (table.clone(), file.clone(), keys.clone(), changed.clone());
            tokio::spawn(async move { matching_positions(&table, &file, &keys, &changed, &already).await })
        })
        .buffer_unordered(KEY_READ_CONCURRENCY)
        .map(|joined| joined.map_err(|e| CompactError::Invalid(format!("key search failed: {e}")))?)
        .try_collect()
        .await?;
    Ok(found.into_iter().filter(|(_, p)| !p.is_empty()).map(|(path, p)| (path, p.into_iter().collect())).collect())
}

/// The delta's keys, encoded and sorted, to walk alongside a compacted file's sorted keys.
struct ChangedKeys {
    sorted: Vec<Vec<u8>>,
}

impl ChangedKeys {
    fn contains(&self, key: &[u8]) -> bool {
        self.sorted.binary_search_by(|k| k.as_slice().cmp(key)).is_ok()
    }
}

async fn matching_positions(
    table: &FloeTable,
    file: &LiveFile,
    keys: &KeyColumns,
    changed: &ChangedKeys,
    already_deleted: &HashSet<i64>,
) -> Result<(String, Vec<i64>)> {
    // Raw file order: position deletes count every row of the file, deleted or not.
    let batches: Vec<RecordBatch> = read_columns(table, file.path(), file.data_file.file_size_in_bytes(), &keys.field_ids).await?;
    let mut positions = vec![];
    let mut offset = 0i64;
    // Compacted files are sorted by key, so one forward walk over the changed keys finds the
    // matches; should a file turn out not to be sorted, the rest is looked up key by key.
    let (mut next, mut sorted, mut last_key): (usize, bool, Option<Vec<u8>>) = (0, true, None);
    for batch in batches {
        let rows = keys.encode(batch.columns())?;
        for (i, key) in rows.iter().enumerate() {
            let key = key.as_ref();
            sorted &= if i > 0 { rows.row(i - 1).as_ref() <= key } else { last_key.as_deref().is_none_or(|p| p <= key) };
            let matched = if sorted {
                while next < changed.sorted.len() && changed.sorted[next].as_slice() < key {
                    next += 1;
                }
                changed.sorted.get(next).is_some_and(|k| k == key)
            } else {
                changed.contains(key)
            };
            let position = offset + i as i64;
            if matched && !already_deleted.contains(&position) {
                positions.push(position);
            }
        }
        last_key = rows.num_rows().checked_sub(1).map(|i| rows.row(i).as_ref().to_vec());
        offset += batch.num_rows() as i64;
    }
    Ok((file.path().to_string(), positions))
}
