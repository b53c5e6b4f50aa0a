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
use parquet::schema::types::ColumnPath;
use uuid::Uuid;

use crate::error::Result;
use crate::layout::{OP_TS, SRC_OFFSET};
use crate::table::FloeTable;

/// Default size at which a data file is rolled over to the next one.
pub const DEFAULT_TARGET_FILE_SIZE: usize = 128 * 1024 * 1024;

/// The Arrow schema batches must have to be written to `table` (carries `PARQUET:field_id`).
pub fn table_arrow_schema(table: &FloeTable) -> Result<ArrowSchemaRef> {
    Ok(Arc::new(schema_to_arrow_schema(table.current_schema())?))
}

/// floe's metadata columns with a value per row that no other row has (`_op_ts` rises row by row,
/// offsets follow the input): written plain, without the dictionary the Parquet writer would
/// otherwise build for them, which holds every value once and costs a hash per row. Not
/// `DELTA_BINARY_PACKED`, though smaller: Iceberg's Java vectorized reader (Spark) reads it only
/// since Iceberg 1.10.
const UNIQUE_COLUMNS: [&str; 2] = [OP_TS, SRC_OFFSET];

/// zstd; [`UNIQUE_COLUMNS`] and `plain` without a dictionary; every other column as the
/// Parquet writer chooses (a dictionary, falling back to plain when it grows too large).
fn writer_properties(schema: &iceberg::spec::Schema, plain: &[String]) -> WriterProperties {
    let mut props = WriterProperties::builder().set_compression(Compression::ZSTD(ZstdLevel::default()));
    let plain = UNIQUE_COLUMNS.into_iter().chain(plain.iter().map(String::as_str));
    for name in plain.filter(|name| schema.field_by_name(name).is_some()) {
        props = props.set_column_dictionary_enabled(ColumnPath::from(name), false);
    }
    props.build()
}

/// How floe's Parquet files roll over in the table's data directory: zstd, named
/// `{name_prefix}{uuid}-{n}.parquet`, written for `schema` (data files use the table's schema,
/// delete files their own), the columns named in `plain` without a dictionary.
pub(crate) type RollingParquet = RollingFileWriterBuilder<ParquetWriterBuilder, DefaultLocationGenerator, DefaultFileNameGenerator>;

pub(crate) fn rolling_parquet(
    table: &FloeTable,
    schema: SchemaRef,
    target_file_size: usize,
    name_prefix: &str,
    plain: &[String],
) -> Result<RollingParquet> {
    Ok(RollingFileWriterBuilder::new(
        ParquetWriterBuilder::new(writer_properties(&schema, plain), schema),
        target_file_size,
        table.file_io().clone(),
        DefaultLocationGenerator::new(table.metadata())?,
        DefaultFileNameGenerator::new(format!("{name_prefix}{}", Uuid::now_v7()), None, DataFileFormat::Parquet),
    ))
}

/// Writes record batches of one partition into data files of `table`.
pub struct DataFileSink {
    /// The writer, made on the first rows: which columns get a dictionary depends on them
    /// ([`crate::dictionary`]).
    inner: Option<Box<dyn IcebergWriter>>,
    to_open: ToOpen,
    /// The table's Arrow schema with field ids, which the Parquet writer matches columns by.
    schema: ArrowSchemaRef,
}

/// What the writer is made of.
struct ToOpen {
    table: FloeTable,
    partition: Option<PartitionKey>,
    target_file_size: usize,
    name_prefix: String,
}

impl DataFileSink {
    /// A writer for `table`'s current schema. `partition` is `None` for unpartitioned tables.
    pub async fn new(table: &FloeTable, partition: Option<PartitionKey>, target_file_size: usize) -> Result<Self> {
        Self::named(table, partition, target_file_size, "").await
    }

    /// As [`DataFileSink::new`], with file names starting with `name_prefix` (the compactor marks
    /// its output this way, see [`crate::layout::COMPACTED_FILE_PREFIX`]).
    pub async fn named(table: &FloeTable, partition: Option<PartitionKey>, target_file_size: usize, name_prefix: &str) -> Result<Self> {
        let to_open = ToOpen { table: table.clone(), partition, target_file_size, name_prefix: name_prefix.to_string() };
        Ok(Self { inner: None, to_open, schema: table_arrow_schema(table)? })
    }

    /// Writes `batch`, whose columns are the table's. Its schema may lack the field-id metadata
    /// (DataFusion and iceberg's reader drop it); the table's is put back.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(self.schema.clone(), batch.columns().to_vec())?;
        let inner = match &mut self.inner {
            Some(inner) => inner,
            None => self.inner.insert(self.to_open.open(&crate::dictionary::columns_without_dictionary(&batch)).await?),
        };
        inner.write(batch).await?;
        Ok(())
    }

    /// Closes the current file and returns every file written, ready to commit.
    pub async fn finish(self) -> Result<Vec<DataFile>> {
        match self.inner {
            Some(mut inner) => Ok(inner.close().await?),
            None => Ok(vec![]),
        }
    }
}

