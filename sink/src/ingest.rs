//! The ingest loop: source → decode → schema sync → columnar batch → write → commit.
//!
//! Records are routed by topic to a [`TableSink`]. A flush happens when the buffered rows reach
//! `batch_rows` or `batch_bytes`, when `commit_interval` has passed (so a quiet stream is still
//! committed), and at the end of input or on shutdown. Each flush takes every table's batch and
//! writes the Parquet files on another task while the loop decodes the next batch; the commits
//! follow on the loop, data tables first, then the dead-letter table. A record whose position a
//! table has handled is skipped, so re-running the same input changes nothing, and a crash at
//! any point is repaired by re-running.
//!
//! Tables fail alone. When creating, evolving or committing one table fails, that table stops
//! taking records for the rest of the run (its uncommitted records are re-read by the next run,
//! since its positions were not committed) and every other table goes on. An operator (or the
//! Kafka sink) can also pause a table through [`IngestControl`].
//!
//! A source change a table cannot follow (a decimal's scale, a narrowed type, a changed key)
//! pauses that table by default (`on_incompatible`): the pause is kept in the table's properties,
//! so every run skips its records, leaving them in the source, until an operator resumes it.

use std::collections::{BTreeMap, BTreeSet};

// foldhash: these maps are read once or more per record.
use hashbrown::HashMap;
use std::sync::Arc;

use floe_catalog::layout::identifier_columns;
use floe_catalog::pause::{pause_of, pause_table, Pause};
use floe_catalog::Catalog;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::config::{OnIncompatible, SinkConfig};
use crate::dead_letter::{dead_letter_row, dead_letter_schema};
use crate::decode::parallel::{snapshot, Ahead, DecodeAhead, TableSnapshot, IN_FLIGHT};
use crate::decode::{cell, Cell, ChangeEvent, DebeziumJson, DecodeError, Decoded, Decoder, Kind, Op, TableState};
use crate::diagnostics::{DeadLetterCounts, DeadLetterLog};
use crate::error::{Result, SinkError};
use crate::schema_sync::{new_table_schema, plan_schema_sync, SyncPlan};
use crate::source::{Positions, Source, SourceRecord};
use crate::table_sink::{write_batch, Batch, TableSink, WrittenBatch};
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
    /// Records not taken because their table was paused (they are read again on resume).
    pub skipped_paused_table: u64,
    /// Tables that failed, with the error. Their other records were left for the next run.
    pub failed_tables: BTreeMap<String, String>,
    /// Tables paused (in this run or before), with the reason. Their records were left in the
    /// source until an operator resumes them.
    pub paused_tables: BTreeMap<String, String>,
    /// Rows committed per table (`schema.table`).
    pub rows: BTreeMap<String, u64>,
    pub commits: u64,
    pub schema_changes: u64,
}

impl IngestReport {
    /// Adds what `sink` committed for `table` during the run.
    fn add_table(&mut self, table: &str, sink: &TableSink) {
        *self.rows.entry(table.to_string()).or_default() += sink.rows_committed;
        self.commits += sink.commits;
        self.schema_changes += sink.schema_changes;
    }
}

/// Requests to a running ingest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Stop taking records for this table (`schema.table`); what it buffered is dropped.
    Pause(String),
    /// Take them again, from the table's committed positions.
    Resume(String),
    /// Commit everything read and stop.
    Shutdown,
}

/// Sends [`Control`] requests to the ingest it came from.
#[derive(Debug, Clone)]
pub struct IngestControl(mpsc::UnboundedSender<Control>);

impl IngestControl {
    /// Sends `request`; false when the ingest has ended.
    pub fn send(&self, request: Control) -> bool {
        self.0.send(request).is_ok()
    }
}

/// A paused table: the partitions paused for it at the source, and whether it skipped records
/// of any other partition (one that feeds other tables too, or one it had not seen before).
#[derive(Debug)]
struct Paused {
    own: Vec<String>,
    skipped_elsewhere: bool,
}

/// Where a batch of a flush round goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Table(String),
    DeadLetters,
}

type Round = Vec<(Target, Result<WrittenBatch>)>;

