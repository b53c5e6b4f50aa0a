//! floe's table layout: the contract between the sink that writes keyed tables and every
//! reader (views, compactor, outside engines).
//!
//! Each table holds the source columns plus:
//!
//! | column           | type        | meaning                                                    |
//! |------------------|-------------|------------------------------------------------------------|
//! | `_op`            | string      | `c` create, `u` update, `d` delete, `r` snapshot read, `t` truncate |
//! | `_op_ts`         | timestamptz | when the sink produced the row; strictly increasing per table |
//! | `_source_ts`     | timestamptz | the source's change time (Debezium `source.ts_us`)        |
//! | `_src_partition` | int         | input partition (Kafka partition; 0 for a file)            |
//! | `_src_offset`    | long        | input offset (Kafka offset; line number for a file)        |
//!
//! The key columns are the table's Iceberg identifier fields. The **latest record** of a key is
//! its row with the greatest [`RANKING`]; a key is live when that row's `_op` is not `d` or `t`,
//! and rows at or before the table's latest truncate are dead. Views and the compactor both use
//! this one definition.

use std::sync::Arc;

use iceberg::spec::{NestedField, PrimitiveType, Type};

pub const OP: &str = "_op";
pub const OP_TS: &str = "_op_ts";
pub const SOURCE_TS: &str = "_source_ts";
pub const SRC_PARTITION: &str = "_src_partition";
pub const SRC_OFFSET: &str = "_src_offset";

/// Order of a key's records, most significant first; the greatest is the latest.
pub const RANKING: [&str; 3] = [OP_TS, SRC_PARTITION, SRC_OFFSET];

/// `_op` values.
pub const OP_DELETE: &str = "d";
pub const OP_TRUNCATE: &str = "t";

/// Snapshot summary key holding the input positions a commit covers (JSON
/// `{"<topic>/<partition>": last_offset}`).
pub const SUMMARY_POSITIONS: &str = "floe.positions";
/// Snapshot summary key marking a snapshot written by the compactor. Its added files hold at
/// most one row per key, the latest as of its base; readers use that to skip ranking them.
pub const SUMMARY_COMPACTION: &str = "floe.compaction";
/// Snapshot summary key holding the greatest `_op_ts` (microseconds) written so far.
pub const SUMMARY_MAX_OP_TS: &str = "floe.max-op-ts";

/// PostgreSQL's `infinity` in a date column, in days since epoch; `-infinity` is its negation.
/// Iceberg has no infinity, so floe stores the extremes of the integer, as DuckDB does (DuckDB
/// reads them back as `infinity`).
pub const INFINITE_DATE_DAYS: i32 = i32::MAX;
/// PostgreSQL's `infinity` in a timestamp column, in microseconds; `-infinity` is its negation.
pub const INFINITE_TIMESTAMP_MICROS: i64 = i64::MAX;

/// Whether a column is one of floe's metadata columns rather than a source column.
pub fn is_metadata_column(name: &str) -> bool {
    [OP, OP_TS, SOURCE_TS, SRC_PARTITION, SRC_OFFSET].contains(&name)
}

/// The metadata columns, with ids from `next_id`.
pub fn metadata_fields(next_id: &mut i32) -> Vec<Arc<NestedField>> {
    let mut field = |name: &str, ty: PrimitiveType, required: bool| {
        let id = *next_id;
        *next_id += 1;
        Arc::new(NestedField::new(id, name, Type::Primitive(ty), required))
    };
    vec![
        field(OP, PrimitiveType::String, true),
        field(OP_TS, PrimitiveType::Timestamptz, true),
        field(SOURCE_TS, PrimitiveType::Timestamptz, false),
        field(SRC_PARTITION, PrimitiveType::Int, true),
        field(SRC_OFFSET, PrimitiveType::Long, true),
    ]
}

/// Input positions (`"<stream>/<partition>"` → last committed offset).
pub type Positions = std::collections::BTreeMap<String, i64>;

