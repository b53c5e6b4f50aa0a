//! Decoding a batch of records on other threads while the ingest loop takes the batch before.
//!
//! Decoding is much of the loop's work, and a record's decoding depends only on its bytes and
//! on its table's state ([`TableState`]). So when a batch arrives, the loop hands it to
//! [`DecodeAhead::start`] with a snapshot of its tables' states, and goes on with the previous
//! batch. The batch is decoded on a blocking thread (split into contiguous runs, one per
//! decoder, when there are cores to spare) and comes back with each record's result and the
//! table schema it was decoded against. When the loop reaches the record, a table that has
//! evolved since (an earlier record added a column) decodes it again, so the outcome is always
//! the one sequential decoding gives.
//!
//! Each thread has its own [`Decoder`] (decoders keep caches and are not shared), and each of
//! the batches that can be in flight has its own set. Runs are contiguous so that
//! consecutive records share one decoder's column lists, which is what lets schema sync and
//! the row builders recognise a known schema by pointer. Sets alternate from batch to batch,
//! so that recognition is redone (a comparison of the columns) once per run, not per record.

use std::collections::VecDeque;
use std::sync::Arc;

use floe_catalog::iceberg::spec::SchemaRef;
use tokio::task::JoinHandle;

use super::{ColumnHints, Decoded, Decoder, TableState};
use crate::source::SourceRecord;

/// Runs smaller than this are not given a thread of their own: starting one would cost more
/// than it saves.
const MIN_RECORDS_PER_THREAD: usize = 128;

/// Threads that decode one batch: past a few, the loop's sequential work is the limit.
const MAX_DECODE_THREADS: usize = 3;

/// What a decoder needs of a table, owned: it is read on another thread.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    pub schema: Option<SchemaRef>,
    pub hints: ColumnHints,
}

impl TableSnapshot {
    fn state(&self) -> TableState<'_> {
        TableState { schema: self.schema.as_ref(), hints: &self.hints }
    }
}

/// A record decoded ahead, and the table schema (its id, none before the table exists) it was
/// decoded against.
#[derive(Debug)]
pub struct Ahead {
    schema_id: Option<i32>,
    decoded: Decoded,
}

impl Ahead {
    /// The decoding, if the table still has the schema it was made against.
    pub fn valid_for(self, table: TableState<'_>) -> Option<Decoded> {
        (self.schema_id == schema_id(table)).then_some(self.decoded)
    }
}

/// A batch's records, and each one's decoding when it was decoded ahead (`ahead[i]` for
/// `records[i]`). Two vectors, not one of pairs: pairing them would move every record again.
pub struct DecodedBatch {
    pub records: Vec<SourceRecord>,
    pub ahead: Vec<Option<Ahead>>,
}

type Decoders = Vec<Box<dyn Decoder>>;

/// The decoding stage: up to [`IN_FLIGHT`] batches being decoded, oldest first, and the idle
/// decoder sets.
pub struct DecodeAhead {
    idle: Vec<Decoders>,
    in_flight: VecDeque<Flight>,
}

/// A batch being decoded, or decoded and not yet taken.
enum Flight {
    Decoding(JoinHandle<(DecodedBatch, Decoders)>),
    Decoded(DecodedBatch, Decoders),
}

/// Batches decoded at once: the one the loop is about to take and the two after it. With one
/// batch ahead, the loop and the decoder waited on each other whenever the Parquet writer took
/// a core from either; two ahead absorb that (Kafka messages with the envelope: 4–12% faster).
pub const IN_FLIGHT: usize = 3;

impl DecodeAhead {
    /// A stage whose decoders are forks of `decoder`, one per spare core (at least one), in
    /// one set per batch in flight.
    pub fn new(decoder: &dyn Decoder) -> Self {
        let threads = crate::cores().saturating_sub(1).clamp(1, MAX_DECODE_THREADS);
        let set = || (0..threads).map(|_| decoder.fork()).collect();
        Self { idle: (0..IN_FLIGHT).map(|_| set()).collect(), in_flight: VecDeque::new() }
    }