/// Whether a table can take a change event.
enum Preparation {
    /// It can: created or evolved as needed.
    Ready,
    /// It cannot, and the record is a dead letter with this reason.
    DeadLetter(String),
    /// The source changed in a way the table cannot follow; the table's `on_incompatible`
    /// decides.
    Incompatible(String),
}

pub struct Ingestor<'a> {
    catalog: &'a dyn Catalog,
    config: SinkConfig,
    decoder: Box<dyn Decoder>,
    /// Forks of `decoder`, decoding the next batches beside the loop.
    decoding: DecodeAhead,
    /// When the buffered rows are flushed if nothing else flushes them first.
    next_flush: Instant,
    /// This machine's time in microseconds, the base of `_op_ts`.
    clock: fn() -> i64,
    /// The clock as read for the batch being ingested: read once a batch (and again after
    /// waiting on a commit), since reading it per row cost 2% of the loop; `_op_ts` says when
    /// the sink produced the row, and a batch is produced at once.
    batch_clock: Option<i64>,
    /// The cells of the row being built, kept for the next row's.
    cells: Vec<Cell>,
    tables: HashMap<String, TableSink>,
    topics: HashMap<String, Arc<str>>,
    dead_letters: Option<TableSink>,
    report: IngestReport,
    buffered_rows: usize,
    buffered_bytes: usize,
    dead_letter_log: DeadLetterLog,
    failed: BTreeMap<String, String>,
    placeholder: Placeholder,
    /// The flush round whose files are being written.
    in_flight: Option<JoinHandle<Round>>,
    /// Partitions each data table has taken records from in this run.
    partitions: HashMap<String, BTreeSet<String>>,
    /// Paused tables, with the partitions paused at the source for them.
    paused: HashMap<String, Paused>,
    control: Option<mpsc::UnboundedReceiver<Control>>,
    /// Whether commits happened that the source has not been told of.
    unannounced: bool,
    /// The position key of the last record's stream and partition, made once per partition.
    last_position: Option<(Arc<str>, i32, Arc<str>)>,
    /// The last topic routed, and its table. Records of a topic share its name where the
    /// source can (NDJSON lines), and are then routed by identity instead of by a lookup;
    /// `topics` only grows, so a route never changes.
    last_route: Option<(Arc<str>, Arc<str>)>,
    /// The last table and position key entered in `partitions` (which only grows).
    last_partition: Option<(Arc<str>, Arc<str>)>,
}

impl<'a> Ingestor<'a> {
    pub fn new(catalog: &'a dyn Catalog, config: SinkConfig) -> Self {
        let decoder: Box<dyn Decoder> = Box::new(DebeziumJson::default());
        Self {
            catalog,
            decoding: DecodeAhead::new(decoder.as_ref()),
            next_flush: Instant::now(),
            decoder,
            clock: || chrono::Utc::now().timestamp_micros(),
            batch_clock: None,
            cells: vec![],
            tables: HashMap::new(),
            topics: HashMap::new(),
            dead_letters: None,
            report: IngestReport::default(),
            buffered_rows: 0,
            buffered_bytes: 0,
            dead_letter_log: DeadLetterLog::default(),
            failed: BTreeMap::new(),
            placeholder: Placeholder::new(&config.sink.unavailable_value_placeholder),
            in_flight: None,
            partitions: HashMap::new(),
            paused: HashMap::new(),
            control: None,
            unannounced: false,
            last_position: None,
            last_route: None,
            last_partition: None,
            config,
        }
    }

    /// Decodes with `decoder` instead of Debezium JSON.
    pub fn with_decoder(mut self, decoder: Box<dyn Decoder>) -> Self {
        self.decoding = DecodeAhead::new(decoder.as_ref());
        self.decoder = decoder;
        self
    }

    /// Takes `_op_ts` from `clock` (microseconds) instead of this machine's time: for tests of
    /// sinks whose clocks disagree.
    pub fn with_clock(mut self, clock: fn() -> i64) -> Self {
        self.clock = clock;
        self
    }

    /// A handle to pause, resume or stop this ingest while it runs.
    pub fn control(&mut self) -> IngestControl {
        let (sender, receiver) = mpsc::unbounded_channel();
        self.control = Some(receiver);
        IngestControl(sender)
    }

