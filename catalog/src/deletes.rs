//! Position-delete files (Iceberg v2): which rows of which data files are gone. An incremental
//! compaction writes them for rows that newer records supersede, instead of rewriting the
//! files those rows live in. Every Iceberg v2 reader applies them (iceberg-rust, PyIceberg,
//! DuckDB, Spark).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use futures::stream::{self, StreamExt, TryStreamExt};
use iceberg::arrow::schema_to_arrow_schema;
use iceberg::spec::{DataContentType, DataFile, NestedField, PrimitiveType, Schema, Type};

use crate::error::{CatalogError, Result};
use crate::read::read_columns;
use crate::table::{FloeTable, LiveFile};

/// Reserved Iceberg field ids of a position-delete file's columns.
pub const FILE_PATH_FIELD_ID: i32 = 2147483546;
pub const POS_FIELD_ID: i32 = 2147483545;

/// Rows to delete: data file path → positions.
pub type PositionDeletes = BTreeMap<String, BTreeSet<i64>>;

fn position_delete_schema() -> Result<Schema> {
    Ok(Schema::builder()
        .with_fields(vec![
            Arc::new(NestedField::required(FILE_PATH_FIELD_ID, "file_path", Type::Primitive(PrimitiveType::String))),
            Arc::new(NestedField::required(POS_FIELD_ID, "pos", Type::Primitive(PrimitiveType::Long))),
        ])
        .build()?)
}

/// Writes `deletes` into one position-delete file of `table`, sorted by path and position as
/// the spec requires. `None` when there is nothing to delete.
pub async fn write_position_deletes(table: &FloeTable, deletes: &PositionDeletes) -> Result<Option<DataFile>> {
    if deletes.values().all(BTreeSet::is_empty) {
        return Ok(None);
    }
    let schema = position_delete_schema()?;
    let arrow_schema = Arc::new(schema_to_arrow_schema(&schema)?);
    let paths: StringArray = deletes.iter().flat_map(|(path, p)| std::iter::repeat_n(Some(path.as_str()), p.len())).collect();
    let positions: Int64Array = deletes.values().flatten().copied().map(Some).collect();
    let batch = RecordBatch::try_new(arrow_schema, vec![Arc::new(paths), Arc::new(positions)])?;

    let rolling = crate::writer::rolling_parquet(table, Arc::new(schema), usize::MAX, "deletes-", &[])?;
    let mut writer = rolling.build();
    writer.write(&None, &batch).await?;
    let spec_id = table.metadata().default_partition_spec_id();
    let mut files = vec![];
    for mut builder in writer.close().await? {
        builder.content(DataContentType::PositionDeletes).partition_spec_id(spec_id);
        files.push(builder.build().map_err(|e| CatalogError::Invalid(format!("position-delete file: {e}")))?);
    }
    match <[DataFile; 1]>::try_from(files) {
        Ok([file]) => Ok(Some(file)),
        Err(files) => Err(CatalogError::Invalid(format!("expected one position-delete file, wrote {}", files.len()))),
    }
}

/// The positions the given position-delete files remove, per data file path.
pub async fn read_position_deletes(table: &FloeTable, files: &[LiveFile]) -> Result<HashMap<String, HashSet<i64>>> {
    let loaded: Vec<Vec<RecordBatch>> = stream::iter(files)
        .map(|f| read_columns(table, f.path(), f.data_file.file_size_in_bytes(), &[FILE_PATH_FIELD_ID, POS_FIELD_ID]))
        .buffer_unordered(8)
        .try_collect()
        .await?;
    let mut deleted: HashMap<String, HashSet<i64>> = HashMap::new();
    for batch in loaded.iter().flatten() {
        let paths = batch.column(0).as_any().downcast_ref::<StringArray>();
        let positions = batch.column(1).as_any().downcast_ref::<Int64Array>();
        let (Some(paths), Some(positions)) = (paths, positions) else {
            return Err(CatalogError::Invalid("position-delete file with unexpected column types".into()));
        };
        for i in 0..batch.num_rows() {
            if paths.is_valid(i) && positions.is_valid(i) {
                deleted.entry(paths.value(i).to_string()).or_default().insert(positions.value(i));
            }
        }
    }
    Ok(deleted)
}
