//! One destination table during an ingest: the rows of its next batch (in Arrow builders typed
//! by its schema), the input positions they cover, and the commit that makes both visible at
//! once. A restart resumes from the positions in the table's snapshot summaries, so nothing is
//! lost or written twice.
//!
//! A flush is three steps so that the ingest loop can overlap them with decoding:
//! [`TableSink::take_batch`] (on the loop), [`write_batch`] (anywhere: Parquet encoding, no
//! catalog), then [`TableSink::commit`] (on the loop, through the catalog's commit layer).

use std::collections::HashMap;
use std::sync::Arc;

use floe_catalog::append::prepare_append;
use floe_catalog::iceberg::spec::{DataFile, Schema};
use floe_catalog::iceberg::{TableCreation, TableIdent};
use floe_catalog::layout::{committed_max_op_ts, committed_positions, Positions, SUMMARY_MAX_OP_TS, SUMMARY_POSITIONS};
use floe_catalog::schema_update::{update_schema, SchemaChange};
use floe_catalog::writer::{table_arrow_schema, DataFileSink, DEFAULT_TARGET_FILE_SIZE};
use floe_catalog::{commit_with_retry, Catalog, CatalogError, FloeTable, RetryPolicy};
use tracing::{debug, info};

use crate::columnar::RowBuilder;
use crate::decode::infer::ColumnHints;
use crate::decode::{Cell, ChangeEvent, Columns, DecodeError, KeyNames};
use crate::error::{Result, SinkError};

pub struct TableSink {
    pub ident: TableIdent,
    pub table: Option<FloeTable>,
    pub hints: ColumnHints,
    committed: Positions,
    /// The next batch's rows, typed by the schema with id `builder_schema`.
    rows: Option<RowBuilder>,
    builder_schema: i32,
    /// Rows of the next batch with unchanged TOASTed columns to fill: (row, column indices).
    partial: Vec<(usize, Vec<usize>)>,
    /// Per input partition: (first, last) offset among the next batch's records.
    pending: hashbrown::HashMap<String, (i64, i64)>,
    last_op_ts: i64,
    /// The last column and key lists found to fit the schema with this id (schema sync is
    /// skipped for records that share them).
    synced: Option<Synced>,
    pub rows_committed: u64,
    pub commits: u64,
    pub schema_changes: u64,
}

/// Columns and key found to fit the schema with `schema_id`.
struct Synced {
    columns: Columns,
    key: KeyNames,
    schema_id: i32,
}

/// A table's batch on its way to a commit.
pub struct Batch {
    table: FloeTable,
    rows: arrow::record_batch::RecordBatch,
    partial: Vec<(usize, Vec<usize>)>,
    pending: hashbrown::HashMap<String, (i64, i64)>,
    last_op_ts: i64,
}

/// A batch whose data files are written, ready to commit.
pub struct WrittenBatch {
    batch: Batch,
    files: Vec<DataFile>,
}

impl TableSink {
    /// Opens the sink for `ident`, reading what was committed before if the table exists.
    pub async fn open(catalog: &dyn Catalog, ident: TableIdent, hints: ColumnHints) -> Result<Self> {
        let table = match catalog.load_table(&ident).await {
            Ok(table) => Some(table),
            Err(CatalogError::TableNotFound(_)) => None,
            Err(e) => return Err(e.into()),
        };
        let committed = table.as_ref().map(committed_positions).unwrap_or_default();
        let last_op_ts = table.as_ref().and_then(committed_max_op_ts).unwrap_or(0);
        Ok(Self {
            ident,
            table,
            hints,
            committed,
            rows: None,
            builder_schema: -1,
            partial: vec![],
            pending: hashbrown::HashMap::new(),
            last_op_ts,
            synced: None,
            rows_committed: 0,
            commits: 0,
            schema_changes: 0,
        })
    }

    pub fn schema(&self) -> Option<&Schema> {
        self.table.as_ref().map(|t| t.current_schema().as_ref())
    }

    /// The current schema, shared: decoders may keep it to recognise it.
    pub fn schema_ref(&self) -> Option<&floe_catalog::iceberg::spec::SchemaRef> {
        self.table.as_ref().map(|t| t.current_schema())
    }

    /// Whether `event`'s columns and key are the ones last found to fit the current schema.
    pub fn synced_with(&self, event: &ChangeEvent) -> bool {
        let current = self.schema().map(Schema::schema_id);
        self.synced
            .as_ref()
            .is_some_and(|s| Arc::ptr_eq(&s.columns, &event.columns) && Arc::ptr_eq(&s.key, &event.key) && Some(s.schema_id) == current)
    }