    /// Batches being decoded.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Starts decoding `records`; `tables[i]` is the table state of the records with `jobs`
    /// entry `(index, i)`. Records without an entry are left for the loop. At most
    /// [`IN_FLIGHT`] batches may be in flight.
    pub fn start(&mut self, records: Vec<SourceRecord>, jobs: Vec<(usize, usize)>, tables: Vec<TableSnapshot>) {
        let mut decoders = self.idle.pop().expect("more batches started than IN_FLIGHT");
        self.in_flight.push_back(Flight::Decoding(tokio::task::spawn_blocking(move || {
            let ahead = decode(&mut decoders, &records, &jobs, &tables);
            (DecodedBatch { records, ahead }, decoders)
        })));
    }

    /// Waits until the oldest batch is decoded; never, when none is in flight. Cancel-safe:
    /// the loop selects on it beside its source.
    pub async fn oldest_decoded(&mut self) {
        let Some(flight) = self.in_flight.front_mut() else { return std::future::pending().await };
        if let Flight::Decoding(handle) = flight {
            let (batch, decoders) = joined(handle.await);
            *flight = Flight::Decoded(batch, decoders);
        }
    }

    /// The oldest batch in flight, decoded; `None` when there is none.
    pub async fn take(&mut self) -> Option<DecodedBatch> {
        let (batch, decoders) = match self.in_flight.pop_front()? {
            Flight::Decoding(handle) => joined(handle.await),
            Flight::Decoded(batch, decoders) => (batch, decoders),
        };
        self.idle.push(decoders);
        Some(batch)
    }
}

/// A decoding task's result; a decoder's panic goes on as the same panic.
fn joined<T>(result: Result<T, tokio::task::JoinError>) -> T {
    result.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Decodes `jobs` of `records`, split into contiguous runs over `decoders`, one thread each.
fn decode(
    decoders: &mut [Box<dyn Decoder>],
    records: &[SourceRecord],
    jobs: &[(usize, usize)],
    tables: &[TableSnapshot],
) -> Vec<Option<Ahead>> {
    let mut ahead: Vec<Option<Ahead>> = (0..records.len()).map(|_| None).collect();
    if jobs.is_empty() {
        return ahead;
    }
    let threads = decoders.len().min(jobs.len() / MIN_RECORDS_PER_THREAD).max(1);
    let runs = jobs.chunks(jobs.len().div_ceil(threads));
    let decoded: Vec<Vec<(usize, Ahead)>> = std::thread::scope(|scope| {
        let mut runs = decoders.iter_mut().zip(runs);
        let (first_decoder, first_run) = runs.next().expect("jobs is not empty");
        let spawned: Vec<_> = runs.map(|(decoder, run)| scope.spawn(move || decode_run(decoder.as_mut(), records, run, tables))).collect();
        let mut decoded = vec![decode_run(first_decoder.as_mut(), records, first_run, tables)];
        decoded.extend(spawned.into_iter().map(|thread| thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))));
        decoded
    });
    for (index, result) in decoded.into_iter().flatten() {
        ahead[index] = Some(result);
    }
    ahead
}

fn decode_run(
    decoder: &mut dyn Decoder,
    records: &[SourceRecord],
    run: &[(usize, usize)],
    tables: &[TableSnapshot],
) -> Vec<(usize, Ahead)> {
    let mut decoded = Vec::with_capacity(run.len());
    for &(index, table) in run {
        let Ok(message) = &records[index].message else { continue };
        let state = tables[table].state();
        decoded.push((index, Ahead { schema_id: schema_id(state), decoded: decoder.decode(message, state) }));
    }
    decoded
}

fn schema_id(table: TableState<'_>) -> Option<i32> {
    table.schema.map(|schema| schema.schema_id())
}

/// Snapshots shared between threads: cheap to clone per batch.
pub fn snapshot(schema: Option<&SchemaRef>, hints: &ColumnHints) -> TableSnapshot {
    TableSnapshot { schema: schema.map(Arc::clone), hints: hints.clone() }
}
