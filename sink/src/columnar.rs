//! Rows appended straight into Arrow builders typed by the table's schema: no JSON row, no
//! second conversion. One [`RowBuilder`] per table holds the rows of the next batch; a row is
//! checked whole before any column takes it, so a bad value rejects the row and nothing else.
//!
//! Primitive columns have their own builders. Lists, structs and maps (rare in CDC tables) keep
//! their canonical JSON and are decoded by arrow-json when the batch is finished.

use std::sync::Arc;

use hashbrown::HashMap;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, Float32Builder, Float64Builder, Int32Builder, Int64Builder,
    StringBuilder, Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow::datatypes::{DataType, Decimal128Type, FieldRef, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use floe_catalog::layout::{OP, OP_TS, SOURCE_TS, SRC_OFFSET, SRC_PARTITION};

use crate::decode::{Cell, Columns, DecodeError};

/// Where each source column goes, or the name of one that is not a table column.
type Slots = Result<Arc<[usize]>, String>;

/// The rows of one batch, column by column.
pub struct RowBuilder {
    schema: SchemaRef,
    columns: Vec<Column>,
    by_name: HashMap<String, usize>,
    rows: usize,
    /// Raw bytes the rows came from: the batch's size as the input counts it.
    bytes: usize,
    /// The decimal cells of the row being appended, scaled by the check for the push; kept to
    /// reuse its allocation.
    decimals: Vec<i128>,
    /// The last list of source columns mapped by [`Self::slots_of`], and its mapping: records
    /// of one source schema share the list.
    last_slots: Option<(Columns, Slots)>,
    /// Where [`METADATA_COLUMNS`] are, when the schema has them all.
    metadata: Option<[usize; 5]>,
}

/// The columns floe fills on every row of a data table, in the order of
/// [`RowBuilder::metadata_slots`].
pub const METADATA_COLUMNS: [&str; 5] = [OP, OP_TS, SOURCE_TS, SRC_PARTITION, SRC_OFFSET];

impl RowBuilder {
    pub fn new(schema: SchemaRef) -> Self {
        let columns = schema.fields().iter().map(|f| Column::new(f.clone())).collect();
        let by_name: HashMap<String, usize> = schema.fields().iter().enumerate().map(|(i, f)| (f.name().clone(), i)).collect();
        let metadata = METADATA_COLUMNS.iter().map(|name| by_name.get(*name).copied()).collect::<Option<Vec<_>>>();
        let metadata = metadata.and_then(|slots| slots.try_into().ok());
        Self { schema, columns, by_name, rows: 0, bytes: 0, decimals: vec![], last_slots: None, metadata }
    }

    /// The column index of each of [`METADATA_COLUMNS`], looked up once per schema: every row
    /// sets them. `None` when the table lacks one.
    pub fn metadata_slots(&self) -> Option<[usize; 5]> {
        self.metadata
    }

    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The column index of each of `columns`; `Err(name)` names one that is not a column.
    pub fn slots_of(&mut self, columns: &Columns) -> Slots {
        if let Some((last, slots)) = &self.last_slots {
            if Arc::ptr_eq(last, columns) {
                return slots.clone();
            }
        }
        let slots = columns.iter().map(|f| self.index_of(&f.name).ok_or_else(|| f.name.clone())).collect::<Slots>();
        self.last_slots = Some((columns.clone(), slots.clone()));
        slots
    }

    pub fn width(&self) -> usize {
        self.columns.len()
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Appends one row, `cells[i]` to column `i`, and counts `bytes` of input for it. Either
    /// every column takes its value or none does: the cells are taken (`cells` is left empty,
    /// for the next row to reuse), or refused and kept.
    pub fn append(&mut self, cells: &mut Vec<Cell>, bytes: usize) -> Result<(), DecodeError> {
        debug_assert_eq!(cells.len(), self.columns.len());
        self.decimals.clear();
        for (column, cell) in self.columns.iter().zip(cells.iter()) {
            if let Some(decimal) = column.check(cell)? {
                self.decimals.push(decimal);
            }
        }
        let mut decimals = self.decimals.iter().copied();
        for (column, cell) in self.columns.iter_mut().zip(cells.drain(..)) {
            column.push(cell, &mut decimals);
        }
        self.rows += 1;
        self.bytes += bytes;
        Ok(())
    }

    /// The rows appended since the last finish, as one batch; the builder starts empty again.
    pub fn finish(&mut self) -> Result<RecordBatch, ArrowError> {
        let arrays = self.columns.iter_mut().map(Column::finish).collect::<Result<Vec<_>, _>>()?;
        self.rows = 0;
        self.bytes = 0;
        RecordBatch::try_new(self.schema.clone(), arrays)
    }
}

struct Column {
    field: FieldRef,
    builder: Builder,
}

enum Builder {
    Boolean(BooleanBuilder),
    Int32(Int32Builder),
    Int64(Int64Builder),
    Float32(Float32Builder),
    Float64(Float64Builder),
    Utf8(StringBuilder),
    Binary(BinaryBuilder),
    Decimal(Decimal128Builder, u8, i8),
    Date(Date32Builder),
    Time(Time64MicrosecondBuilder),
    Timestamp(TimestampMicrosecondBuilder),
    /// Any other type: canonical JSON values, decoded by arrow-json at finish.
    Json(Vec<Value>),
}

impl Column {
    fn new(field: FieldRef) -> Self {
        Self { builder: Builder::sized(&field, 0, 0), field }
    }

    /// Whether this column takes `cell`; a decimal's unscaled value, which the push takes.
    /// Reasons name the column.
    fn check(&self, cell: &Cell) -> Result<Option<i128>, DecodeError> {
        let name = self.field.name();
        let wrong = |cell: &Cell| DecodeError::new(format!("value {cell:?} does not fit type {}", self.field.data_type())).in_column(name);
        match (&self.builder, cell) {
            (_, Cell::Null) if !self.field.is_nullable() => Err(DecodeError::new("null in a required column").in_column(name)),
            (Builder::Int32(_) | Builder::Date(_), Cell::Int(i)) if i32::try_from(*i).is_err() => {
                Err(DecodeError::new(format!("{i} is out of range for int")).in_column(name))
            }
            (Builder::Decimal(_, p, s), Cell::Decimal(text)) => Ok(Some(parse_decimal(text, *p, *s).map_err(|e| e.in_column(name))?)),
            (Builder::Decimal(_, p, s), Cell::Int(i)) => Ok(Some(parse_decimal(&i.to_string(), *p, *s).map_err(|e| e.in_column(name))?)),
            (_, Cell::Null)
            | (Builder::Boolean(_), Cell::Bool(_))
            | (Builder::Int32(_) | Builder::Date(_) | Builder::Int64(_) | Builder::Time(_) | Builder::Timestamp(_), Cell::Int(_))
            | (Builder::Float32(_) | Builder::Float64(_), Cell::Float(_) | Cell::Int(_))
            | (Builder::Utf8(_), Cell::Text(_) | Cell::Static(_))
            | (Builder::Binary(_), Cell::Bytes(_))
            | (Builder::Json(_), _) => Ok(None),
            (_, cell) => Err(wrong(cell)),
        }
    }

    /// Appends `cell`, which [`Self::check`] accepted; a decimal's value comes from `decimals`.
    fn push(&mut self, cell: Cell, decimals: &mut impl Iterator<Item = i128>) {
        match (&mut self.builder, cell) {
            (Builder::Json(values), cell) => values.push(cell_json(cell)),
            (builder, Cell::Null) => builder.append_null(),
            (Builder::Boolean(b), Cell::Bool(v)) => b.append_value(v),
            (Builder::Int32(b), Cell::Int(v)) => b.append_value(v as i32),
            (Builder::Date(b), Cell::Int(v)) => b.append_value(v as i32),
            (Builder::Int64(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Time(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Timestamp(b), Cell::Int(v)) => b.append_value(v),
            (Builder::Float32(b), Cell::Float(v)) => b.append_value(v as f32),
            (Builder::Float32(b), Cell::Int(v)) => b.append_value(v as f64 as f32),
            (Builder::Float64(b), Cell::Float(v)) => b.append_value(v),
            (Builder::Float64(b), Cell::Int(v)) => b.append_value(v as f64),
            (Builder::Utf8(b), Cell::Text(v)) => b.append_value(v),
            (Builder::Utf8(b), Cell::Static(v)) => b.append_value(v),
            (Builder::Binary(b), Cell::Bytes(v)) => b.append_value(v),
            (Builder::Decimal(b, ..), Cell::Decimal(_) | Cell::Int(_)) => b.append_value(decimals.next().expect("checked")),
            _ => unreachable!("check admits only what push takes"),
        }
    }

    /// The column's array; the builder starts again sized like it, so that the next batch
    /// (alike in size) writes into memory reserved once instead of growing into fresh pages.
    fn finish(&mut self) -> Result<ArrayRef, ArrowError> {
        let data_type = self.field.data_type().clone();
        let data = match &self.builder {
            Builder::Utf8(b) => b.values_slice().len(),
            Builder::Binary(b) => b.values_slice().len(),
            _ => 0,
        };
        let array: ArrayRef = match &mut self.builder {
            Builder::Boolean(b) => Arc::new(b.finish()),
            Builder::Int32(b) => Arc::new(b.finish()),
            Builder::Int64(b) => Arc::new(b.finish()),
            Builder::Float32(b) => Arc::new(b.finish()),
            Builder::Float64(b) => Arc::new(b.finish()),
            Builder::Utf8(b) => Arc::new(b.finish()),
            Builder::Binary(b) => Arc::new(b.finish()),
            Builder::Decimal(b, ..) => Arc::new(b.finish().with_data_type(data_type)),
            Builder::Date(b) => Arc::new(b.finish()),
            Builder::Time(b) => Arc::new(b.finish()),
            Builder::Timestamp(b) => Arc::new(b.finish().with_data_type(data_type)),
            Builder::Json(values) => json_array(&self.field, std::mem::take(values))?,
        };
        self.builder = Builder::sized(&self.field, array.len(), data);
        Ok(array)
    }
}

impl Builder {
    /// A builder for `field`'s type with room for `rows` values (and `data` bytes of strings).
    fn sized(field: &FieldRef, rows: usize, data: usize) -> Self {
        match field.data_type() {
            DataType::Boolean => Builder::Boolean(BooleanBuilder::with_capacity(rows)),
            DataType::Int32 => Builder::Int32(Int32Builder::with_capacity(rows)),
            DataType::Int64 => Builder::Int64(Int64Builder::with_capacity(rows)),
            DataType::Float32 => Builder::Float32(Float32Builder::with_capacity(rows)),
            DataType::Float64 => Builder::Float64(Float64Builder::with_capacity(rows)),
            DataType::Utf8 => Builder::Utf8(StringBuilder::with_capacity(rows, data)),
            DataType::Binary => Builder::Binary(BinaryBuilder::with_capacity(rows, data)),
            DataType::Decimal128(p, s) => Builder::Decimal(Decimal128Builder::with_capacity(rows), *p, *s),
            DataType::Date32 => Builder::Date(Date32Builder::with_capacity(rows)),
            DataType::Time64(TimeUnit::Microsecond) => Builder::Time(Time64MicrosecondBuilder::with_capacity(rows)),
            DataType::Timestamp(TimeUnit::Microsecond, _) => Builder::Timestamp(TimestampMicrosecondBuilder::with_capacity(rows)),
            _ => Builder::Json(Vec::with_capacity(rows)),
        }
    }

    fn append_null(&mut self) {
        match self {
            Builder::Boolean(b) => b.append_null(),
            Builder::Int32(b) => b.append_null(),
            Builder::Int64(b) => b.append_null(),
            Builder::Float32(b) => b.append_null(),
            Builder::Float64(b) => b.append_null(),
            Builder::Utf8(b) => b.append_null(),
            Builder::Binary(b) => b.append_null(),
            Builder::Decimal(b, ..) => b.append_null(),
            Builder::Date(b) => b.append_null(),
            Builder::Time(b) => b.append_null(),
            Builder::Timestamp(b) => b.append_null(),
            Builder::Json(values) => values.push(Value::Null),
        }
    }
}

/// The decimal string `text` as the unscaled value of a `decimal(precision, scale)`, by the
/// rules arrow-json applies to the same text.
fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, DecodeError> {
    arrow::compute::kernels::cast_utils::parse_decimal::<Decimal128Type>(text, precision, scale)
        .map_err(|e| DecodeError::new(format!("decimal {text}: {e}")))
}

/// A cell as the canonical JSON value arrow-json reads.
fn cell_json(cell: Cell) -> Value {
    match cell {
        Cell::Null => Value::Null,
        Cell::Bool(b) => Value::Bool(b),
        Cell::Int(i) => Value::from(i),
        Cell::Float(f) if f.is_finite() => Value::from(f),
        Cell::Float(f) => Value::String(if f.is_nan() {
            "NaN".into()
        } else if f > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        }),
        Cell::Text(s) | Cell::Decimal(s) => Value::String(s),
        Cell::Static(s) => Value::String(s.to_string()),
        Cell::Bytes(b) => Value::String(b.iter().map(|x| format!("{x:02x}")).collect()),
        Cell::Nested(v) => v,
    }
}

/// One column of canonical JSON values, decoded by arrow-json into the field's type.
fn json_array(field: &FieldRef, values: Vec<Value>) -> Result<ArrayRef, ArrowError> {
    let schema = Arc::new(Schema::new(vec![field.clone()]));
    let rows: Vec<Value> = values.into_iter().map(|v| Value::Object([(field.name().clone(), v)].into_iter().collect())).collect();
    let mut decoder = arrow_json::ReaderBuilder::new(schema.clone()).with_batch_size(rows.len().max(1)).build_decoder()?;
    decoder.serialize(&rows)?;
    let batch = decoder.flush()?.unwrap_or_else(|| RecordBatch::new_empty(schema));
    Ok(batch.column(0).clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, AsArray, Int64Array};
    use arrow::datatypes::{Field, Int32Type};

    fn builder() -> RowBuilder {
        let list = DataType::List(Arc::new(Field::new("element", DataType::Int32, true)));
        RowBuilder::new(Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("n", DataType::Int32, true),
            Field::new("price", DataType::Decimal128(8, 2), true),
            Field::new("tags", list, true),
        ])))
    }

    #[test]
    fn a_row_that_does_not_fit_is_rejected_whole() {
        let mut rows = builder();
        rows.append(&mut vec![Cell::Int(1), Cell::Int(5), Cell::Decimal("1.5".into()), Cell::Nested(serde_json::json!([1, 2]))], 10)
            .unwrap();
        let too_big = rows.append(&mut vec![Cell::Int(2), Cell::Int(1 << 40), Cell::Null, Cell::Null], 10).unwrap_err();
        assert!(too_big.to_string().contains("column n"), "{too_big}");
        let no_key = rows.append(&mut vec![Cell::Null, Cell::Null, Cell::Null, Cell::Null], 10).unwrap_err();
        assert!(no_key.to_string().contains("required"), "{no_key}");
        assert!(rows.append(&mut vec![Cell::Int(3), Cell::Text("x".into()), Cell::Null, Cell::Null], 10).is_err());
        rows.append(&mut vec![Cell::Int(4), Cell::Null, Cell::Null, Cell::Null], 7).unwrap();
        assert_eq!((rows.rows(), rows.bytes()), (2, 17));

        let batch = rows.finish().unwrap();
        assert_eq!(batch.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values(), &[1, 4]);
        assert_eq!(batch.column(2).as_primitive::<Decimal128Type>().value(0), 150);
        let tags = batch.column(3).as_list::<i32>();
        assert_eq!(tags.value(0).as_primitive::<Int32Type>().values(), &[1, 2]);
        assert!(tags.is_null(1));
        assert_eq!(rows.rows(), 0, "finish starts the next batch");
    }
}