/// The newest value of summary property `key` along the current snapshot's ancestry. Commits
/// that do not carry it (a schema change, a rewrite) do not hide an older one.
pub fn latest_summary_value(table: &crate::FloeTable, key: &str) -> Option<String> {
    let metadata = table.metadata();
    let mut snapshot = table.current_snapshot().cloned();
    while let Some(s) = snapshot {
        if let Some(value) = s.summary().additional_properties.get(key) {
            return Some(value.clone());
        }
        snapshot = s.parent_snapshot_id().and_then(|id| metadata.snapshot_by_id(id).cloned());
    }
    None
}

/// Positions committed to `table` so far.
pub fn committed_positions(table: &crate::FloeTable) -> Positions {
    latest_summary_value(table, SUMMARY_POSITIONS).and_then(|v| serde_json::from_str(&v).ok()).unwrap_or_default()
}

/// The greatest `_op_ts` (microseconds) committed to `table`, if any.
pub fn committed_max_op_ts(table: &crate::FloeTable) -> Option<i64> {
    latest_summary_value(table, SUMMARY_MAX_OP_TS).and_then(|v| v.parse().ok())
}

/// A SQL identifier, double-quoted so case and odd characters survive.
pub fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The table's identifier (key) columns, in schema order.
pub fn identifier_columns(schema: &iceberg::spec::Schema) -> Vec<String> {
    let ids: Vec<i32> = schema.identifier_field_ids().collect();
    schema.as_struct().fields().iter().filter(|f| ids.contains(&f.id)).map(|f| f.name.clone()).collect()
}

/// Key columns of a floe table, `None` when it is not a keyed floe table.
pub fn key_columns(schema: &iceberg::spec::Schema) -> Option<Vec<String>> {
    let keys = identifier_columns(schema);
    (!keys.is_empty() && schema.field_by_name(OP_TS).is_some()).then_some(keys)
}

/// The one definition of "latest record", as SQL over `table` (a quoted, qualified name), with
/// every column of `schema`:
/// - per key, the row with the greatest [`RANKING`];
/// - dropped when it is a delete or truncate, unless `keep_tombstones_after` (micros) is given
///   and the row is newer than that (the compactor keeps recent tombstones for incremental
///   readers);
/// - dropped when older than the table's latest truncate.
///
/// `truncated_at` is the latest truncate's `_op_ts` when the caller has computed it (the
/// compactor does, so the plan has no join); `None` computes it in a subquery (the view).
///
/// `None` for a table without key.
pub fn latest_records_sql(
    table: &str,
    schema: &iceberg::spec::Schema,
    keep_tombstones_after: Option<i64>,
    truncated_at: Option<Option<i64>>,
) -> Option<String> {
    let keys = key_columns(schema)?;
    let columns: Vec<String> = schema.as_struct().fields().iter().map(|f| quote(&f.name)).collect();
    let partition_by = keys.iter().map(|k| quote(k)).collect::<Vec<_>>().join(", ");
    let order_by = RANKING.iter().map(|c| format!("{} DESC", quote(c))).collect::<Vec<_>>().join(", ");
    let (op, op_ts) = (quote(OP), quote(OP_TS));
    let micros = |v: i64| format!("arrow_cast({v}, 'Timestamp(µs, \"+00:00\")')");
    let live = format!("{op} NOT IN ('{OP_DELETE}', '{OP_TRUNCATE}')");
    let kept = match keep_tombstones_after {
        None => live,
        Some(after) => format!("({live} OR {op_ts} > {})", micros(after)),
    };
    let after_truncate = match truncated_at {
        Some(at) => micros(at.unwrap_or(0)),
        None => format!("(SELECT coalesce(max({op_ts}), {}) FROM {table} WHERE {op} = '{OP_TRUNCATE}')", micros(0)),
    };
    Some(format!(
        "SELECT {columns} FROM (\
           SELECT *, row_number() OVER (PARTITION BY {partition_by} ORDER BY {order_by}) AS __floe_rank \
           FROM {table}) ranked \
         WHERE __floe_rank = 1 AND {kept} AND {op_ts} >= {after_truncate}",
        columns = columns.join(", "),
    ))
}

