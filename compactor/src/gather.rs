//! The two reads of a hashed rewrite (full or incremental), each spread over the cores one file
//! per task:
//! 1. [`IndexedInput::build`] reads the key and ranking columns of every input file into a
//!    [`LatestIndex`] ([`index_files`]);
//! 2. [`IndexedInput::write_latest`] reads the winning rows in full ([`gather`]) and writes them
//!    sorted by key into new compacted files ([`write_in_key_order`]).
//!
//! Both stop with [`CompactError::OverBudget`] once they would hold more than the memory limit;
//! the caller then falls back to the spilling DataFusion plan.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arrow::array::{RecordBatch, UInt32Array};
use arrow::compute::{interleave_record_batch, take_record_batch};
use datafusion::error::DataFusionError;
use floe_catalog::iceberg::scan::FileScanTask;
use floe_catalog::iceberg::spec::DataFile;
use floe_catalog::layout::COMPACTED_FILE_PREFIX;
use floe_catalog::read::{planned_tasks, read_task, scan_tasks};
use floe_catalog::writer::DataFileSink;
use floe_catalog::FloeTable;
use futures::stream::{self, StreamExt, TryStreamExt};
use hashbrown::DefaultHashBuilder;
use tokio::sync::mpsc;
use tracing::debug;

use crate::error::{CompactError, Result};
use crate::execute::RewriteOptions;
use crate::keys::KeyColumns;
use crate::latest::{KeyBatch, LatestIndex, Shard, Winner, INDEX_COLUMNS};

/// The first read of a hashed rewrite done: the index over the input files, and what the
/// second read needs.
pub(crate) struct IndexedInput {
    pub index: LatestIndex,
    pub keys: Arc<KeyColumns>,
    /// The same files as the index's, planned with every column.
    full_tasks: Vec<FileScanTask>,
    budget: Budget,
}

impl IndexedInput {
    /// Indexes the data files at `paths`, holding at most `memory_limit` bytes.
    pub async fn build(table: &FloeTable, paths: &HashSet<String>, memory_limit: usize) -> Result<Self> {
        let started = std::time::Instant::now();
        let keys = Arc::new(KeyColumns::new(table)?);
        let budget = Budget::new(memory_limit);
        let (narrow, full_tasks) = input_tasks(table, &keys, paths).await?;
        let index = index_files(table, keys.clone(), narrow, &budget).await?;
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            keys = index.keys(),
            index_bytes = index.memory_size(),
            "latest rows indexed"
        );
        Ok(Self { index, keys, full_tasks, budget })
    }

    /// Reads the surviving rows in full and writes them, in key order, into new compacted
    /// files. Returns the files and their row count.
    pub async fn write_latest(self, table: &FloeTable, options: &RewriteOptions) -> Result<(Vec<DataFile>, u64)> {
        let started = std::time::Instant::now();
        let winners = self.index.winners(options.keep_tombstones_after);
        // The index is done with; its memory goes to the rows.
        drop(self.index);
        let gathered = gather(table, self.full_tasks, &winners, &self.budget).await?;
        debug!(elapsed_ms = started.elapsed().as_millis() as u64, winners = winners.len(), "winners read");
        let written = write_in_key_order(table, gathered, options.target_file_size).await?;
        debug!(elapsed_ms = started.elapsed().as_millis() as u64, "written");
        Ok(written)
    }
}

/// Scan tasks over the files at `paths`, twice in the same file order: reading the key and
/// ranking columns, and reading every column.
async fn input_tasks(table: &FloeTable, keys: &KeyColumns, paths: &HashSet<String>) -> Result<(Vec<FileScanTask>, Vec<FileScanTask>)> {
    let columns: Vec<String> = keys.names.iter().cloned().chain(INDEX_COLUMNS.map(String::from)).collect();
    let narrow = match planned_tasks(table, &columns, paths).await? {
        Some(tasks) => tasks,
        None => scan_tasks(&table.iceberg_table()?, &columns, Some(paths), None).await?,
    };
    let all_fields: Vec<i32> = table.current_schema().as_struct().fields().iter().map(|f| f.id).collect();
    let full = narrow.iter().map(|t| FileScanTask { project_field_ids: all_fields.clone(), ..t.clone() }).collect();
    Ok((narrow, full))
}

/// Rows per batch read and written.
pub(crate) const BATCH_ROWS: usize = 32 * 1024;

/// How many shards the latest-record index has: one per core.
fn read_concurrency() -> usize {
    std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
}