    /// Remembers that `event`'s columns and key fit the current schema.
    pub fn remember_synced(&mut self, event: &ChangeEvent) {
        if let Some(id) = self.schema().map(Schema::schema_id) {
            self.synced = Some(Synced { columns: event.columns.clone(), key: event.key.clone(), schema_id: id });
        }
    }

    /// Whether the record at `offset` of `position_key` is already committed here.
    pub fn is_committed(&self, position_key: &str, offset: i64) -> bool {
        self.committed.get(position_key).is_some_and(|done| offset <= *done)
    }

    /// What this table has committed, per position key.
    pub fn committed(&self) -> &Positions {
        &self.committed
    }

    /// Takes in what other writers committed since this sink last read the table: their
    /// positions, and a `_op_ts` above theirs for the rows that follow.
    pub async fn catch_up(&mut self, catalog: &dyn Catalog) -> Result<()> {
        if self.table.is_none() {
            return Ok(());
        }
        let table = catalog.load_table(&self.ident).await?;
        self.take_in(&table);
        Ok(())
    }

    /// Takes in what `table` holds, whoever committed it: its positions count as committed,
    /// and the next `_op_ts` ranks above its latest.
    fn take_in(&mut self, table: &FloeTable) {
        self.last_op_ts = self.last_op_ts.max(committed_max_op_ts(table).unwrap_or(0));
        for (key, offset) in committed_positions(table) {
            let done = self.committed.entry(key).or_insert(offset);
            *done = (*done).max(offset);
        }
    }

    /// The next `_op_ts`: `now`, but strictly after every earlier one, across restarts too.
    pub fn next_op_ts(&mut self, now: i64) -> i64 {
        self.last_op_ts = now.max(self.last_op_ts + 1);
        self.last_op_ts
    }

    /// Records that the input up to `offset` has been handled by this table.
    pub fn note_position(&mut self, position_key: &str, offset: i64) {
        match self.pending.get_mut(position_key) {
            Some(range) => range.1 = range.1.max(offset),
            None => {
                self.pending.insert(position_key.to_string(), (offset, offset));
            }
        }
    }

    /// The builder for the next batch's rows, typed by the table's current schema.
    pub fn rows(&mut self) -> Result<&mut RowBuilder> {
        let table = self.table.as_ref().ok_or_else(|| SinkError::Internal(format!("{} has rows but was never created", self.ident)))?;
        let schema_id = table.current_schema().schema_id();
        if self.rows.is_none() || self.builder_schema != schema_id {
            if self.rows.as_ref().is_some_and(|r| r.rows() > 0) {
                return Err(SinkError::Internal(format!("{}: schema changed under unflushed rows", self.ident)));
            }
            self.rows = Some(RowBuilder::new(table_arrow_schema(table)?));
            self.builder_schema = schema_id;
        }
        Ok(self.rows.as_mut().expect("just made"))
    }

    /// Appends one row (`cells` by column index of [`Self::rows`], taken) read from `bytes` input bytes
    /// at `offset` of `position_key`; `unavailable` lists its columns to fill from the key's
    /// previous row. A row that does not fit the table is refused, and nothing is recorded.
    pub fn push(
        &mut self,
        cells: &mut Vec<Cell>,
        bytes: usize,
        unavailable: Vec<usize>,
        position_key: &str,
        offset: i64,
    ) -> Result<std::result::Result<(), DecodeError>> {
        let rows = self.rows()?;
        if let Err(reason) = rows.append(cells, bytes) {
            return Ok(Err(reason));
        }
        let row = rows.rows() - 1;
        if !unavailable.is_empty() {
            self.partial.push((row, unavailable));
        }
        self.note_position(position_key, offset);
        Ok(Ok(()))
    }

    pub fn pending_rows(&self) -> usize {
        self.rows.as_ref().map_or(0, RowBuilder::rows)
    }

    pub fn pending_bytes(&self) -> usize {
        self.rows.as_ref().map_or(0, RowBuilder::bytes)
    }

    /// Forgets what is buffered, uncommitted: those records are read again. Returns the rows
    /// and input bytes dropped.
    pub fn discard_pending(&mut self) -> (usize, usize) {
        let dropped = (self.pending_rows(), self.pending_bytes());
        self.rows = None;
        self.partial.clear();
        self.pending.clear();
        dropped
    }