    /// Ingests `source` until its input ends or a shutdown is requested, calling `progress`
    /// with the records read so far, then commits everything read.
    pub async fn run(mut self, mut source: impl Source, progress: &dyn Fn(u64)) -> Result<IngestReport> {
        self.seek_known(&mut source).await?;
        let mut control = self.control.take();
        self.next_flush = Instant::now() + self.config.sink.commit_interval;
        loop {
            tokio::select! {
                // Requests first, so a pause takes effect before the records that follow it.
                biased;
                request = next_request(&mut control) => {
                    // What was read before the request is taken before it, as if decoded already.
                    self.ingest_decoding(0, progress).await?;
                    match request {
                        Control::Shutdown => {
                            info!("shutdown requested: committing what was read");
                            for record in source.drain() {
                                self.ingest(record).await?;
                            }
                            break;
                        }
                        Control::Pause(table) => self.pause(&table, &mut source).await?,
                        Control::Resume(table) => self.resume(&table, &mut source).await?,
                    }
                }
                round = wait(&mut self.in_flight) => self.commit_round(round?).await?,
                _ = tokio::time::sleep_until(self.next_flush) => {
                    self.ingest_decoding(0, progress).await?;
                    self.flush_on_time().await?;
                }
                batch = source.next_batch() => {
                    let Some(records) = batch? else { break };
                    if source.reassigned() {
                        self.ingest_decoding(0, progress).await?;
                        self.catch_up_with_other_writers().await?;
                    }
                    crate::metrics::events_read(records.len());
                    self.start_decoding(records);
                    // The batch before is taken while this one decodes.
                    self.ingest_decoding(IN_FLIGHT - 1, progress).await?;
                    if source.wants_commit() {
                        self.ingest_decoding(0, progress).await?;
                        self.flush().await?;
                        self.settle().await?;
                        source.committed(&self.committed_positions()).await;
                    }
                }
                // Nothing more to read for now: the batches decoded ahead are taken at once.
                () = self.decoding.oldest_decoded() => self.ingest_decoding(0, progress).await?,
            }
            if std::mem::take(&mut self.unannounced) {
                source.committed(&self.committed_positions()).await;
            }
        }
        self.ingest_decoding(0, progress).await?;
        self.flush().await?;
        self.settle().await?;
        source.committed(&self.committed_positions()).await;
        Ok(self.finish())
    }

    /// After a rebalance, other sinks may have committed to these tables since they were
    /// opened: the next `_op_ts` must rank above theirs, whatever this machine's clock says, and
    /// their positions are known to be taken.
    async fn catch_up_with_other_writers(&mut self) -> Result<()> {
        for sink in self.tables.values_mut() {
            sink.catch_up(self.catalog).await?;
        }
        Ok(())
    }

    /// Opens the tables of the topics the source names up front and seeks it to their positions.
    async fn seek_known(&mut self, source: &mut impl Source) -> Result<()> {
        for topic in source.topics().unwrap_or_default() {
            if let Err((name, e)) = self.table_for(&topic).await {
                self.fail_table(&name, e);
            }
        }
        source.seek(&self.committed_positions()).await?;
        Ok(())
    }

    /// Positions committed by the data tables; where several hold one key, the lowest.
    fn committed_positions(&self) -> Positions {
        let mut positions = Positions::new();
        for sink in self.tables.values() {
            for (key, offset) in sink.committed() {
                let entry = positions.entry(key.clone()).or_insert(*offset);
                *entry = (*entry).min(*offset);
            }
        }
        positions
    }

    /// Starts decoding `records` beside the loop (see [`crate::decode::parallel`]). Records the
    /// loop will skip (of failed, paused or committed tables) are left out, and so are those of
    /// topics whose table is not open yet: the loop opens it and decodes them.
    fn start_decoding(&mut self, records: Vec<SourceRecord>) {
        let mut jobs = Vec::with_capacity(records.len());
        let mut tables: Vec<(Arc<str>, TableSnapshot)> = vec![];
        for (index, record) in records.iter().enumerate() {
            let Ok(message) = &record.message else { continue };
            let Some(table) = self.known_route(&message.topic) else { continue };
            if self.failed.contains_key(&*table) || self.paused.contains_key(&*table) {
                continue;
            }
            let position = self.position_of(record);
            let Some(sink) = self.tables.get(&*table).filter(|sink| !sink.is_committed(&position, record.offset)) else { continue };
            let snapshot = match tables.iter().position(|(name, _)| *name == table) {
                Some(i) => i,
                None => {
                    tables.push((table, snapshot(sink.schema_ref(), &sink.hints)));
                    tables.len() - 1
                }
            };
            jobs.push((index, snapshot));
        }
        let tables = tables.into_iter().map(|(_, snapshot)| snapshot).collect();
        self.decoding.start(records, jobs, tables);
    }