/// How many files are read at once: four per core, since a read from object storage mostly
/// waits on the network (each file is a few round trips: footer, then column chunks).
fn io_concurrency() -> usize {
    4 * read_concurrency()
}

/// Memory a hashed rewrite may hold, shared by its concurrent readers.
#[derive(Debug, Clone)]
struct Budget {
    limit: usize,
    used: Arc<AtomicUsize>,
}

impl Budget {
    pub fn new(limit: usize) -> Self {
        Self { limit, used: Arc::default() }
    }

    fn reserve(&self, bytes: usize) -> Result<()> {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if used > self.limit {
            return Err(CompactError::OverBudget(self.limit));
        }
        Ok(())
    }
}

fn join_error(e: tokio::task::JoinError) -> CompactError {
    CompactError::Invalid(format!("reader task failed: {e}"))
}

/// Reads the key and [`INDEX_COLUMNS`](crate::latest::INDEX_COLUMNS) of every task (planned
/// with those columns); file `i` of the index is `tasks[i]`. Readers decode, encode and hash
/// in parallel; each shard of the index has one owner task.
async fn index_files(table: &FloeTable, keys: Arc<KeyColumns>, tasks: Vec<FileScanTask>, budget: &Budget) -> Result<LatestIndex> {
    let shards = read_concurrency();
    let hasher = DefaultHashBuilder::default();
    // Every file of a full compaction usually holds most keys: size for the largest one, within budget.
    let expected_keys = tasks.iter().filter_map(|t| t.record_count).max().unwrap_or(0) as usize;
    let per_shard = (expected_keys / shards + expected_keys / 16).min(budget.limit / 4 / shards / 64);
    let (senders, owners): (Vec<_>, Vec<_>) = (0..shards)
        .map(|_| {
            let (sender, receiver) = mpsc::channel(4);
            let (shard, budget) = (Shard::with_capacity(per_shard), budget.clone());
            // Own threads: on the runtime, wake-ups would keep the owners on their readers' worker.
            (sender, tokio::task::spawn_blocking(move || own_shard(shard, receiver, budget)))
        })
        .unzip();
    let table = table.clone();
    let readers = stream::iter(tasks.into_iter().enumerate())
        .map(move |(file, task)| {
            let (table, keys, hasher, senders) = (table.clone(), keys.clone(), hasher.clone(), senders.clone());
            tokio::spawn(send_key_batches(table, keys, hasher, file as u32, task, senders))
        })
        .buffer_unordered(io_concurrency())
        .map(|joined| joined.map_err(join_error)?)
        .try_collect::<()>()
        .await;
    // The readers' senders are gone now, so the owners finish; a reader failing because an
    // owner stopped over budget reports the owner's error.
    let mut index = vec![];
    for owner in owners {
        index.push(owner.await.map_err(join_error)??);
    }
    readers?;
    Ok(LatestIndex::new(index))
}

type ShardWork = (Arc<KeyBatch>, Vec<u32>);

fn own_shard(mut shard: Shard, mut work: mpsc::Receiver<ShardWork>, budget: Budget) -> Result<Shard> {
    let mut reserved = 0;
    while let Some((batch, indices)) = work.blocking_recv() {
        shard.add(&batch, &indices);
        let size = shard.memory_size();
        budget.reserve(size.saturating_sub(reserved))?;
        reserved = reserved.max(size);
    }
    Ok(shard)
}

async fn send_key_batches(
    table: FloeTable,
    keys: Arc<KeyColumns>,
    hasher: DefaultHashBuilder,
    file: u32,
    task: FileScanTask,
    shards: Vec<mpsc::Sender<ShardWork>>,
) -> Result<()> {
    let mut batches = read_task(&table, task, BATCH_ROWS)?;
    let mut first_pos = 0u64;
    while let Some(batch) = batches.try_next().await? {
        let key_columns: Vec<_> = keys
            .names
            .iter()
            .map(|k| batch.column_by_name(k).cloned().ok_or_else(|| CompactError::Invalid(format!("batch lacks key {k}"))))
            .collect::<Result<_>>()?;
        let n = batch.num_rows() as u64;
        let key_batch = Arc::new(KeyBatch::new(file, first_pos, keys.encode(&key_columns)?, &batch, &hasher)?);
        for (indices, shard) in key_batch.split(shards.len()).into_iter().zip(&shards) {
            if shard.send((key_batch.clone(), indices)).await.is_err() {
                return Err(CompactError::Invalid("an index shard stopped".into()));
            }
        }
        first_pos += n;
    }
    Ok(())
}

