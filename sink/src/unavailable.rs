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

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use floe_catalog::iceberg::expr::{Predicate, Reference};
use floe_catalog::iceberg::spec::{Datum, PrimitiveType, Schema, Type};
use floe_catalog::layout::{identifier_columns, OP_TS};
use floe_catalog::{read, FloeTable};
use serde_json::Value;
use tracing::warn;

use crate::decode::{ChangeEvent, Kind, Op};
use crate::error::{Result, SinkError};

/// Debezium's default `unavailable.value.placeholder`.
pub const DEFAULT_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// The placeholder as each column kind carries it once decoded.
#[derive(Debug, Clone)]
pub struct Placeholder {
    text: String,
    /// Binary columns decode to hex.
    hex: String,
}

impl Placeholder {
    pub fn new(text: &str) -> Self {
        Self { text: text.to_string(), hex: text.bytes().map(|b| format!("{b:02x}")).collect() }
    }

    /// The columns of `event` whose value is the placeholder. Only updates carry one.
    pub fn columns(&self, event: &ChangeEvent) -> Vec<String> {
        if event.op != Op::Update {
            return vec![];
        }
        let is_placeholder = |kind: &Kind, value: &Value| match (kind, value) {
            (Kind::String, Value::String(s)) => *s == self.text,
            (Kind::Bytes, Value::String(s)) => *s == self.hex,
            (Kind::List(element), Value::Array(items)) => {
                element.kind == Kind::String && items.len() == 1 && items[0].as_str() == Some(self.text.as_str())
            }
            _ => false,
        };
        let columns = event.columns.iter().filter(|c| event.row.get(&c.name).is_some_and(|v| is_placeholder(&c.kind, v)));
        columns.map(|c| c.name.clone()).collect()
    }
}

/// Replaces the placeholders of `rows` (canonical table rows, in input order) listed in
/// `partial` as (row index, columns) with the key's previous values.
pub async fn fill(table: &FloeTable, rows: &mut [Value], partial: &[(usize, Vec<String>)]) -> Result<()> {
    let key = identifier_columns(table.current_schema());
    let key_of = |row: &Value| key.iter().map(|k| row[k].to_string()).collect::<Vec<_>>().join("\u{1f}");
    let wanted: HashMap<usize, &Vec<String>> = partial.iter().map(|(i, columns)| (*i, columns)).collect();
    let keys: HashSet<String> = partial.iter().map(|(i, _)| key_of(&rows[*i])).collect();

    // A key's first row in the batch takes its previous values from the table.
    let mut first: HashMap<String, usize> = HashMap::new();
    for (i, row) in rows.iter().enumerate() {
        let k = key_of(row);
        if keys.contains(&k) {
            first.entry(k).or_insert(i);
        }
    }
    let from_table: Vec<usize> = first.values().copied().filter(|i| wanted.contains_key(i)).collect();
    if !from_table.is_empty() {
        let mut columns: Vec<String> = from_table.iter().flat_map(|i| wanted[i].iter().cloned()).collect();
        columns.sort();
        columns.dedup();
        let lookup: Vec<&Value> = from_table.iter().map(|i| &rows[*i]).collect();
        let committed = latest_committed(table, &key, &columns, &lookup, key_of).await?;
        for i in from_table {
            match committed.get(&key_of(&rows[i])) {
                Some(previous) => wanted[&i].iter().for_each(|c| rows[i][c] = previous[c].clone()),
                None => {
                    warn!(table = %table.ident(), key = %key_of(&rows[i]), "unchanged TOASTed value without an earlier row: the placeholder is kept")
                }
            }
        }
    }

    // Later rows take them from the key's previous row in the batch, already whole.
    let mut last: HashMap<String, usize> = HashMap::new();
    for i in 0..rows.len() {
        let k = key_of(&rows[i]);
        if !keys.contains(&k) {
            continue;
        }
        if let (Some(columns), Some(&previous)) = (wanted.get(&i), last.get(&k)) {
            for c in columns.iter() {
                rows[i][c] = rows[previous][c].clone();
            }
        }
        last.insert(k, i);
    }
    Ok(())
}

