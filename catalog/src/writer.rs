//! Arrow record batches → Parquet data files with Iceberg field ids, column metrics (value,
//! null counts, lower/upper bounds) and partition values, through iceberg-rust's writer stack.
//! The sink and the compactor both write through here.

use std::sync::Arc;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataFile, DataFileFormat, PartitionKey};
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

/// Writes record batches of one partition into data files of `table`.
pub struct DataFileSink {
    inner: Box<dyn IcebergWriter>,
}

impl DataFileSink {
    /// A writer for `table`'s current schema. `partition` is `None` for unpartitioned tables.
    pub async fn new(table: &FloeTable, partition: Option<PartitionKey>, target_file_size: usize) -> Result<Self> {
        let metadata = table.metadata();
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::default()))
            .build();
        let parquet = ParquetWriterBuilder::new(props, metadata.current_schema().clone());
        let rolling = RollingFileWriterBuilder::new(
            parquet,
            target_file_size,
            table.file_io().clone(),
            DefaultLocationGenerator::new(metadata)?,
            DefaultFileNameGenerator::new(Uuid::now_v7().to_string(), None, DataFileFormat::Parquet),
        );
        let inner = DataFileWriterBuilder::new(rolling).build(partition).await?;
        Ok(Self { inner: Box::new(inner) })
    }

    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() > 0 {
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