/// SQL for the `_op_ts` (micros) of the latest truncate in `table`, NULL when none.
pub fn latest_truncate_sql(table: &str) -> String {
    format!(
        "SELECT arrow_cast(max({op_ts}), 'Int64') AS truncated_at FROM {table} WHERE {op} = '{OP_TRUNCATE}'",
        op_ts = quote(OP_TS),
        op = quote(OP)
    )
}

/// File-name prefix of the compactor's output. Those files (with their position deletes
/// applied) hold at most one row per key between them, the latest as of the compaction that
/// wrote them; every other data file holds rows appended since, all newer. The mark travels
/// with the file, so it outlives the snapshot that added it.
pub const COMPACTED_FILE_PREFIX: &str = "compacted-";

/// Whether the data file at `path` was written by the compactor.
pub fn is_compaction_output(path: &str) -> bool {
    path.rsplit('/').next().is_some_and(|name| name.starts_with(COMPACTED_FILE_PREFIX))
}

/// A table's live files by role.
#[derive(Debug, Clone, Default)]
pub struct TableFiles {
    /// Compaction output: at most one row per key across them, deletes applied.
    pub compacted: Vec<crate::LiveFile>,
    /// Data files appended by the sink, every row newer than any compacted row.
    pub delta: Vec<crate::LiveFile>,
    /// Position-delete files (over compacted files).
    pub deletes: Vec<crate::LiveFile>,
}

impl TableFiles {
    pub async fn of(table: &crate::FloeTable) -> crate::Result<Self> {
        let mut files = Self::default();
        for file in table.live_files().await? {
            match (file.is_data(), is_compaction_output(file.path())) {
                (false, _) => files.deletes.push(file),
                (true, true) => files.compacted.push(file),
                (true, false) => files.delta.push(file),
            }
        }
        Ok(files)
    }

    pub fn data_files(&self) -> impl Iterator<Item = &crate::LiveFile> {
        self.compacted.iter().chain(&self.delta)
    }
}

/// Paths of `files`.
pub fn paths<'a>(files: impl IntoIterator<Item = &'a crate::LiveFile>) -> std::collections::HashSet<String> {
    files.into_iter().map(|f| f.path().to_string()).collect()
}

/// The latest records of a table split into compaction output and delta ([`TableFiles`]):
/// the latest of the rows appended since, plus the compacted rows whose key they do not touch.
/// Same result as [`latest_records_sql`] over the whole table, without ranking compacted rows:
/// those hold one row per key, and every later row is newer (`_op_ts` only grows).
pub fn latest_records_split_sql(compacted: &str, delta: &str, schema: &iceberg::spec::Schema) -> Option<String> {
    let keys = key_columns(schema)?;
    let delta_latest = latest_records_sql(delta, schema, None, None)?;
    let columns: Vec<String> = schema.as_struct().fields().iter().map(|f| format!("c.{}", quote(&f.name))).collect();
    let same_key = keys.iter().map(|k| format!("d.{k} = c.{k}", k = quote(k))).collect::<Vec<_>>().join(" AND ");
    let (op, op_ts) = (quote(OP), quote(OP_TS));
    Some(format!(
        "{delta_latest} UNION ALL \
         SELECT {columns} FROM {compacted} c \
         WHERE c.{op} NOT IN ('{OP_DELETE}', '{OP_TRUNCATE}') \
           AND c.{op_ts} >= (SELECT coalesce(max({op_ts}), arrow_cast(0, 'Timestamp(µs, \"+00:00\")')) FROM {delta} WHERE {op} = '{OP_TRUNCATE}') \
           AND NOT EXISTS (SELECT 1 FROM {delta} d WHERE {same_key})",
        columns = columns.join(", "),
    ))
}
