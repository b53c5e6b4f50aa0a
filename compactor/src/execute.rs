//! The rewrite: DataFusion reads the planned snapshot, keeps each key's latest record with the
//! shared SQL definition, sorts by key, and streams the result into new Parquet data files. A
//! fair spill pool bounds memory; sorts spill to disk beyond it.

use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use floe_catalog::iceberg::spec::DataFile;
use floe_catalog::layout::{key_columns, latest_records_sql};
use floe_catalog::writer::{table_arrow_schema, DataFileSink};
use floe_catalog::FloeTable;
use futures::StreamExt;
use iceberg_datafusion::IcebergStaticTableProvider;

use crate::error::Result;

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
    let provider = IcebergStaticTableProvider::try_new_from_table(table.iceberg_table()?).await?;
    ctx.register_table("base", Arc::new(provider))?;
    let schema = table.current_schema();
    let keys = key_columns(schema).unwrap_or_default();
    let latest = latest_records_sql("\"base\"", schema, options.keep_tombstones_after).unwrap_or_default();
    let order = keys.iter().map(|k| format!("\"{}\"", k.replace('"', "\"\""))).collect::<Vec<_>>().join(", ");
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

fn session(memory_limit: usize) -> Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new().with_memory_pool(Arc::new(FairSpillPool::new(memory_limit))).build_arc()?;
    let config = SessionConfig::new().with_target_partitions(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2));
    Ok(SessionContext::new_with_config_rt(config, runtime))
}