impl ToOpen {
    /// The writer, with the columns named in `plain` written without a dictionary.
    async fn open(&self, plain: &[String]) -> Result<Box<dyn IcebergWriter>> {
        let ToOpen { table, partition, target_file_size, name_prefix } = self;
        let rolling = rolling_parquet(table, table.current_schema().clone(), *target_file_size, name_prefix, plain)?;
        Ok(Box::new(DataFileWriterBuilder::new(rolling).build(partition.clone()).await?))
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

#[cfg(test)]
mod tests {
    use arrow_array::{Array, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use bytes::Bytes;
    use iceberg::spec::{NestedField, PrimitiveType, Schema, Type};
    use iceberg::TableCreation;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    use super::*;
    use crate::layout::{metadata_fields, OP, SRC_PARTITION};
    use crate::testing::{ident, test_catalog};
    use crate::Catalog;

    /// The encodings of each column of the Parquet file `bytes`, by name.
    fn encodings(bytes: Bytes) -> Vec<(String, Vec<Encoding>)> {
        let reader = SerializedFileReader::new(bytes).unwrap();
        let group = reader.metadata().row_group(0);
        group.columns().iter().map(|c| (c.column_path().string(), c.encodings().collect())).collect()
    }

    /// `id` (the key) and floe's metadata columns, `rows` rows with rising `_op_ts` and offsets
    /// (`_source_ts` null).
    fn batch(table: &FloeTable, rows: i64) -> RecordBatch {
        let arrow = table_arrow_schema(table).unwrap();
        let columns = arrow
            .fields()
            .iter()
            .map(|field| -> Arc<dyn Array> {
                match field.name().as_str() {
                    "id" => Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % 100))),
                    OP_TS => Arc::new(
                        TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| 1_700_000_000_000_000 + i)).with_timezone("+00:00"),
                    ),
                    SRC_OFFSET => Arc::new(Int64Array::from_iter_values(0..rows)),
                    OP => Arc::new(StringArray::from_iter_values((0..rows).map(|_| "c"))),
                    SRC_PARTITION => Arc::new(Int32Array::from_iter_values((0..rows).map(|_| 0))),
                    _ => arrow_array::new_null_array(field.data_type(), rows as usize),
                }
            })
            .collect();
        RecordBatch::try_new(arrow, columns).unwrap()
    }

    /// The encodings of each column of the one file `batch` is written to.
    async fn written_encodings(table: &FloeTable, batch: RecordBatch) -> Vec<(String, Vec<Encoding>)> {
        let files = write_data_files(table, [batch]).await.unwrap();
        encodings(table.file_io().new_input(files[0].file_path()).unwrap().read().await.unwrap())
    }

    fn has_dictionary(used: &[Encoding]) -> bool {
        used.contains(&Encoding::RLE_DICTIONARY) || used.contains(&Encoding::PLAIN_DICTIONARY)
    }

    #[tokio::test]
    async fn a_column_whose_values_are_all_different_is_written_without_a_dictionary() {
        let test = test_catalog().await;
        let table = orders(&test).await;
        let repeating = batch(&table, 10_000);
        let id = repeating.schema().index_of("id").unwrap();
        let mut columns = repeating.columns().to_vec();
        columns[id] = Arc::new(Int64Array::from_iter_values(0..10_000));
        let unique = RecordBatch::try_new(repeating.schema(), columns).unwrap();

        let id_encodings = |written: Vec<(String, Vec<Encoding>)>| written.into_iter().find(|(name, _)| name == "id").unwrap().1;
        assert!(has_dictionary(&id_encodings(written_encodings(&table, repeating).await)), "a hundred keys: a dictionary");
        let used = id_encodings(written_encodings(&table, unique).await);
        assert!(used.contains(&Encoding::PLAIN) && !has_dictionary(&used), "every key once: plain, {used:?}");
    }

    /// `shop.orders`: `id` (the key) and floe's metadata columns.
    async fn orders(test: &crate::testing::TestCatalog) -> FloeTable {
        let mut next_id = 2;
        let mut fields = vec![Arc::new(NestedField::required(1, "id", Type::Primitive(PrimitiveType::Long)))];
        fields.extend(metadata_fields(&mut next_id));
        let schema = Schema::builder().with_fields(fields).with_identifier_field_ids(vec![1]).build().unwrap();
        let id = ident("shop", "orders");
        test.catalog.create_namespace(id.namespace()).await.unwrap();
        test.catalog.create_table(&id, TableCreation::builder().name("orders".into()).schema(schema).build()).await.unwrap()
    }

    #[tokio::test]
    async fn unique_metadata_columns_are_written_without_a_dictionary_and_read_back_as_written() {
        let test = test_catalog().await;
        let table = orders(&test).await;
        let written = batch(&table, 10_000);

        let files = write_data_files(&table, [written.clone()]).await.unwrap();
        let bytes = table.file_io().new_input(files[0].file_path()).unwrap().read().await.unwrap();

        for (column, used) in encodings(bytes.clone()) {
            let dictionary = has_dictionary(&used);
            match column.as_str() {
                OP_TS | SRC_OFFSET => assert!(used.contains(&Encoding::PLAIN) && !dictionary, "{column}: {used:?}"),
                "id" => assert!(dictionary, "other columns keep the writer's choice: {column}: {used:?}"),
                _ => {}
            }
        }
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap().with_batch_size(written.num_rows()).build().unwrap();
        let read = reader.next().unwrap().unwrap();
        for name in ["id", OP_TS, SRC_OFFSET] {
            assert_eq!(read.column_by_name(name).unwrap().to_data(), written.column_by_name(name).unwrap().to_data(), "{name}");
        }
    }
}