    /// Ingests the batches decoding beside the loop, oldest first, until `left` are in flight;
    /// flushes whenever the buffered rows or bytes reach the batch size.
    async fn ingest_decoding(&mut self, left: usize, progress: &dyn Fn(u64)) -> Result<()> {
        while self.decoding.in_flight() > left {
            let Some(batch) = self.decoding.take().await else { break };
            self.batch_clock = Some((self.clock)());
            // Records are read in place: moving each out of the batch cost a copy of it.
            for (record, ahead) in batch.records.iter().zip(batch.ahead) {
                self.ingest_with(record, ahead).await?;
                if self.buffered_rows >= self.config.sink.batch_rows || self.buffered_bytes >= self.config.sink.batch_bytes {
                    self.flush_on_time().await?;
                }
            }
            progress(self.report.events_read);
        }
        self.batch_clock = None;
        Ok(())
    }

    /// Flushes, and sets the next time-based flush one `commit_interval` from now.
    async fn flush_on_time(&mut self) -> Result<()> {
        self.flush().await?;
        self.next_flush = Instant::now() + self.config.sink.commit_interval;
        Ok(())
    }

    pub async fn ingest(&mut self, record: SourceRecord) -> Result<()> {
        self.batch_clock = None;
        self.ingest_with(&record, None).await
    }

    /// Ingests `record`, taking its decoding from `ahead` when it is still valid.
    async fn ingest_with(&mut self, record: &SourceRecord, ahead: Option<Ahead>) -> Result<()> {
        self.report.events_read += 1;
        let message = match &record.message {
            Ok(message) => message,
            Err(reason) => return self.dead_letter(record, None, reason).await,
        };
        let table_name = match self.route(&message.topic).await {
            Ok(name) => name,
            Err((name, e)) => {
                self.fail_table(&name, e);
                return Ok(());
            }
        };
        if self.failed.contains_key(&*table_name) {
            self.report.skipped_failed_table += 1;
            return Ok(());
        }
        let position = self.position_of(record);
        if let Some(paused) = self.paused.get_mut(&*table_name) {
            self.report.skipped_paused_table += 1;
            if !paused.own.iter().any(|p| **p == *position) {
                paused.skipped_elsewhere = true;
            }
            return Ok(());
        }
        self.note_partition(&table_name, &position);
        let sink = self.tables.get_mut(&*table_name).expect("table_for opened it");
        if sink.is_committed(&position, record.offset) {
            self.report.already_committed += 1;
            return Ok(());
        }
        let state = TableState { schema: sink.schema_ref(), hints: &sink.hints };
        let decoded = match ahead.and_then(|ahead| ahead.valid_for(state)) {
            Some(decoded) => decoded,
            None => self.decoder.decode(message, state),
        };
        match decoded {
            Decoded::DeadLetter(e) => self.dead_letter(record, Some(table_name.to_string()), &e.to_string()).await,
            Decoded::Tombstone => {
                self.report.tombstones += 1;
                sink.note_position(&position, record.offset);
                Ok(())
            }
            // The table fits the columns it took last: nothing to prepare, and no lookup.
            Decoded::Change(event) if sink.synced_with(&event) => self.push_ready(&table_name, event, record, &position).await,
            Decoded::Change(event) => match self.prepare_table(&table_name, &event).await {
                Err(e) => {
                    self.fail_table(&table_name, e);
                    Ok(())
                }
                Ok(Preparation::DeadLetter(reason)) => self.dead_letter(record, Some(table_name.to_string()), &reason).await,
                Ok(Preparation::Incompatible(reason)) => match self.config.route(&message.topic).on_incompatible {
                    OnIncompatible::DeadLetter => self.dead_letter(record, Some(table_name.to_string()), &reason).await,
                    OnIncompatible::Pause => self.pause_for_incompatible_change(&table_name, &reason).await,
                },
                Ok(Preparation::Ready) => self.push_ready(&table_name, event, record, &position).await,
            },
        }
    }

