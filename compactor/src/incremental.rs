//! The incremental rewrite: only the files appended since the last compaction (the delta) are
//! read. Their latest records become new compacted files; the compacted rows they supersede
//! are retired with one position-delete file. Finding those rows reads just the key columns
//! of the compacted files, so the cost follows the change, not the table.

use std::collections::HashSet;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use floe_catalog::deletes::{read_position_deletes, write_position_deletes, PositionDeletes};
use floe_catalog::layout::{key_columns, latest_records_sql, paths, quote, TableFiles};
use floe_catalog::read::read_columns;
use floe_catalog::writer::table_arrow_schema;
use floe_catalog::{FloeTable, LiveFile};
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::error::Result;
use crate::execute::{latest_truncate, register_scan, session, write_sorted, RewriteOptions, RewriteOutput};

/// How many compacted files have their keys read at once.
const KEY_READ_CONCURRENCY: usize = 4;

/// Compacts `files.delta` onto `files.compacted`. `None` when the delta holds a truncate:
/// that retires every compacted row, which a full rewrite does more cheaply.
pub async fn rewrite_incremental(table: &FloeTable, files: &TableFiles, options: &RewriteOptions) -> Result<Option<RewriteOutput>> {
    let ctx = session(options.memory_limit)?;
    register_scan(&ctx, table, "delta", paths(&files.delta))?;
    if latest_truncate(&ctx, "delta").await?.is_some() {
        return Ok(None);
    }
    let keys = KeySet::new(table)?;
    let changed = keys.collect(&ctx).await?;
    let superseded = superseded_rows(table, files, &keys, &changed).await?;

    let latest = latest_records_sql("\"delta\"", table.current_schema(), options.keep_tombstones_after, Some(None))
        .unwrap_or_default();
    let (mut add, rows_out) = write_sorted(table, &ctx, &latest, options.target_file_size).await?;
    let rows_superseded = superseded.values().map(|p| p.len() as u64).sum();
    let require_live = superseded.keys().cloned().collect();
    add.extend(write_position_deletes(table, &superseded).await?);
    Ok(Some(RewriteOutput { add, rows_out, rows_superseded, require_live }))
}

/// The table's key columns and a byte encoding of key values that compares equal exactly when
/// the keys do, whatever file (and file schema) they were read from.
struct KeySet {
    names: Vec<String>,
    field_ids: Vec<i32>,
    types: Vec<DataType>,
    converter: RowConverter,
}

impl KeySet {
    fn new(table: &FloeTable) -> Result<Self> {
        let schema = table.current_schema();
        let names = key_columns(schema).unwrap_or_default();
        let arrow_schema = table_arrow_schema(table)?;
        let mut field_ids = vec![];
        let mut types = vec![];
        for name in &names {
            field_ids.push(schema.field_by_name(name).expect("key column exists").id);
            types.push(arrow_schema.field_with_name(name).map_err(DataFusionError::from)?.data_type().clone());
        }
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect()).map_err(DataFusionError::from)?;
        Ok(Self { names, field_ids, types, converter })
    }

    /// Encoded keys of the rows of `columns` (key columns, in key order).
    fn encode(&self, columns: &[ArrayRef]) -> Result<Rows> {
        let cast: Vec<ArrayRef> = columns.iter().zip(&self.types).map(|(c, t)| cast(c, t)).collect::<Result<_, _>>().map_err(DataFusionError::from)?;
        Ok(self.converter.convert_columns(&cast).map_err(DataFusionError::from)?)
    }

    /// Every key the delta touches, whatever its latest operation.
    async fn collect(&self, ctx: &SessionContext) -> Result<HashSet<Vec<u8>>> {
        let columns = self.names.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
        let batches = ctx.sql(&format!("SELECT DISTINCT {columns} FROM \"delta\"")).await?.collect().await?;
        let mut keys = HashSet::new();
        for batch in batches {
            keys.extend(self.encode(batch.columns())?.iter().map(|row| row.as_ref().to_vec()));
        }
        Ok(keys)
    }
}

/// Positions of compacted rows whose key is in `changed`, leaving out rows already deleted.
async fn superseded_rows(table: &FloeTable, files: &TableFiles, keys: &KeySet, changed: &HashSet<Vec<u8>>) -> Result<PositionDeletes> {
    let deleted = read_position_deletes(table, &files.deletes).await?;
    let no_deletes = HashSet::new();
    let found: Vec<(String, Vec<i64>)> = stream::iter(&files.compacted)
        .map(|file| {
            let already = deleted.get(file.path()).unwrap_or(&no_deletes);
            matching_positions(table, file, keys, changed, already)
        })
        .buffer_unordered(KEY_READ_CONCURRENCY)
        .try_collect()
        .await?;
    Ok(found.into_iter().filter(|(_, p)| !p.is_empty()).map(|(path, p)| (path, p.into_iter().collect())).collect())
}

async fn matching_positions(
    table: &FloeTable,
    file: &LiveFile,
    keys: &KeySet,
    changed: &HashSet<Vec<u8>>,
    already_deleted: &HashSet<i64>,
) -> Result<(String, Vec<i64>)> {
    let batches: Vec<RecordBatch> = read_columns(table, file.path(), &keys.field_ids).await?;
    let mut positions = vec![];
    let mut offset = 0i64;
    for batch in batches {
        for (i, key) in keys.encode(batch.columns())?.iter().enumerate() {
            let position = offset + i as i64;
            if changed.contains(key.as_ref()) && !already_deleted.contains(&position) {
                positions.push(position);
            }
        }
        offset += batch.num_rows() as i64;
    }
    Ok((file.path().to_string(), positions))
}

