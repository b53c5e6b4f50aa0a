//! Arrow record batches → Parquet data files with Iceberg field ids, column metrics (value,
//! null counts, lower/upper bounds) and partition values, through iceberg-rust's writer stack.
//! The sink and the compactor both write through here.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataFile, DataFileFormat, PartitionKey, SchemaRef};
use iceberg::writer::base_writer::data_file_writer::DataFileWriterBuilder;
use iceberg::writer::file_writer::location_generator::{DefaultFileNameGenerator, DefaultLocationGenerator};
use iceberg::writer::file_writer::rolling_writer::RollingFileWriterBuilder;
use iceberg::writer::file_writer::ParquetWriterBuilder;
use iceberg::writer::{IcebergWriter, IcebergWriterBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use uuid::Uuid;

use crate::error::Result;
use crate::table::FloeTable;

/// Default size at which a data file is rolled over to the next one.
pub const DEFAULT_TARGET_FILE_SIZE: usize = 128 * 1024 * 1024;

/// The Arrow schema batches must have to be written to `table` (carries `PARQUET:field_id`).
pub fn table_arrow_schema(table: &FloeTable) -> Result<ArrowSchemaRef> {
    Ok(Arc::new(schema_to_arrow_schema(table.current_schema())?))
}

/// How floe's Parquet files roll over in the table's data directory: zstd, named
/// `{name_prefix}{uuid}-{n}.parquet`, written for `schema` (data files use the table's schema,
/// delete files their own).
pub(crate) type RollingParquet = RollingFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

pub(crate) fn rolling_parquet(table: &FloeTable, schema: SchemaRef, target_file_size: usize, name_prefix: &str) -> Result<RollingParquet> {
    let props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default())).build();
    Ok(RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(props, schema),
        target_file_size,
        table.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata())?,
        DefaultFileNameGenerator::new(format!("{name_prefix}{}", Uuid::now_v7()), None, DataFileFormat::Parquet),
    ))
}

/// Writes record batches of one partition into data files of `table`.
pub struct DataFileSink {
    inner: Box<dyn IcebergWriter>,
    /// The table's Arrow schema with field ids, which the Parquet writer matches columns by.
    schema: ArrowSchemaRef,
}

impl DataFileSink {
    /// A writer for `table`'s current schema. `partition` is `None` for unpartitioned tables.
    pub async fn new(table: &FloeTable, partition: Option<PartitionKey>, target_file_size: usize) -> Result<Self> {
        Self::named(table, partition, target_file_size, "").await
    }

    /// As [`DataFileSink::new`], with file names starting with `name_prefix` (the compactor marks
    /// its output this way, see [`crate::layout::COMPACTED_FILE_PREFIX`]).
    pub async fn named(table: &FloeTable, partition: Option<PartitionKey>, target_file_size: usize, name_prefix: &str) -> Result<Self> {
        let rolling = rolling_parquet(table, table.current_schema().clone(), target_file_size, name_prefix)?;
        let inner = DataFileWriterBuilder::new(rolling).build(partition).await?;
        Ok(Self { inner: Box::new(inner), schema: table_arrow_schema(table)? })
    }

    /// Writes `batch`, whose columns are the table's. Its schema may lack the field-id metadata
    /// (DataFusion and iceberg's reader drop it); the table's is put back.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
            let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
            self.inner.write(batch).await?;
        }
        Ok(())
    }

    /// Closes the current file and returns every file written, ready to commit.
    pub async fn finish(mut self) -> Result<Vec<DataFile>> {
        Ok(self.inner.close().await?)
    }
}

/// Writes `batches` to new data files of an unpartitioned `table`.
pub async fn write_data_files(table: &FloeTable, batches: impl IntoIterator<Item = RecordBatch>) -> Result<Vec<DataFile>> {
    let mut sink = DataFileSink::new(table, None, DEFAULT_TARGET_FILE_SIZE).await?;
    for batch in batches {
        sink.write(batch).await?;
    }
    sink.finish().await
}