    /// Appends `event` to `table`, which is ready for it; a value that does not fit makes the
    /// record a dead letter.
    async fn push_ready(&mut self, table: &Arc<str>, event: ChangeEvent, record: &SourceRecord, position: &str) -> Result<()> {
        match self.push_change(table, event, record, position) {
            Err(e) => {
                self.fail_table(table, e);
                Ok(())
            }
            Ok(Err(reason)) => self.dead_letter(record, Some(table.to_string()), &reason.to_string()).await,
            Ok(Ok(())) => Ok(()),
        }
    }

    /// `record`'s position key, reused while records come from one partition.
    fn position_of(&mut self, record: &SourceRecord) -> Arc<str> {
        if let Some((stream, partition, key)) = &self.last_position {
            if Arc::ptr_eq(stream, &record.stream) && *partition == record.partition {
                return key.clone();
            }
        }
        let key: Arc<str> = record.position_key().into();
        self.last_position = Some((record.stream.clone(), record.partition, key.clone()));
        key
    }

    /// Converts `event` into the table's columns and appends it; `Ok(Err)`: a value does not fit.
    fn push_change(
        &mut self,
        table: &str,
        event: ChangeEvent,
        record: &SourceRecord,
        position: &str,
    ) -> Result<std::result::Result<(), DecodeError>> {
        let sink = self.tables.get_mut(table).expect("opened");
        let truncate_key = if event.op == Op::Truncate { truncate_key(sink) } else { vec![] };
        let op_ts = sink.next_op_ts(self.batch_clock.unwrap_or_else(self.clock));
        let rows = sink.rows()?;
        let metadata = rows.metadata_slots().ok_or_else(|| SinkError::Internal(format!("{table} lacks floe's metadata columns")))?;
        // One row's cells, reused: the builder takes them and leaves the vector empty.
        let cells = &mut self.cells;
        cells.clear();
        cells.resize(rows.width(), Cell::Null);
        let mut unavailable = vec![];
        let slots = match rows.slots_of(&event.columns) {
            Ok(slots) => slots,
            Err(name) => return Ok(Err(DecodeError::new("not a column of the table").in_column(&name))),
        };
        for ((field, value), &i) in event.columns.iter().zip(event.values).zip(slots.iter()) {
            let c = match cell(value, &field.kind) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e.in_column(&field.name))),
            };
            if self.placeholder.is_placeholder(event.op, &field.kind, &c) {
                unavailable.push(i);
            }
            cells[i] = c;
        }
        for (name, zero) in truncate_key {
            cells[rows.index_of(&name).expect("key column")] = zero;
        }
        // In the order of METADATA_COLUMNS.
        let values = [
            Cell::Static(event.op.code()),
            Cell::Int(op_ts),
            event.source_ts_micros.map_or(Cell::Null, Cell::Int),
            Cell::Int(record.partition.into()),
            Cell::Int(record.offset),
        ];
        for (slot, value) in metadata.into_iter().zip(values) {
            cells[slot] = value;
        }
        let pushed = sink.push(cells, record.size(), unavailable, position, record.offset)?;
        if pushed.is_ok() {
            self.buffered_rows += 1;
            self.buffered_bytes += record.size();
        }
        Ok(pushed)
    }

    /// Takes `table` out of this run after `error`: what it buffered is dropped uncommitted (the
    /// next run reads it again) and its later records are skipped. Other tables go on.
    fn fail_table(&mut self, table: &str, error: SinkError) {
        error!(table, %error, "table failed; its records are left for the next run, other tables go on");
        crate::metrics::table_failed(table);
        if let Some(mut sink) = self.tables.remove(table) {
            let dropped = sink.discard_pending();
            self.forget_buffered(dropped);
            self.report.add_table(table, &sink);
        }
        self.failed.insert(table.to_string(), error.to_string());
    }

    /// Takes `rows` and `bytes` a table dropped out of the buffered totals.
    fn forget_buffered(&mut self, (rows, bytes): (usize, usize)) {
        self.buffered_rows = self.buffered_rows.saturating_sub(rows);
        self.buffered_bytes = self.buffered_bytes.saturating_sub(bytes);
    }

    /// Pauses `table`: its buffered rows are dropped (they are read again on resume), and the
    /// partitions that feed only it are paused at the source. A partition shared with other
    /// tables keeps flowing; the paused table's records in it are skipped.
    async fn pause(&mut self, table: &str, source: &mut impl Source) -> Result<()> {
        if self.paused.contains_key(table) || !self.tables.contains_key(table) {
            return Ok(());
        }
        let own = self.own_partitions(table);
        let dropped = self.tables.get_mut(table).expect("checked").discard_pending();
        self.forget_buffered(dropped);
        source.pause(&own);
        info!(table, partitions = ?own, "table paused");
        crate::metrics::table_paused(table, true);
        self.paused.insert(table.to_string(), Paused { own, skipped_elsewhere: false });
        Ok(())
    }

    /// Pauses `table` because its source changed incompatibly. The pause is kept in the table,
    /// so this and every later run skip its records (they stay in the source, uncommitted)
    /// until an operator resumes it with `floe resume`. Other tables go on.
    async fn pause_for_incompatible_change(&mut self, table: &str, reason: &str) -> Result<()> {
        error!(table, reason, "table paused: its source changed in a way it cannot follow; fix it, then `floe resume {table}`");
        // What the table took before the change is good: commit it first.
        self.flush().await?;
        self.settle().await?;
        let Some(sink) = self.tables.get_mut(table) else { return Ok(()) };
        match pause_table(self.catalog, &sink.ident, reason).await {
            Ok(paused) => sink.table = Some(paused),
            Err(e) => {
                self.fail_table(table, e.into());
                return Ok(());
            }
        }
        self.hold_paused(table, reason);
        Ok(())
    }

    /// Skips `table`'s records for the rest of the run: it is paused in the catalog.
    fn hold_paused(&mut self, table: &str, reason: &str) {
        crate::metrics::table_paused(table, true);
        self.report.paused_tables.insert(table.to_string(), reason.to_string());
        // Its records were neither taken nor paused at the source, so it cannot resume in this run.
        self.paused.insert(table.to_string(), Paused { own: vec![], skipped_elsewhere: true });
    }

    /// Resumes `table` from its committed positions. Only partitions paused for it can be
    /// rewound; when it skipped records anywhere else, it stays paused and resumes at the next
    /// run, from its committed positions.
    async fn resume(&mut self, table: &str, source: &mut impl Source) -> Result<()> {
        let Some(paused) = self.paused.get(table) else { return Ok(()) };
        let own = paused.own.clone();
        let shared = self.partitions.get(table).is_some_and(|all| all.len() > own.len());
        // Records skipped in a partition that cannot be rewound would be lost once the table
        // commits later positions of it.
        if shared || paused.skipped_elsewhere {
            warn!(table, "the table skipped records it cannot read again in this run (a partition shared with other tables, or a new one): it resumes at the next run");
            return Ok(());
        }
        // Settle first, so the positions it resumes from include every commit under way.
        self.settle().await?;
        let committed = self.tables.get(table).map(|s| s.committed().clone()).unwrap_or_default();
        let from: Positions = own.iter().filter_map(|p| Some((p.clone(), *committed.get(p)?))).collect();
        source.resume(&own, &from).await?;
        self.paused.remove(table);
        crate::metrics::table_paused(table, false);
        info!(table, from = ?from, "table resumed");
        Ok(())
    }

    /// Partitions that have fed `table` and no other data table in this run.
    fn own_partitions(&self, table: &str) -> Vec<String> {
        let Some(mine) = self.partitions.get(table) else { return vec![] };
        let shared = |p: &String| self.partitions.iter().any(|(other, theirs)| other != table && theirs.contains(p));
        mine.iter().filter(|p| !shared(p)).cloned().collect()
    }

    /// The name of `topic`'s table, opening its sink the first time ([`Self::table_for`]).
    async fn route(&mut self, topic: &Arc<str>) -> std::result::Result<Arc<str>, (String, SinkError)> {
        match self.known_route(topic) {
            Some(table) => Ok(table),
            None => self.table_for(topic).await,
        }
    }

    /// The name of `topic`'s table, when its sink has been opened.
    fn known_route(&mut self, topic: &Arc<str>) -> Option<Arc<str>> {
        if let Some((last, table)) = &self.last_route {
            if Arc::ptr_eq(last, topic) {
                return Some(table.clone());
            }
        }
        let table = self.topics.get(&**topic)?.clone();
        self.last_route = Some((topic.clone(), table.clone()));
        Some(table)
    }

    /// Records that `table` takes records from the partition with `position` key.
    fn note_partition(&mut self, table: &Arc<str>, position: &Arc<str>) {
        if self.last_partition.as_ref().is_some_and(|(t, p)| Arc::ptr_eq(t, table) && Arc::ptr_eq(p, position)) {
            return;
        }
        let partitions = match self.partitions.get_mut(&**table) {
            Some(partitions) => partitions,
            None => self.partitions.entry(table.to_string()).or_default(),
        };
        if !partitions.contains(&**position) {
            partitions.insert(position.to_string());
        }
        self.last_partition = Some((table.clone(), position.clone()));
    }

    /// Opens (once) the sink for `topic`'s table, returning the table's name, or the name and
    /// why it could not be opened.
    async fn table_for(&mut self, topic: &str) -> std::result::Result<Arc<str>, (String, SinkError)> {
        if let Some(name) = self.topics.get(topic) {
            return Ok(name.clone());
        }
        let route = self.config.route(topic);
        let name = route.ident.to_string();
        if !self.tables.contains_key(&name) && !self.failed.contains_key(&name) {
            let sink = TableSink::open(self.catalog, route.ident, route.hints).await.map_err(|e| (name.clone(), e))?;
            let pause = sink.table.as_ref().and_then(pause_of);
            self.tables.insert(name.clone(), sink);
            if let Some(Pause { reason, at }) = pause {
                warn!(table = %name, %reason, since = %at, "table is paused: its records are left in the source until `floe resume {name}`");
                self.hold_paused(&name, &reason);
            }
        }
        let name: Arc<str> = name.into();
        self.topics.insert(topic.to_string(), name.clone());
        Ok(name)
    }

    /// Creates or evolves the table so `event` fits, or says why it cannot take it.
    async fn prepare_table(&mut self, name: &str, event: &ChangeEvent) -> Result<Preparation> {
        let sink = self.tables.get_mut(name).expect("opened");
        if sink.schema().is_none() {
            if event.op == Op::Truncate {
                return Ok(Preparation::DeadLetter("truncate of a table floe has not created yet".into()));
            }
            match new_table_schema(event) {
                Ok(schema) => sink.create(self.catalog, schema).await?,
                Err(reason) => return Ok(Preparation::DeadLetter(reason)),
            }
        }
        let schema = sink.schema().expect("created or found");
        if sink.synced_with(event) {
            return Ok(Preparation::Ready);
        }
        match plan_schema_sync(schema, event) {
            SyncPlan::Unchanged => {
                sink.remember_synced(event);
                Ok(Preparation::Ready)
            }
            SyncPlan::Evolve(changes) => {
                // Buffered rows are typed by the old schema: commit them first.
                self.flush().await?;
                self.settle().await?;
                let Some(sink) = self.tables.get_mut(name) else {
                    return Ok(Preparation::DeadLetter("table failed while flushing".into()));
                };
                sink.evolve(self.catalog, &changes).await?;
                Ok(Preparation::Ready)
            }
            SyncPlan::Incompatible(reason) => Ok(Preparation::Incompatible(format!("incompatible schema change: {reason}"))),
        }
    }

    async fn dead_letter(&mut self, record: &SourceRecord, table: Option<String>, reason: &str) -> Result<()> {
        crate::metrics::dead_letter(table.as_deref());
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
        let rows = sink.rows()?;
        let mut cells = vec![Cell::Null; rows.width()];
        for (name, value) in dead_letter_row(record, table, reason) {
            if let Some(i) = rows.index_of(name) {
                cells[i] = value;
            }
        }
        if let Err(e) = sink.push(&mut cells, record.size(), vec![], &position, record.offset)? {
            return Err(SinkError::Internal(format!("dead-letter row refused: {e}")));
        }
        self.report.dead_letters += 1;
        self.buffered_rows += 1;
        self.buffered_bytes += record.size();
        Ok(())
    }

    /// Hands every table's batch to a writer task, after committing the previous round. A
    /// table whose batch cannot be taken is taken out of the run; the others go on.
    pub async fn flush(&mut self) -> Result<()> {
        self.settle().await?;
        let mut batches: Vec<(Target, Batch)> = vec![];
        let mut failures = vec![];
        for (name, sink) in self.tables.iter_mut() {
            match sink.take_batch() {
                Ok(Some(batch)) => batches.push((Target::Table(name.clone()), batch)),
                Ok(None) => {}
                Err(e) => failures.push((name.clone(), e)),
            }
        }
        for (name, e) in failures {
            self.fail_table(&name, e);
        }
        if let Some(batch) = self.dead_letters.as_mut().map(TableSink::take_batch).transpose()?.flatten() {
            batches.push((Target::DeadLetters, batch));
        }
        self.buffered_rows = 0;
        self.buffered_bytes = 0;
        if !batches.is_empty() {
            self.in_flight = Some(tokio::spawn(write_round(batches)));
        }
        Ok(())
    }

    /// Waits for the round under way, if any, and commits it.
    async fn settle(&mut self) -> Result<()> {
        if self.in_flight.is_some() {
            let round = wait(&mut self.in_flight).await?;
            self.commit_round(round).await?;
            // The commit took a while: the rest of the batch is produced after it.
            if self.batch_clock.is_some() {
                self.batch_clock = Some((self.clock)());
            }
        }
        Ok(())
    }

    /// Commits a written round: data tables first, the dead-letter table last.
    async fn commit_round(&mut self, round: Round) -> Result<()> {
        self.in_flight = None;
        let mut dead_letters = None;
        for (target, written) in round {
            let name = match target {
                Target::DeadLetters => {
                    dead_letters = Some(written);
                    continue;
                }
                Target::Table(name) => name,
            };
            let Some(sink) = self.tables.get_mut(&name) else { continue }; // failed meanwhile
            let committed = match written {
                Ok(written) => sink.commit(self.catalog, written).await,
                Err(e) => Err(e),
            };
            if let Err(e) = committed {
                self.fail_table(&name, e);
            }
        }
        if let (Some(written), Some(sink)) = (dead_letters, self.dead_letters.as_mut()) {
            sink.commit(self.catalog, written?).await?;
        }
        self.unannounced = true;
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

/// Writes a round's batches one after another, beside the ingest loop.
async fn write_round(batches: Vec<(Target, Batch)>) -> Round {
    let mut written = Vec::with_capacity(batches.len());
    for (target, batch) in batches {
        written.push((target, write_batch(batch).await));
    }
    written
}

/// The round under way, once written; never, when there is none.
async fn wait(in_flight: &mut Option<JoinHandle<Round>>) -> Result<Round> {
    match in_flight.as_mut() {
        Some(handle) => handle.await.map_err(|e| SinkError::Internal(format!("writer task: {e}"))),
        None => std::future::pending().await,
    }
}

/// The next control request; never, without a control handle. A dropped handle asks nothing.
async fn next_request(control: &mut Option<mpsc::UnboundedReceiver<Control>>) -> Control {
    if let Some(receiver) = control.as_mut() {
        if let Some(request) = receiver.recv().await {
            return request;
        }
        *control = None;
    }
    std::future::pending().await
}

/// Key columns are required; a truncate has no key, so it carries zero values. Its rank makes
/// every older row of every key dead, whatever key it carries.
fn truncate_key(sink: &TableSink) -> Vec<(String, Cell)> {
    let schema = sink.schema().expect("table exists");
    identifier_columns(schema)
        .into_iter()
        .map(|name| {
            let field = schema.field_by_name(&name).expect("key column exists");
            let zero = match Kind::from_iceberg(&field.field_type) {
                Kind::Boolean => Cell::Bool(false),
                Kind::String | Kind::VariableDecimal => Cell::Text(String::new()),
                Kind::Bytes => Cell::Bytes(vec![]),
                Kind::Decimal { .. } => Cell::Decimal("0".into()),
                _ => Cell::Int(0),
            };
            (name, zero)
        })
        .collect()
}
