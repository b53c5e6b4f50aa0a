//! The rewrite: DataFusion reads the planned snapshot, keeps each key's latest record with the
//! shared SQL definition, sorts by key, and streams the result into new Parquet data files. A
//! fair spill pool bounds memory; sorts spill to disk beyond it.

use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::iceberg::spec::DataFile;
use floe_catalog::layout::{key_columns, latest_records_sql, latest_truncate_sql, quote};
use floe_catalog::writer::{table_arrow_schema, DataFileSink};
use floe_catalog::FloeTable;
use arrow::array::Array;
use futures::StreamExt;

use crate::error::Result;
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

/// Rewrites `table`'s current snapshot to its latest records; returns the new files and rows.
pub async fn rewrite(table: &FloeTable, options: &RewriteOptions) -> Result<(Vec<DataFile>, u64)> {
    let ctx = session(options.memory_limit)?;
    let partitions = ctx.copied_config().target_partitions();
    let provider = ParallelSnapshotScan::new(table.iceberg_table()?, partitions)?;
    ctx.register_table("base", Arc::new(provider))?;
    let schema = table.current_schema();
    let keys = key_columns(schema).unwrap_or_default();
    let truncated_at = latest_truncate(&ctx).await?;
    let latest = latest_records_sql("\"base\"", schema, options.keep_tombstones_after, Some(truncated_at)).unwrap_or_default();
    let order = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let mut stream = ctx.sql(&format!("{latest} ORDER BY {order}")).await?.execute_stream().await?;

    let arrow_schema = table_arrow_schema(table)?;
    let mut sink = DataFileSink::new(table, None, options.target_file_size).await?;
    let mut rows = 0u64;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows() as u64;
        // DataFusion drops the field-id metadata the Parquet writer matches columns by.
        let batch = arrow::record_batch::RecordBatch::try_new(arrow_schema.clone(), batch.columns().to_vec())
            .map_err(datafusion::error::DataFusionError::from)?;
        sink.write(batch).await?;
    }
    Ok((sink.finish().await?, rows))
}

/// The latest truncate's `_op_ts`, read first so the rewrite's plan needs no join.
async fn latest_truncate(ctx: &SessionContext) -> Result<Option<i64>> {
    let batches = ctx.sql(&latest_truncate_sql("\"base\"")).await?.collect().await?;
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
    let batch_size = if memory_limit < (256 << 20) { 1024 } else { 8192 };
    let config = SessionConfig::new()
        .with_target_partitions(partitions)
        .with_batch_size(batch_size)
        .with_sort_spill_reservation_bytes(spill_reservation);
    Ok(SessionContext::new_with_config_rt(config, runtime))
}
