//! The ingest loop: source → decode → schema sync → buffer → write → commit.
//!
//! Records are routed by topic to a [`TableSink`]. Every `batch_rows` buffered rows, and at the
//! end, each table writes its rows and commits them with the input positions they cover, then
//! the dead-letter table commits. A record whose position a table has committed is skipped, so
//! re-running the same input changes nothing, and a crash at any point is repaired by re-running.
//!
//! Tables fail alone. When creating, evolving or committing one table fails, that table stops
//! taking records for the rest of the run (its uncommitted records are re-read by the next run,
//! since its positions were not committed) and every other table goes on.

use std::collections::{BTreeMap, HashMap};

use floe_catalog::layout::{OP, OP_TS, SOURCE_TS, SRC_OFFSET, SRC_PARTITION};
use floe_catalog::Catalog;
use serde_json::{Map, Value};
use tracing::error;

use crate::config::SinkConfig;
use crate::dead_letter::{dead_letter_row, dead_letter_schema};
use crate::decode::{decode_debezium_json, ChangeEvent, Kind, Op, SchemaCache};
use crate::diagnostics::{DeadLetterCounts, DeadLetterLog};
use crate::error::{Result, SinkError};
use crate::schema_sync::{new_table_schema, plan_schema_sync, SyncPlan};
use crate::source::SourceRecord;
use crate::table_sink::TableSink;
use crate::unavailable::Placeholder;

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestReport {
    pub events_read: u64,
    pub already_committed: u64,
    pub tombstones: u64,
    pub dead_letters: u64,
    /// Dead letters by (table, reason class).
    pub dead_letter_reasons: DeadLetterCounts,
    /// Records not taken because their table had failed earlier in the run.
    pub skipped_failed_table: u64,
    /// Tables that failed, with the error. Their other records were left for the next run.
    pub failed_tables: BTreeMap<String, String>,
    /// Rows committed per table (`schema.table`).
    pub rows: BTreeMap<String, u64>,
    pub commits: u64,
    pub schema_changes: u64,
}

impl IngestReport {
    /// Adds what `sink` committed for `table` during the run.
    fn add_table(&mut self, table: &str, sink: &TableSink) {
        self.rows.insert(table.to_string(), sink.rows_committed);
        self.commits += sink.commits;
        self.schema_changes += sink.schema_changes;
    }
}

pub struct Ingestor<'a> {
    catalog: &'a dyn Catalog,
    config: SinkConfig,
    tables: HashMap<String, TableSink>,
    topics: HashMap<String, String>,
    dead_letters: Option<TableSink>,
    report: IngestReport,
    buffered: usize,
    schemas: SchemaCache,
    dead_letter_log: DeadLetterLog,
    failed: BTreeMap<String, String>,
    placeholder: Placeholder,
}

impl<'a> Ingestor<'a> {
    pub fn new(catalog: &'a dyn Catalog, config: SinkConfig) -> Self {
        Self {
            catalog,
            tables: HashMap::new(),
            topics: HashMap::new(),
            dead_letters: None,
            report: IngestReport::default(),
            buffered: 0,
            schemas: SchemaCache::default(),
            dead_letter_log: DeadLetterLog::default(),
            failed: BTreeMap::new(),
            placeholder: Placeholder::new(&config.sink.unavailable_value_placeholder),
            config,
        }
    }

    /// Ingests every record of `source`, calling `progress` after each, then flushes.
    pub async fn run(
        mut self,
        source: impl Iterator<Item = std::io::Result<SourceRecord>>,
        progress: &dyn Fn(u64),
    ) -> Result<IngestReport> {
        for record in source {
            self.ingest(record?).await?;
            progress(self.report.events_read);
            if self.buffered >= self.config.sink.batch_rows {
                self.flush().await?;
            }
        }
        self.flush().await?;
        Ok(self.finish())
    }

    pub async fn ingest(&mut self, record: SourceRecord) -> Result<()> {
        self.report.events_read += 1;
        let message = match &record.message {
            Ok(message) => message.clone(),
            Err(reason) => return self.dead_letter(&record, None, reason).await,
        };
        let table_name = match self.table_for(&message.topic).await {
            Ok(name) => name,
            Err((name, e)) => return self.fail_table(&name, e),
        };
        if self.failed.contains_key(&table_name) {
            self.report.skipped_failed_table += 1;
            return Ok(());
        }
        let position = record.position_key();
        let sink = self.tables.get_mut(&table_name).expect("table_for opened it");
        if sink.is_committed(&position, record.offset) {
            self.report.already_committed += 1;
            return Ok(());
        }
        let decoded = decode_debezium_json(message.key.as_deref(), message.value.as_deref(), sink.schema(), &sink.hints, &mut self.schemas);
        match decoded {
            Err(e) => self.dead_letter(&record, Some(table_name), &e.to_string()).await,
            Ok(None) => {
                self.report.tombstones += 1;
                sink.note_position(&position, record.offset);
                Ok(())
            }
            Ok(Some(event)) => match self.prepare_table(&table_name, &event).await {
                Err(e) => self.fail_table(&table_name, e),
                Ok(Err(reason)) => self.dead_letter(&record, Some(table_name), &reason).await,
                Ok(Ok(())) => {
                    let sink = self.tables.get_mut(&table_name).expect("opened");
                    let unavailable = self.placeholder.columns(&event);
                    let row = build_row(sink, event, &record);
                    sink.push(row, &position, record.offset);
                    sink.mark_unavailable(unavailable);
                    self.buffered += 1;
                    Ok(())
                }
            },
        }
    }

