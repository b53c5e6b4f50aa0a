//! One destination table during an ingest: its buffered rows, the input positions they cover,
//! and the commit that makes both visible at once. A restart resumes from the positions in the
//! table's snapshot summaries, so nothing is lost or written twice.

use std::collections::HashMap;

use floe_catalog::append::prepare_append;
use floe_catalog::iceberg::spec::Schema;
use floe_catalog::iceberg::{TableCreation, TableIdent};
use floe_catalog::layout::{committed_max_op_ts, committed_positions, Positions, SUMMARY_MAX_OP_TS, SUMMARY_POSITIONS};
use floe_catalog::schema_update::{update_schema, SchemaChange};
use floe_catalog::writer::{table_arrow_schema, DataFileSink, DEFAULT_TARGET_FILE_SIZE};
use floe_catalog::{commit_with_retry, Catalog, CatalogError, FloeTable, RetryPolicy};
use serde_json::Value;
use tracing::{debug, info};

use crate::decode::infer::ColumnHints;
use crate::error::{Result, SinkError};

pub struct TableSink {
    pub ident: TableIdent,
    pub table: Option<FloeTable>,
    pub hints: ColumnHints,
    committed: Positions,
    pending_rows: Vec<Value>,
    /// Pending rows with unchanged TOASTed columns to fill: (row index, columns).
    partial: Vec<(usize, Vec<String>)>,
    /// Per input partition: (first, last) offset among pending records.
    pending: HashMap<String, (i64, i64)>,
    last_op_ts: i64,
    pub rows_committed: u64,
    pub commits: u64,
    pub schema_changes: u64,
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
            pending_rows: vec![],
            partial: vec![],
            pending: HashMap::new(),
            last_op_ts,
            rows_committed: 0,
            commits: 0,
            schema_changes: 0,
        })
    }

    pub fn schema(&self) -> Option<&Schema> {
        self.table.as_ref().map(|t| t.current_schema().as_ref())
    }

    /// Whether the record at `offset` of `position_key` is already committed here.
    pub fn is_committed(&self, position_key: &str, offset: i64) -> bool {
        self.committed.get(position_key).is_some_and(|done| offset <= *done)
    }

    /// The next `_op_ts`: now, but strictly after every earlier one, across restarts too.
    pub fn next_op_ts(&mut self) -> i64 {
        let now = chrono::Utc::now().timestamp_micros();
        self.last_op_ts = now.max(self.last_op_ts + 1);
        self.last_op_ts
    }

    /// Records that the input up to `offset` has been handled by this table.
    pub fn note_position(&mut self, position_key: &str, offset: i64) {
        let entry = self.pending.entry(position_key.to_string()).or_insert((offset, offset));
        entry.1 = entry.1.max(offset);
    }

    pub fn push(&mut self, row: Value, position_key: &str, offset: i64) {
        self.pending_rows.push(row);
        self.note_position(position_key, offset);
    }

    /// Marks `columns` of the row pushed last as unchanged TOASTed values, filled at flush.
    pub fn mark_unavailable(&mut self, columns: Vec<String>) {
        if !columns.is_empty() {
            self.partial.push((self.pending_rows.len() - 1, columns));
        }
    }

    pub fn pending_rows(&self) -> usize {
        self.pending_rows.len()
    }

    /// Forgets what is buffered, uncommitted: the next run reads those records again.
    pub fn discard_pending(&mut self) {
        self.pending_rows.clear();
        self.partial.clear();
        self.pending.clear();
    }

    pub async fn create(&mut self, catalog: &dyn Catalog, schema: Schema) -> Result<()> {
        if !catalog.namespace_exists(self.ident.namespace()).await? {
            match catalog.create_namespace(self.ident.namespace()).await {
                Ok(()) | Err(CatalogError::NamespaceAlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let creation = TableCreation::builder().name(self.ident.name().to_string()).schema(schema).build();
        self.table = Some(catalog.create_table(&self.ident, creation).await?);
        Ok(())
    }

    pub async fn evolve(&mut self, catalog: &dyn Catalog, changes: &[SchemaChange]) -> Result<()> {
        let table = update_schema(catalog, &self.ident, changes, &RetryPolicy::default()).await?;
        info!(table = %self.ident, ?changes, "evolved schema");
        self.table = Some(table);
        self.schema_changes += 1;
        Ok(())
    }

    /// Writes pending rows and commits them with the positions they cover.
    pub async fn flush(&mut self, catalog: &dyn Catalog) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let Some(table) = self.table.clone() else {
            if !self.pending_rows.is_empty() {
                return Err(SinkError::Internal(format!("{} has rows but was never created", self.ident)));
            }
            // Only tombstones (or records that all went to dead letters) for a table that does
            // not exist: there is no table to record their positions in, and re-reading them
            // changes nothing.
            self.pending.clear();
            return Ok(());
        };
        if !self.partial.is_empty() {
            crate::unavailable::fill(&table, &mut self.pending_rows, &self.partial).await?;
        }
        let files = self.write_files(&table).await?;
        let mut positions = self.committed.clone();
        for (key, (_, last)) in &self.pending {
            let done = positions.entry(key.clone()).or_insert(*last);
            *done = (*done).max(*last);
        }
        let properties = HashMap::from([
            (SUMMARY_POSITIONS.to_string(), serde_json::to_string(&positions).expect("positions serialize")),
            (SUMMARY_MAX_OP_TS.to_string(), self.last_op_ts.to_string()),
        ]);
        let pending = &self.pending;
        let committed = commit_with_retry(catalog, &self.ident, &RetryPolicy::default(), |current| {
            let (files, properties) = (files.clone(), properties.clone());
            async move {
                // Re-check on every attempt: another writer must not have committed these records.
                let theirs = committed_positions(&current);
                if let Some((key, _)) = pending.iter().find(|(k, (first, _))| theirs.get(*k).is_some_and(|d| d >= first)) {
                    return Err(CatalogError::final_conflict(
                        current.ident(),
                        format!("positions of {key} were committed by another writer"),
                    ));
                }
                prepare_append(&current, files, properties).await.map(Some)
            }
        })
        .await?;
        debug!(table = %self.ident, rows = self.pending_rows.len(), "committed");
        self.rows_committed += self.pending_rows.len() as u64;
        self.commits += 1;
        self.table = committed;
        self.committed = positions;
        self.pending_rows.clear();
        self.partial.clear();
        self.pending.clear();
        Ok(())
    }

    async fn write_files(&self, table: &FloeTable) -> Result<Vec<floe_catalog::iceberg::spec::DataFile>> {
        if self.pending_rows.is_empty() {
            return Ok(vec![]);
        }
        let schema = table_arrow_schema(table)?;
        let mut decoder = arrow_json::ReaderBuilder::new(schema).with_batch_size(8192).build_decoder()?;
        let mut sink = DataFileSink::new(table, None, DEFAULT_TARGET_FILE_SIZE).await?;
        for chunk in self.pending_rows.chunks(8192) {
            decoder.serialize(chunk)?;
            if let Some(batch) = decoder.flush()? {
                sink.write(batch).await?;
            }
        }
        Ok(sink.finish().await?)
    }
}
