//! A parallel scan of one Iceberg snapshot for DataFusion. iceberg-datafusion 0.10 reads a table
//! as a single partition, so Parquet decoding used one core; this provider plans the snapshot's
//! file tasks with iceberg-rust and spreads them over N partitions, each read by iceberg's own
//! reader (so schema evolution, field-id projection and delete files are applied as usual).
//! It can be limited to a set of data files, which the latest views use to read a compaction's
//! output apart from what was appended after it.
//!
//! Filters are pushed into the Iceberg scan (inexactly: DataFusion still applies them): files
//! whose column statistics rule a filter out are not read, and the reader skips row groups by
//! their statistics. A limit without filters reads only as many files as it needs.

use std::collections::HashSet;

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::catalog::Session;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result as DFResult};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties};
use floe_catalog::iceberg::scan::FileScanTask;
use floe_catalog::iceberg::table::Table;
use floe_catalog::read::scan_tasks;
use futures::{StreamExt, TryStreamExt};
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

fn external(e: floe_catalog::iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The current snapshot of `table`, read in `partitions` parallel partitions.
#[derive(Debug, Clone)]
pub struct ParallelSnapshotScan {
    table: Table,
    schema: SchemaRef,
    partitions: usize,
    only_files: Option<Arc<HashSet<String>>>,
}

impl ParallelSnapshotScan {
    pub fn new(table: Table, partitions: usize) -> floe_catalog::iceberg::Result<Self> {
        let schema = Arc::new(floe_catalog::iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema())?);
        Ok(Self { table, schema, partitions: partitions.max(1), only_files: None })
    }

    /// Reads only the data files at these paths.
    pub fn only_files(mut self, paths: HashSet<String>) -> Self {
        self.only_files = Some(Arc::new(paths));
        self
    }

    /// Shows only `columns`: the others are not in the scan's schema at all.
    pub fn only_columns(mut self, columns: &crate::access::Columns) -> DFResult<Self> {
        let keep: Vec<usize> = self.schema.fields().iter().enumerate().filter(|(_, f)| columns.allows(f.name())).map(|(i, _)| i).collect();
        self.schema = Arc::new(self.schema.project(&keep)?);
        Ok(self)
    }
}

#[async_trait::async_trait]
impl TableProvider for ParallelSnapshotScan {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> DFResult<Arc<dyn ExecutionPlan>> {
        let schema = match projection {
            Some(p) => Arc::new(self.schema.project(p)?),
            None => self.schema.clone(),
        };
        let columns: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
        let predicate = convert_filters_to_predicate(filters);
        let mut tasks = scan_tasks(&self.table, &columns, self.only_files.as_deref(), predicate)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if let Some(limit) = limit.filter(|_| filters.is_empty()) {
            tasks = enough_for(tasks, limit);
        }
        Ok(Arc::new(ParallelScanExec::new(self.table.clone(), balance(tasks, self.partitions), schema)))
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> DFResult<Vec<TableProviderFilterPushDown>> {
        // Inexact: the scan prunes by statistics; DataFusion filters the rows it returns.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }
}

/// The first tasks that hold `limit` rows, when their counts are known and no deletes apply.
fn enough_for(tasks: Vec<FileScanTask>, limit: usize) -> Vec<FileScanTask> {
    let exact = |t: &FileScanTask| t.deletes.is_empty() && t.record_count.is_some();
    if !tasks.iter().all(exact) {
        return tasks;
    }
    let mut rows = 0u64;
    tasks
        .into_iter()
        .take_while(|t| {
            let needed = rows < limit as u64;
            rows += t.record_count.unwrap_or(0);
            needed
        })
        .collect()
}

/// Splits tasks into `n` groups of similar byte size (largest first, into the lightest group).
fn balance(mut tasks: Vec<FileScanTask>, n: usize) -> Vec<Vec<FileScanTask>> {
    tasks.sort_by_key(|t| std::cmp::Reverse(t.length));
    let mut groups: Vec<(u64, Vec<FileScanTask>)> = (0..n).map(|_| (0, vec![])).collect();
    for task in tasks {
        let lightest = groups.iter_mut().min_by_key(|(bytes, _)| *bytes).expect("n >= 1");
        lightest.0 += task.length;
        lightest.1.push(task);
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

#[derive(Debug)]
struct ParallelScanExec {
    table: Table,
    groups: Vec<Vec<FileScanTask>>,
    properties: Arc<PlanProperties>,
}

impl ParallelScanExec {
    fn new(table: Table, groups: Vec<Vec<FileScanTask>>, schema: SchemaRef) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(groups.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self { table, groups, properties: Arc::new(properties) }
    }
}

impl DisplayAs for ParallelScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let files: usize = self.groups.iter().map(Vec::len).sum();
        write!(f, "ParallelSnapshotScan: {} partitions, {files} files", self.groups.len())
    }
}

impl ExecutionPlan for ParallelScanExec {
    fn name(&self) -> &str {
        "ParallelSnapshotScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn with_new_children(self: Arc<Self>, _children: Vec<Arc<dyn ExecutionPlan>>) -> DFResult<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(&self, partition: usize, context: Arc<TaskContext>) -> DFResult<SendableRecordBatchStream> {
        let tasks = self.groups.get(partition).cloned().unwrap_or_default();
        let reader = self.table.reader_builder().with_batch_size(context.session_config().batch_size()).build();
        let batches = reader.read(futures::stream::iter(tasks.into_iter().map(Ok)).boxed()).map_err(external)?.stream().map_err(external);
        Ok(Box::pin(RecordBatchStreamAdapter::new(self.properties.eq_properties.schema().clone(), batches)))
    }
}