    pub async fn create(&mut self, catalog: &dyn Catalog, schema: Schema) -> Result<()> {
        if !catalog.namespace_exists(self.ident.namespace()).await? {
            match catalog.create_namespace(self.ident.namespace()).await {
                Ok(()) | Err(CatalogError::NamespaceAlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let creation = TableCreation::builder().name(self.ident.name().to_string()).schema(schema).build();
        match catalog.create_table(&self.ident, creation).await {
            Ok(table) => self.table = Some(table),
            // Another sink (of the same group) created it first: take it as it is, with what
            // that sink committed; the caller syncs the schema against it.
            Err(CatalogError::TableAlreadyExists(_)) => {
                let table = catalog.load_table(&self.ident).await?;
                self.take_in(&table);
                self.table = Some(table);
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    pub async fn evolve(&mut self, catalog: &dyn Catalog, changes: &[SchemaChange]) -> Result<()> {
        let table = update_schema(catalog, &self.ident, changes, &RetryPolicy::default()).await?;
        info!(table = %self.ident, ?changes, "evolved schema");
        self.table = Some(table);
        self.schema_changes += 1;
        Ok(())
    }

    /// The next batch, taken out of the sink; `None` when nothing is pending.
    pub fn take_batch(&mut self) -> Result<Option<Batch>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        let Some(table) = self.table.clone() else {
            // Only tombstones (or records that all went to dead letters) for a table that does
            // not exist: there is no table to record their positions in, and re-reading them
            // changes nothing.
            self.pending.clear();
            return Ok(None);
        };
        let rows = self.rows()?.finish()?;
        let (partial, pending) = (std::mem::take(&mut self.partial), std::mem::take(&mut self.pending));
        Ok(Some(Batch { table, rows, partial, pending, last_op_ts: self.last_op_ts }))
    }

    /// Commits `written` with the positions it covers. Fenced: if another writer committed any
    /// of these positions, nothing is committed and the error says so.
    pub async fn commit(&mut self, catalog: &dyn Catalog, written: WrittenBatch) -> Result<()> {
        let WrittenBatch { batch, files } = written;
        let started = std::time::Instant::now();
        let pending = &batch.pending;
        let committed = commit_with_retry(catalog, &self.ident, &RetryPolicy::default(), |current| {
            let files = files.clone();
            // Built on every attempt from the table as it now is: other writers (sinks of one
            // group sharing a table's partitions) keep their positions and their latest `_op_ts`.
            let theirs = committed_positions(&current);
            let positions = merged_positions(&theirs, pending);
            let max_op_ts = committed_max_op_ts(&current).unwrap_or(0).max(batch.last_op_ts);
            async move {
                // Fenced: another writer must not have committed these records.
                if let Some((key, _)) = pending.iter().find(|(k, (first, _))| theirs.get(*k).is_some_and(|d| d >= first)) {
                    return Err(CatalogError::final_conflict(
                        current.ident(),
                        format!("positions of {key} were committed by another writer"),
                    ));
                }
                let properties = HashMap::from([
                    (SUMMARY_POSITIONS.to_string(), serde_json::to_string(&positions).expect("positions serialize")),
                    (SUMMARY_MAX_OP_TS.to_string(), max_op_ts.to_string()),
                ]);
                prepare_append(&current, files, properties).await.map(Some)
            }
        })
        .await?;
        let rows = batch.rows.num_rows() as u64;
        debug!(table = %self.ident, rows, "committed");
        let max_op_ts = committed.as_ref().and_then(committed_max_op_ts).unwrap_or(batch.last_op_ts);
        crate::metrics::committed(&self.ident.to_string(), rows, started.elapsed(), max_op_ts);
        self.rows_committed += rows;
        self.commits += 1;
        // A schema change made while this batch was written is newer than the commit's base.
        if let Some(table) = committed {
            // Its positions, ours and other writers', and later rows above its latest `_op_ts`.
            self.take_in(&table);
            let evolved = self.table.as_ref().is_some_and(|t| t.current_schema().schema_id() != table.current_schema().schema_id());
            if !evolved {
                self.table = Some(table);
            }
        }
        Ok(())
    }
}

/// `theirs` with each pending range's last offset, where it is further.
fn merged_positions(theirs: &Positions, pending: &hashbrown::HashMap<String, (i64, i64)>) -> Positions {
    let mut positions = theirs.clone();
    for (key, (_, last)) in pending {
        let done = positions.entry(key.clone()).or_insert(*last);
        *done = (*done).max(*last);
    }
    positions
}

/// Fills the batch's unchanged TOASTed values and writes its data files. Needs no catalog, so it
/// runs beside the ingest loop.
pub async fn write_batch(mut batch: Batch) -> Result<WrittenBatch> {
    if !batch.partial.is_empty() {
        batch.rows = crate::unavailable::fill(&batch.table, batch.rows, &batch.partial).await?;
    }
    if batch.rows.num_rows() == 0 {
        return Ok(WrittenBatch { batch, files: vec![] });
    }
    let mut sink = DataFileSink::new(&batch.table, None, DEFAULT_TARGET_FILE_SIZE).await?;
    sink.write(batch.rows.clone()).await?;
    let files = sink.finish().await?;
    Ok(WrittenBatch { batch, files })
}
