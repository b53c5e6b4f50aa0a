//! The latest-record ("current state") view of a keyed table: the shared definition in
//! [`floe_catalog::layout::latest_records_sql`], with floe's metadata columns hidden except
//! `_op_ts`.

use floe_catalog::iceberg::spec::Schema;
pub use floe_catalog::layout::quote;
use floe_catalog::layout::{is_metadata_column, latest_records_split_sql, latest_records_sql, OP_TS};

/// Suffix of the view name: `studio.movies` → `studio.movies_latest`.
pub const LATEST_SUFFIX: &str = "_latest";

/// The `SELECT` of the latest view over `table` (a quoted, qualified name), or `None` for a
/// table without key.
pub fn latest_view_sql(table: &str, schema: &Schema) -> Option<String> {
    visible(schema, &latest_records_sql(table, schema, None, None)?)
}

/// The latest view of a compacted table, read as its compaction output (`compacted`) and what
/// was appended since (`delta`), both quoted names of scans over those files.
pub fn latest_view_split_sql(compacted: &str, delta: &str, schema: &Schema) -> Option<String> {
    visible(schema, &latest_records_split_sql(compacted, delta, schema)?)
}

fn visible(schema: &Schema, latest: &str) -> Option<String> {
    let visible: Vec<String> =
        schema.as_struct().fields().iter().filter(|f| !is_metadata_column(&f.name) || f.name == OP_TS).map(|f| quote(&f.name)).collect();
    Some(format!("SELECT {} FROM ({latest}) latest", visible.join(", ")))
}
