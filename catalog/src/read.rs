//! Reading columns of one Parquet file of a table in file order, so row `i` of the stream is
//! position `i` of the file: what position deletes refer to. Iceberg's scan hides positions,
//! so the compactor and the position-delete loader read through here.

use futures::TryStreamExt;
use iceberg::arrow::ArrowFileReader;
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask, PARQUET_FIELD_ID_META_KEY};

use crate::error::{CatalogError, Result};
use crate::table::FloeTable;

/// The top-level columns of the Parquet file at `path` (of `size` bytes, as its manifest says:
/// no request to learn it) with the given Iceberg field ids, in file order. Columns appear in
/// the order of `field_ids`; a field the file lacks is an error (the caller decides what an
/// older file means).
pub async fn read_columns(table: &FloeTable, path: &str, size: u64, field_ids: &[i32]) -> Result<Vec<arrow_array::RecordBatch>> {
    let input = table.file_io().new_input(path)?;
    let reader = ArrowFileReader::new(iceberg::io::FileMetadata { size }, input.reader().await?);
    let builder = ParquetRecordBatchStreamBuilder::new(reader).await?;
    let arrow_fields = builder.schema().fields().clone();
    let field_id = |f: &arrow_schema::Field| f.metadata().get(PARQUET_FIELD_ID_META_KEY).and_then(|v| v.parse::<i32>().ok());
    let mut roots = Vec::with_capacity(field_ids.len());
    for id in field_ids {
        let index = arrow_fields
            .iter()
            .position(|f| field_id(f) == Some(*id))
            .ok_or_else(|| CatalogError::Invalid(format!("{path} has no column with field id {id}")))?;
        roots.push(index);
    }
    let mask = ProjectionMask::roots(builder.parquet_schema(), roots.clone());
    // Large batches: these reads feed tight per-row loops, not a pipeline.
    let batches: Vec<_> = builder.with_projection(mask).with_batch_size(64 * 1024).build()?.try_collect().await?;
    // The projection keeps file order; put the columns in the caller's order.
    let mut sorted = roots.clone();
    sorted.sort_unstable();
    let order: Vec<usize> = roots.iter().map(|r| sorted.binary_search(r).expect("projected")).collect();
    batches.into_iter().map(|b| Ok(b.project(&order)?)).collect()
}

/// The current snapshot's scan tasks for `columns` (current-schema names), each data file with
/// the delete files that apply to it; only the files in `only` when given. With `filter`, files
/// whose statistics rule it out are left out, and each task carries the filter so the reader
/// skips row groups and rows that fail it.
pub async fn scan_tasks(
    table: &iceberg::table::Table,
    columns: &[String],
    only: Option<&std::collections::HashSet<String>>,
    filter: Option<iceberg::expr::Predicate>,
) -> Result<Vec<iceberg::scan::FileScanTask>> {
    let mut scan = table.scan().select(columns.iter().cloned());
    if let Some(filter) = filter {
        scan = scan.with_filter(filter);
    }
    let tasks: Vec<iceberg::scan::FileScanTask> = scan.build()?.plan_files().await?.try_collect().await?;
    Ok(tasks.into_iter().filter(|t| only.is_none_or(|o| o.contains(&t.data_file_path))).collect())
}

/// Scan tasks reading `columns` (snapshot-schema names) of the current snapshot's data files
/// at `paths`, planned from the manifests floe has cached (the compactor's planner read them
/// already) instead of by iceberg's planner, which reads every manifest again: on object
/// storage, a GET each. `None` when iceberg's planner must do it: the snapshot has delete files
/// (matching them to data files is its job), or the table maps column names to field ids
/// (`schema.name-mapping.default`).
pub async fn planned_tasks(
    table: &FloeTable,
    columns: &[String],
    paths: &std::collections::HashSet<String>,
) -> Result<Option<Vec<iceberg::scan::FileScanTask>>> {
    use iceberg::spec::DEFAULT_SCHEMA_NAME_MAPPING;
    let Some(snapshot) = table.current_snapshot() else { return Ok(Some(vec![])) };
    if table.metadata().properties().contains_key(DEFAULT_SCHEMA_NAME_MAPPING) {
        return Ok(None);
    }
    let schema = snapshot.schema(table.metadata())?;
    let field_id = |name: &String| {
        schema.field_id_by_name(name).ok_or_else(|| CatalogError::Invalid(format!("{} has no column {name}", table.ident())))
    };
    let field_ids = columns.iter().map(field_id).collect::<Result<Vec<i32>>>()?;
    let files = table.live_files().await?;
    if files.iter().any(|f| !f.is_data()) {
        return Ok(None);
    }
    let task = |file: crate::table::LiveFile| {
        let data = file.data_file;
        iceberg::scan::FileScanTask::builder()
            .with_file_size_in_bytes(data.file_size_in_bytes())
            .with_start(0)
            .with_length(data.file_size_in_bytes())
            .with_record_count(Some(data.record_count()))
            .with_data_file_path(data.file_path().to_string())
            .with_data_file_format(data.file_format())
            .with_schema(schema.clone())
            .with_project_field_ids(field_ids.clone())
            .with_partition(Some(data.partition().clone()))
            .with_case_sensitive(true)
            .build()
    };
    Ok(Some(files.into_iter().filter(|f| paths.contains(f.path())).map(task).collect()))
}

/// The rows of one scan task through iceberg's reader: schema evolution resolved by field id,
/// deletes applied, in file order. Row `i` of the stream is the file's `i`-th row left after
/// deletes, the same on every read.
pub fn read_task(
    table: &FloeTable,
    task: iceberg::scan::FileScanTask,
    batch_size: usize,
) -> Result<futures::stream::BoxStream<'static, Result<arrow_array::RecordBatch>>> {
    use futures::StreamExt;
    let reader = table.iceberg_table()?.reader_builder().with_batch_size(batch_size).build();
    let stream = reader.read(futures::stream::iter([Ok(task)]).boxed())?;
    Ok(stream.stream().map_err(CatalogError::from).boxed())
}

/// The rows of the current snapshot matching `filter` (all rows without one), `columns` only
/// (current-schema names), deletes applied. Files whose statistics rule the filter out are not
/// read. Empty for a table without a snapshot.
pub async fn scan_rows(
    table: &FloeTable,
    columns: &[String],
    filter: Option<iceberg::expr::Predicate>,
) -> Result<Vec<arrow_array::RecordBatch>> {
    if table.current_snapshot().is_none() {
        return Ok(vec![]);
    }
    let table = table.iceberg_table()?;
    let mut scan = table.scan().select(columns.iter().cloned());
    if let Some(filter) = filter {
        scan = scan.with_filter(filter);
    }
    Ok(scan.build()?.to_arrow().await?.try_collect().await?)
}
