//! The latest-record ("current state") view of a keyed table, written in SQL from the shared
//! definition in [`floe_catalog::layout`]: per key, the row with the greatest
//! `(_op_ts, _src_partition, _src_offset)`; keys whose latest row is a delete or a truncate are
//! absent, and so are rows at or before the table's latest truncate. floe's metadata columns
//! are hidden except `_op_ts`.

use floe_catalog::iceberg::spec::Schema;
use floe_catalog::layout::{is_metadata_column, OP, OP_DELETE, OP_TS, OP_TRUNCATE, RANKING};

/// Suffix of the view name: `studio.movies` → `studio.movies_latest`.
pub const LATEST_SUFFIX: &str = "_latest";

pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// Key columns of a table, `None` when it has no identifier fields (not a keyed table).
pub fn key_columns(schema: &Schema) -> Option<Vec<String>> {
    let ids: Vec<i32> = schema.identifier_field_ids().collect();
    let keys: Vec<String> = schema.as_struct().fields().iter().filter(|f| ids.contains(&f.id)).map(|f| f.name.clone()).collect();
    (!keys.is_empty() && schema.field_by_name(OP_TS).is_some()).then_some(keys)
}

/// The `SELECT` of the latest view over `table` (a quoted, qualified name), or `None` for a
/// table without key.
pub fn latest_view_sql(table: &str, schema: &Schema) -> Option<String> {
    let keys = key_columns(schema)?;
    let visible: Vec<String> = schema
        .as_struct()
        .fields()
        .iter()
        .filter(|f| !is_metadata_column(&f.name) || f.name == OP_TS)
        .map(|f| quote(&f.name))
        .collect();
    let partition_by = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let order_by = RANKING.iter().map(|c| format!("{} DESC", quote(c))).collect::<Vec<_>>().join(", ");
    let (op, op_ts) = (quote(OP), quote(OP_TS));
    Some(format!(
        "SELECT {columns} FROM (\
           SELECT *, row_number() OVER (PARTITION BY {partition_by} ORDER BY {order_by}) AS __floe_rank \
           FROM {table}) ranked \
         WHERE __floe_rank = 1 AND {op} NOT IN ('{OP_DELETE}', '{OP_TRUNCATE}') \
           AND {op_ts} > (SELECT coalesce(max({op_ts}), arrow_cast(0, 'Timestamp(µs, \"+00:00\")')) \
                          FROM {table} WHERE {op} = '{OP_TRUNCATE}')",
        columns = visible.join(", "),
    ))
}
