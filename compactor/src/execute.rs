//! The full rewrite, two ways:
//! - **hashed** (first choice): index each key's latest row from the key and ranking columns
//!   ([`crate::latest`]), then read only the winners in full and write them sorted by key
//!   ([`crate::gather`]). It sorts one row per key instead of every change, but holds the index
//!   and the winners in memory;
//! - **spilling** (when that would exceed the memory limit): DataFusion keeps each key's latest
//!   record with the shared SQL definition, sorts by key and streams the result into new
//!   compacted files. A fair spill pool bounds memory; sorts spill to disk beyond it.

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::Array;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::{displayable, execute_stream};
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::iceberg::spec::DataFile;
use floe_catalog::layout::{key_columns, latest_records_sql, latest_truncate_sql, quote, COMPACTED_FILE_PREFIX};
use floe_catalog::writer::DataFileSink;
use floe_catalog::FloeTable;
use futures::StreamExt;
use tracing::{debug, info};

use crate::error::{CompactError, Result};
use crate::gather::IndexedInput;
use floe_views::scan::ParallelSnapshotScan;

/// Knobs of one rewrite.
#[derive(Debug, Clone)]
pub struct RewriteOptions {
    /// Bytes DataFusion may hold before spilling.
    pub memory_limit: usize,
    pub target_file_size: usize,
    /// Keep deletes and truncates newer than this (micros since epoch).
    pub keep_tombstones_after: Option<i64>,
}

/// What a rewrite produced, ready to commit.
#[derive(Debug, Clone, Default)]
pub struct RewriteOutput {
    /// New compacted data files, and for an incremental rewrite its position-delete file.
    pub add: Vec<DataFile>,
    pub rows_out: u64,
    /// Compacted rows the new position deletes retire.
    pub rows_superseded: u64,
    /// Data files the position deletes point into.
    pub require_live: HashSet<String>,
    /// The in-memory rewrite did not fit: the spilling plan ran.
    pub spilled: bool,
}

/// Rewrites the data files at `paths` (the whole table) to its latest records.
pub async fn rewrite_full(table: &FloeTable, paths: HashSet<String>, options: &RewriteOptions) -> Result<RewriteOutput> {
    match rewrite_hashed(table, &paths, options).await {
        Err(CompactError::OverBudget(limit)) => {
            info!(memory_limit = limit, "the in-memory rewrite does not fit: using the spilling plan");
            rewrite_spilling(table, paths, options).await
        }
        done => done,
    }
}

async fn rewrite_hashed(table: &FloeTable, paths: &HashSet<String>, options: &RewriteOptions) -> Result<RewriteOutput> {
    let indexed = IndexedInput::build(table, paths, options.memory_limit).await?;
    let (add, rows_out) = indexed.write_latest(table, options).await?;
    Ok(RewriteOutput { add, rows_out, ..Default::default() })
}

/// The DataFusion plan, for tables whose index or winners do not fit in memory.
async fn rewrite_spilling(table: &FloeTable, paths: HashSet<String>, options: &RewriteOptions) -> Result<RewriteOutput> {
    let ctx = session(options.memory_limit)?;
    register_scan(&ctx, table, "base", paths)?;
    let started = std::time::Instant::now();
    let truncated_at = latest_truncate(&ctx, "base").await?;
    debug!(elapsed_ms = started.elapsed().as_millis() as u64, ?truncated_at, "latest truncate read");
    let latest =
        latest_records_sql("\"base\"", table.current_schema(), options.keep_tombstones_after, Some(truncated_at)).unwrap_or_default();
    let (add, rows_out) = write_sorted(table, &ctx, &latest, options.target_file_size).await?;
    Ok(RewriteOutput { add, rows_out, spilled: true, ..Default::default() })
}

/// Registers a scan of the data files at `paths` (deletes applied) as table `name`.
fn register_scan(ctx: &SessionContext, table: &FloeTable, name: &str, paths: HashSet<String>) -> Result<()> {
    let partitions = ctx.copied_config().target_partitions();
    let provider = ParallelSnapshotScan::new(table.iceberg_table()?, partitions)?.only_files(paths);
    ctx.register_table(name, Arc::new(provider))?;
    Ok(())
}

/// Runs `select` ordered by the table's key and streams the rows into new compacted files.
async fn write_sorted(table: &FloeTable, ctx: &SessionContext, select: &str, target_file_size: usize) -> Result<(Vec<DataFile>, u64)> {
    let keys = key_columns(table.current_schema()).unwrap_or_default();
    let order = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let plan = ctx.sql(&format!("{select} ORDER BY {order}")).await?.create_physical_plan().await?;
    debug!(plan = %displayable(plan.as_ref()).indent(true), "rewrite plan");
    let mut stream = execute_stream(plan, ctx.task_ctx())?;
    let mut sink = DataFileSink::named(table, None, target_file_size, COMPACTED_FILE_PREFIX).await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        sink.write(batch).await?;
    }
    Ok((sink.finish().await?, rows))
}

/// The latest truncate's `_op_ts` in registered table `name`, read first so the rewrite's plan
/// needs no join.
async fn latest_truncate(ctx: &SessionContext, name: &str) -> Result<Option<i64>> {
    let batches = ctx.sql(&latest_truncate_sql(&quote(name))).await?.collect().await?;
    let column = batches.first().map(|b| b.column(0).clone());
    Ok(column.and_then(|c| {
        let values = c.as_any().downcast_ref::<arrow::array::Int64Array>()?.clone();
        (values.len() == 1 && !values.is_null(0)).then(|| values.value(0))
    }))
}

fn session(memory_limit: usize) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(memory_limit))).build_arc()?;
    // Every partition runs its own sorts and the fair pool splits the limit among them; under a
    // small limit one partition keeps each sort's share usable (its window sort then already
    // yields the output order).
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let partitions = if memory_limit < (64 << 20) { 1 } else { cores };
    // Each sort reserves this much up front to merge its spills (10 MiB by default); scale it
    // down so small limits still leave room for the sort itself.
    let spill_reservation = (memory_limit / (4 * partitions)).min(10 << 20);
    // Sorting a batch needs about twice its size at once; under small limits, smaller batches.
    let batch_size = if memory_limit < (256 << 20) { 1024 } else { 32768 };
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(batch_size)
        .with_sort_spill_reservation_bytes(spill_reservation);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}
