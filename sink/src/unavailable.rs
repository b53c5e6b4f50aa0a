//! Unchanged TOASTed values. PostgreSQL does not log a large (TOASTed) value that an update left
//! unchanged, unless the table has `REPLICA IDENTITY FULL`, so Debezium sends a placeholder for
//! it (`unavailable.value.placeholder`, default `__debezium_unavailable_value`; for `bytea` its
//! bytes, for a text array a one-element array of it). The value is the key's previous one.
//!
//! floe fills it in before writing, so every stored row is whole and every reader sees the real
//! value: from the key's previous row in the same batch, else from the key's latest committed
//! row. The lookup only runs for batches that carry a placeholder, and reads only the files whose
//! statistics may hold the keys.

use std::collections::{HashMap, HashSet};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::{cast, interleave};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use floe_catalog::iceberg::expr::{Predicate, Reference};
use floe_catalog::iceberg::spec::{Datum, PrimitiveType, Schema, Type};
use floe_catalog::layout::{identifier_columns, OP_TS};
use floe_catalog::{read, FloeTable};
use serde_json::Value;
use tracing::warn;

use crate::decode::{Cell, Kind, Op};
use crate::error::Result;

/// Debezium's default `unavailable.value.placeholder`.
pub const DEFAULT_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// The placeholder as each column kind carries it once decoded.
#[derive(Debug, Clone)]
pub struct Placeholder {
    text: String,
}

impl Placeholder {
    pub fn new(text: &str) -> Self {
        Self { text: text.to_string() }
    }

    /// Whether the cell of an `op` change in a column of `kind` is the placeholder. Only
    /// updates carry one.
    pub fn is_placeholder(&self, op: Op, kind: &Kind, cell: &Cell) -> bool {
        if op != Op::Update {
            return false;
        }
        match (kind, cell) {
            (Kind::String, Cell::Text(s)) => *s == self.text,
            (Kind::Bytes, Cell::Bytes(b)) => *b == self.text.as_bytes(),
            (Kind::List(element), Cell::Nested(Value::Array(items))) => {
                element.kind == Kind::String && items.len() == 1 && items[0].as_str() == Some(self.text.as_str())
            }
            _ => false,
        }
    }
}

/// Replaces the placeholders of `batch` (rows in input order) listed in `partial` as (row,
/// column indices) with the key's previous values.
pub async fn fill(table: &FloeTable, batch: RecordBatch, partial: &[(usize, Vec<usize>)]) -> Result<RecordBatch> {
    let key = identifier_columns(table.current_schema());
    let keys = row_keys(&batch, &key)?;
    let marked: HashMap<usize, &Vec<usize>> = partial.iter().map(|(i, columns)| (*i, columns)).collect();
    let wanted: HashSet<&str> = partial.iter().map(|(i, _)| keys[*i].as_str()).collect();

    // A key's first row in the batch takes its previous values from the table.
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, k) in keys.iter().enumerate() {
        if wanted.contains(k.as_str()) {
            first.entry(k).or_insert(i);
        }
    }
    let from_table: Vec<&str> = first.iter().filter(|(_, i)| marked.contains_key(i)).map(|(k, _)| *k).collect();
    let mut columns: Vec<usize> = partial.iter().flat_map(|(_, c)| c.iter().copied()).collect();
    columns.sort_unstable();
    columns.dedup();
    let names: Vec<String> = columns.iter().map(|c| batch.schema().field(*c).name().clone()).collect();
    let committed = if from_table.is_empty() { Committed::default() } else { latest_committed(table, &key, &names, &from_table).await? };
    let missing: HashSet<&str> = from_table.iter().filter(|k| !committed.latest.contains_key(**k)).copied().collect();
    for k in &missing {
        warn!(table = %table.ident(), key = %k, "unchanged TOASTed value without an earlier row: the placeholder is kept");
    }

    let mut arrays = batch.columns().to_vec();
    for (column, name) in columns.iter().zip(&names) {
        let own = batch.column(*column).clone();
        let mut sources: Vec<ArrayRef> = vec![own.clone()];
        for scanned in &committed.batches {
            let array = scanned.column_by_name(name).expect("selected");
            sources.push(cast(array, own.data_type())?);
        }
        // Later rows take them from the key's previous row in the batch, already whole.
        let mut picks: Vec<(usize, usize)> = (0..batch.num_rows()).map(|r| (0, r)).collect();
        let mut last: HashMap<&str, usize> = HashMap::new();
        for (r, k) in keys.iter().enumerate() {
            if !wanted.contains(k.as_str()) {
                continue;
            }
            if marked.get(&r).is_some_and(|c| c.contains(column)) {
                match last.get(k.as_str()) {
                    Some(&previous) => picks[r] = picks[previous],
                    None => {
                        if let Some(&(b, row)) = committed.latest.get(k.as_str()) {
                            picks[r] = (b + 1, row);
                        }
                    }
                }
            }
            last.insert(k, r);
        }
        let refs: Vec<&dyn Array> = sources.iter().map(|a| a.as_ref()).collect();
        arrays[*column] = interleave(&refs, &picks)?;
    }
    Ok(RecordBatch::try_new(batch.schema(), arrays)?)
}