/// The winning rows read in full; output row `i` (key order) is `batches[locations[i]]`.
struct Gathered {
    batches: Vec<RecordBatch>,
    locations: Vec<(usize, usize)>,
}

/// Reads the `winners` (in key order) from `tasks` (planned with every column).
async fn gather(table: &FloeTable, tasks: Vec<FileScanTask>, winners: &[Winner], budget: &Budget) -> Result<Gathered> {
    // Per file, (position, output row) sorted by position: the order the file yields them.
    let mut selections: Vec<Vec<(u32, u32)>> = vec![vec![]; tasks.len()];
    for (out, w) in winners.iter().enumerate() {
        selections[w.file as usize].push((w.pos, out as u32));
    }
    selections.iter_mut().for_each(|s| s.sort_unstable());
    let selections: Vec<Arc<Vec<(u32, u32)>>> = selections.into_iter().map(Arc::new).collect();

    let per_file: Vec<Vec<RecordBatch>> = stream::iter(tasks.into_iter().zip(selections.clone()))
        .map(|(task, selection)| tokio::spawn(read_selected(table.clone(), task, selection, budget.clone())))
        .buffered(io_concurrency())
        .map(|joined| joined.map_err(join_error)?)
        .try_collect()
        .await?;

    let mut gathered = Gathered { batches: vec![], locations: vec![(0, 0); winners.len()] };
    for (batches, selection) in per_file.into_iter().zip(selections) {
        let mut outs = selection.iter().map(|&(_, out)| out as usize);
        for batch in batches {
            let b = gathered.batches.len();
            for (row, out) in (0..batch.num_rows()).zip(outs.by_ref()) {
                gathered.locations[out] = (b, row);
            }
            gathered.batches.push(batch);
        }
    }
    Ok(gathered)
}

/// The rows of one file at the selected positions, in position order.
async fn read_selected(table: FloeTable, task: FileScanTask, selection: Arc<Vec<(u32, u32)>>, budget: Budget) -> Result<Vec<RecordBatch>> {
    if selection.is_empty() {
        return Ok(vec![]);
    }
    let mut batches = read_task(&table, task, BATCH_ROWS)?;
    let (mut first_pos, mut next) = (0u32, 0usize);
    let mut out = vec![];
    while let Some(batch) = batches.try_next().await? {
        let end = first_pos + batch.num_rows() as u32;
        let start = next;
        while next < selection.len() && selection[next].0 < end {
            next += 1;
        }
        if next > start {
            let indices = UInt32Array::from_iter_values(selection[start..next].iter().map(|&(pos, _)| pos - first_pos));
            let taken = take_record_batch(&batch, &indices).map_err(DataFusionError::from)?;
            budget.reserve(taken.get_array_memory_size())?;
            out.push(taken);
        }
        first_pos = end;
        if next == selection.len() {
            break;
        }
    }
    Ok(out)
}

/// Below this many rows per writer, more writers only make more small files.
const MIN_ROWS_PER_WRITER: usize = 256 * 1024;

/// Writes the gathered rows in key order into new compacted files of about `target_file_size`.
/// Large outputs are cut into consecutive key ranges written in parallel, one file set each.
async fn write_in_key_order(table: &FloeTable, gathered: Gathered, target_file_size: usize) -> Result<(Vec<DataFile>, u64)> {
    let rows = gathered.locations.len();
    let writers = (rows / MIN_ROWS_PER_WRITER).clamp(1, read_concurrency());
    let gathered = Arc::new(gathered);
    let ranges: Vec<_> = (0..writers).map(|w| rows * w / writers..rows * (w + 1) / writers).collect();
    let parts: Vec<Vec<DataFile>> = stream::iter(ranges)
        .map(|range| tokio::spawn(write_range(table.clone(), gathered.clone(), range, target_file_size)))
        .buffered(writers)
        .map(|joined| joined.map_err(join_error)?)
        .try_collect()
        .await?;
    Ok((parts.into_iter().flatten().collect(), rows as u64))
}

async fn write_range(
    table: FloeTable,
    gathered: Arc<Gathered>,
    range: std::ops::Range<usize>,
    target_file_size: usize,
) -> Result<Vec<DataFile>> {
    let batches: Vec<&RecordBatch> = gathered.batches.iter().collect();
    let mut sink = DataFileSink::named(&table, None, target_file_size, COMPACTED_FILE_PREFIX).await?;
    for chunk in gathered.locations[range].chunks(BATCH_ROWS) {
        sink.write(interleave_record_batch(&batches, chunk).map_err(DataFusionError::from)?).await?;
    }
    Ok(sink.finish().await?)
}