/// The latest committed values of `columns` for the keys of `rows`, by key text.
async fn latest_committed(
    table: &FloeTable,
    key: &[String],
    columns: &[String],
    rows: &[&Value],
    key_of: impl Fn(&Value) -> String,
) -> Result<HashMap<String, Value>> {
    let wanted: HashSet<String> = rows.iter().map(|r| key_of(r)).collect();
    let mut select: Vec<String> = key.to_vec();
    select.push(OP_TS.to_string());
    select.extend(columns.iter().filter(|c| !key.contains(c)).cloned());
    let filter = key_filter(table.current_schema(), &key[0], rows);
    let mut latest: HashMap<String, (i64, Value)> = HashMap::new();
    for batch in read::scan_rows(table, &select, filter).await? {
        let op_ts = batch.column_by_name(OP_TS).expect("selected").as_primitive::<TimestampMicrosecondType>().clone();
        let mut writer = arrow_json::ArrayWriter::new(Vec::new());
        writer.write(&batch)?;
        writer.finish()?;
        let json: Vec<Value> = serde_json::from_slice(&writer.into_inner())
            .map_err(|e| SinkError::Internal(format!("reading back {}: {e}", table.ident())))?;
        for (i, row) in json.into_iter().enumerate() {
            let k = key_of(&row);
            let ts = if op_ts.is_null(i) { i64::MIN } else { op_ts.value(i) };
            if wanted.contains(&k) && latest.get(&k).is_none_or(|(best, _)| ts > *best) {
                latest.insert(k, (ts, row));
            }
        }
    }
    Ok(latest.into_iter().map(|(k, (_, row))| (k, row)).collect())
}

/// `first_key IN (…)` when the column is an int, long or string, so that files whose
/// statistics exclude every key are skipped; `None` (read everything) for other key types.
fn key_filter(schema: &Schema, column: &str, rows: &[&Value]) -> Option<Predicate> {
    let ty = &schema.field_by_name(column)?.field_type;
    let datum = |v: &Value| -> Option<Datum> {
        match ty.as_ref() {
            Type::Primitive(PrimitiveType::Int) => Some(Datum::int(i32::try_from(v.as_i64()?).ok()?)),
            Type::Primitive(PrimitiveType::Long) => Some(Datum::long(v.as_i64()?)),
            Type::Primitive(PrimitiveType::String) => Some(Datum::string(v.as_str()?)),
            _ => None,
        }
    };
    let datums: Option<Vec<Datum>> = rows.iter().map(|r| datum(&r[column])).collect();
    Some(Reference::new(column).is_in(datums?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Field;
    use serde_json::json;

    fn event(op: Op, row: Value) -> ChangeEvent {
        let text_list = Kind::List(Box::new(Field::new("element", Kind::String, true)));
        let columns = vec![
            Field::new("id", Kind::Long, false),
            Field::new("doc", Kind::String, true),
            Field::new("blob", Kind::Bytes, true),
            Field::new("tags", text_list, true),
            Field::new("note", Kind::String, true),
        ];
        ChangeEvent {
            op,
            columns,
            complete_schema: true,
            key: vec!["id".into()],
            row: row.as_object().unwrap().clone(),
            source_ts_micros: None,
        }
    }

    #[test]
    fn finds_the_placeholder_as_each_kind_carries_it() {
        let p = Placeholder::new("__x");
        let row = json!({"id": 1, "doc": "__x", "blob": "5f5f78", "tags": ["__x"], "note": "kept"});
        assert_eq!(p.columns(&event(Op::Update, row.clone())), vec!["doc", "blob", "tags"]);
        assert!(p.columns(&event(Op::Create, row)).is_empty(), "only updates leave values unchanged");
        let row = json!({"id": 1, "doc": "__x ", "blob": "5f5f", "tags": ["__x", "__x"], "note": null});
        assert!(p.columns(&event(Op::Update, row)).is_empty());
    }
}