/// Each row's key as text (key columns joined), the same for batch and table rows.
fn row_keys(batch: &RecordBatch, key: &[String]) -> Result<Vec<String>> {
    let options = FormatOptions::default();
    let formatters = key
        .iter()
        .map(|k| ArrayFormatter::try_new(batch.column_by_name(k).expect("key column").as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows()).map(|r| formatters.iter().map(|f| f.value(r).to_string()).collect::<Vec<_>>().join("\u{1f}")).collect())
}

/// Scanned table rows, and where each wanted key's latest one is: (batch, row).
#[derive(Default)]
struct Committed {
    batches: Vec<RecordBatch>,
    latest: HashMap<String, (usize, usize)>,
}

/// The latest committed rows (key, `_op_ts` and `columns`) of the keys `wanted`.
async fn latest_committed(table: &FloeTable, key: &[String], columns: &[String], wanted: &[&str]) -> Result<Committed> {
    let mut select: Vec<String> = key.to_vec();
    select.push(OP_TS.to_string());
    select.extend(columns.iter().filter(|c| !key.contains(c)).cloned());
    let filter = if key.len() == 1 { key_filter(table.current_schema(), &key[0], wanted) } else { None };
    let batches = read::scan_rows(table, &select, filter).await?;
    let wanted: HashSet<&str> = wanted.iter().copied().collect();
    let mut best: HashMap<String, (i64, usize, usize)> = HashMap::new();
    for (b, scanned) in batches.iter().enumerate() {
        let op_ts = scanned.column_by_name(OP_TS).expect("selected").as_primitive::<TimestampMicrosecondType>();
        for (row, k) in row_keys(scanned, key)?.into_iter().enumerate() {
            let ts = if op_ts.is_null(row) { i64::MIN } else { op_ts.value(row) };
            if wanted.contains(k.as_str()) && best.get(&k).is_none_or(|(t, ..)| ts > *t) {
                best.insert(k, (ts, b, row));
            }
        }
    }
    Ok(Committed { batches, latest: best.into_iter().map(|(k, (_, b, row))| (k, (b, row))).collect() })
}

/// `key IN (…)` when the key is one int, long or string column, so that files whose statistics
/// exclude every key are skipped; `None` (read everything) for other key types.
fn key_filter(schema: &Schema, column: &str, keys: &[&str]) -> Option<Predicate> {
    let ty = &schema.field_by_name(column)?.field_type;
    let datum = |k: &str| -> Option<Datum> {
        match ty.as_ref() {
            Type::Primitive(PrimitiveType::Int) => Some(Datum::int(k.parse::<i32>().ok()?)),
            Type::Primitive(PrimitiveType::Long) => Some(Datum::long(k.parse::<i64>().ok()?)),
            Type::Primitive(PrimitiveType::String) => Some(Datum::string(k)),
            _ => None,
        }
    };
    let datums: Option<Vec<Datum>> = keys.iter().map(|k| datum(k)).collect();
    Some(Reference::new(column).is_in(datums?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Field;
    use serde_json::json;

    #[test]
    fn finds_the_placeholder_as_each_kind_carries_it() {
        let p = Placeholder::new("__x");
        let text_list = Kind::List(Box::new(Field::new("element", Kind::String, true)));
        let update = Op::Update;
        assert!(p.is_placeholder(update, &Kind::String, &Cell::Text("__x".into())));
        assert!(p.is_placeholder(update, &Kind::Bytes, &Cell::Bytes(b"__x".to_vec())));
        assert!(p.is_placeholder(update, &text_list, &Cell::Nested(json!(["__x"]))));
        assert!(!p.is_placeholder(Op::Create, &Kind::String, &Cell::Text("__x".into())), "only updates leave values unchanged");
        assert!(!p.is_placeholder(update, &Kind::String, &Cell::Text("__x ".into())));
        assert!(!p.is_placeholder(update, &Kind::Bytes, &Cell::Bytes(b"__".to_vec())));
        assert!(!p.is_placeholder(update, &text_list, &Cell::Nested(json!(["__x", "__x"]))));
        assert!(!p.is_placeholder(update, &Kind::String, &Cell::Null));
    }
}