    /// Takes `table` out of this run after `error`: what it buffered is dropped uncommitted (the
    /// next run reads it again) and its later records are skipped. Other tables go on.
    fn fail_table(&mut self, table: &str, error: SinkError) -> Result<()> {
        error!(table, %error, "table failed; its records are left for the next run, other tables go on");
        if let Some(mut sink) = self.tables.remove(table) {
            self.buffered = self.buffered.saturating_sub(sink.pending_rows());
            sink.discard_pending();
            self.report.add_table(table, &sink);
        }
        self.failed.insert(table.to_string(), error.to_string());
        Ok(())
    }

    /// Opens (once) the sink for `topic`'s table, returning the table's name, or the name and
    /// why it could not be opened.
    async fn table_for(&mut self, topic: &str) -> std::result::Result<String, (String, SinkError)> {
        if let Some(name) = self.topics.get(topic) {
            return Ok(name.clone());
        }
        let route = self.config.route(topic);
        let name = route.ident.to_string();
        if !self.tables.contains_key(&name) && !self.failed.contains_key(&name) {
            let sink = TableSink::open(self.catalog, route.ident, route.hints).await.map_err(|e| (name.clone(), e))?;
            self.tables.insert(name.clone(), sink);
        }
        self.topics.insert(topic.to_string(), name.clone());
        Ok(name)
    }

    /// Creates or evolves the table so `event` fits. `Ok(Err(reason))`: the event cannot be
    /// taken (incompatible change) and goes to the dead-letter table.
    async fn prepare_table(&mut self, name: &str, event: &ChangeEvent) -> Result<Result<(), String>> {
        let sink = self.tables.get_mut(name).expect("opened");
        let Some(schema) = sink.schema() else {
            if event.op == Op::Truncate {
                return Ok(Err("truncate of a table floe has not created yet".into()));
            }
            return match new_table_schema(event) {
                Ok(schema) => sink.create(self.catalog, schema).await.map(Ok),
                Err(reason) => Ok(Err(reason)),
            };
        };
        match plan_schema_sync(schema, event) {
            SyncPlan::Unchanged => Ok(Ok(())),
            SyncPlan::Evolve(changes) => {
                sink.evolve(self.catalog, &changes).await?;
                Ok(Ok(()))
            }
            SyncPlan::Incompatible(reason) => Ok(Err(format!("incompatible schema change: {reason}"))),
        }
    }

    async fn dead_letter(&mut self, record: &SourceRecord, table: Option<String>, reason: &str) -> Result<()> {
        if self.dead_letters.is_none() {
            let ident = self.config.dead_letter_table();
            let mut sink = TableSink::open(self.catalog, ident, Default::default()).await?;
            if sink.table.is_none() {
                sink.create(self.catalog, dead_letter_schema()).await?;
            }
            self.dead_letters = Some(sink);
        }
        let sink = self.dead_letters.as_mut().expect("just opened");
        let position = record.position_key();
        if sink.is_committed(&position, record.offset) {
            self.report.already_committed += 1;
            return Ok(());
        }
        self.dead_letter_log.record(table.as_deref(), reason);
        sink.push(dead_letter_row(record, table, reason), &position, record.offset);
        self.report.dead_letters += 1;
        self.buffered += 1;
        Ok(())
    }

    /// Writes and commits everything buffered: data tables first, dead letters last. A table
    /// whose commit fails is taken out of the run; the others still commit.
    pub async fn flush(&mut self) -> Result<()> {
        let mut failures = Vec::new();
        for (name, sink) in self.tables.iter_mut() {
            if let Err(e) = sink.flush(self.catalog).await {
                failures.push((name.clone(), e));
            }
        }
        for (name, e) in failures {
            self.fail_table(&name, e)?;
        }
        if let Some(sink) = self.dead_letters.as_mut() {
            sink.flush(self.catalog).await?;
        }
        self.buffered = 0;
        Ok(())
    }

    fn finish(mut self) -> IngestReport {
        for (name, sink) in &self.tables {
            self.report.add_table(name, sink);
        }
        if let Some(sink) = &self.dead_letters {
            self.report.commits += sink.commits;
        }
        self.report.dead_letter_reasons = self.dead_letter_log.finish();
        self.report.failed_tables = self.failed;
        self.report
    }
}

/// The table row of `event`: source columns plus floe's metadata columns.
fn build_row(sink: &mut TableSink, event: ChangeEvent, record: &SourceRecord) -> Value {
    let mut row: Map<String, Value> = event.row;
    if event.op == Op::Truncate {
        // Key columns are required; a truncate has no key, so it carries zero values. Its rank
        // makes every older row of every key dead, whatever key it carries.
        let schema = sink.schema().expect("table exists").clone();
        for name in floe_catalog::layout::identifier_columns(&schema) {
            let field = schema.field_by_name(&name).expect("key column exists");
            row.insert(name, zero_value(&Kind::from_iceberg(&field.field_type)));
        }
    }
    row.insert(OP.into(), Value::from(event.op.code()));
    row.insert(OP_TS.into(), Value::from(sink.next_op_ts()));
    row.insert(SOURCE_TS.into(), event.source_ts_micros.map(Value::from).unwrap_or(Value::Null));
    row.insert(SRC_PARTITION.into(), Value::from(record.partition));
    row.insert(SRC_OFFSET.into(), Value::from(record.offset));
    Value::Object(row)
}

fn zero_value(kind: &Kind) -> Value {
    match kind {
        Kind::Boolean => Value::Bool(false),
        Kind::String | Kind::Bytes | Kind::VariableDecimal => Value::from(""),
        Kind::Decimal { .. } => Value::from("0"),
        _ => Value::from(0),
    }
}
