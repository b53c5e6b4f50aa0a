//! A table's key columns and a byte encoding of key values (arrow's row format) that compares
//! equal exactly when the keys do, and sorts like the keys, whatever file (and file schema) the
//! values were read from.

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::error::DataFusionError;
use floe_catalog::layout::key_columns;
use floe_catalog::writer::table_arrow_schema;
use floe_catalog::FloeTable;

use crate::error::{CompactError, Result};

pub(crate) struct KeyColumns {
    pub names: Vec<String>,
    pub field_ids: Vec<i32>,
    types: Vec<DataType>,
    converter: RowConverter,
}

impl KeyColumns {
    pub fn new(table: &FloeTable) -> Result<Self> {
        let schema = table.current_schema();
        let names = key_columns(schema).ok_or_else(|| CompactError::NotKeyed(table.ident().to_string()))?;
        let arrow_schema = table_arrow_schema(table)?;
        let mut field_ids = vec![];
        let mut types = vec![];
        for name in &names {
            field_ids.push(schema.field_by_name(name).expect("key column exists").id);
            types.push(arrow_schema.field_with_name(name).map_err(DataFusionError::from)?.data_type().clone());
        }
        let converter = RowConverter::new(types.iter().cloned().map(SortField::new).collect()).map_err(DataFusionError::from)?;
        Ok(Self { names, field_ids, types, converter })
    }

    /// Encoded keys of the rows of `columns` (key columns, in key order), cast to the table's
    /// current key types first (an older file may hold a narrower type).
    pub fn encode(&self, columns: &[ArrayRef]) -> Result<Rows> {
        let cast: Vec<ArrayRef> =
            columns.iter().zip(&self.types).map(|(c, t)| cast(c, t)).collect::<Result<_, _>>().map_err(DataFusionError::from)?;
        Ok(self.converter.convert_columns(&cast).map_err(DataFusionError::from)?)
    }
}
