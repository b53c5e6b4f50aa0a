//! The ingest benches' workload: upserts of one table with five columns besides its `int64`
//! key, over a quarter as many keys as events (creates, then updates), in the shape Debezium
//! 3.x's PostgreSQL connector and JsonConverter write them (`floe_sink::testing::TableEvents`:
//! the whole `source` block, `transaction` and the event's times, members in Debezium's order).

use std::sync::Arc;

use floe_sink::testing::{Column, TableEvents};
use serde_json::{json, Value};

pub fn columns() -> Vec<Column> {
    vec![
        Column::new("name", "string"),
        Column::new("status", "string"),
        Column::new("score", "int32"),
        Column::new("amount", "double"),
        Column::new("active", "boolean"),
    ]
}

/// The values of event `i`, in the order of [`columns`].
pub fn values(i: usize) -> Vec<Value> {
    vec![
        json!(format!("customer {i}")),
        json!(["new", "active", "churned"][i % 3]),
        json!(i as i64 % 10_000),
        json!(i as f64 * 0.25),
        json!(i.is_multiple_of(2)),
    ]
}

/// The generator of the table's events, with or without the Connect schema envelope.
pub fn table(schemas: bool) -> TableEvents {
    let table = TableEvents::new("pg.bench.customers", columns());
    if schemas {
        table
    } else {
        table.without_schemas()
    }
}

/// Event `i` of `n`: its op and key.
pub fn op_and_key(i: usize, n: usize) -> (&'static str, i64) {
    let keys = (n / 4).max(1);
    (if i < keys { "c" } else { "u" }, (i % keys) as i64)
}

/// `n` events as NDJSON lines.
pub fn events(n: usize, schemas: bool) -> Vec<String> {
    let table = table(schemas);
    (0..n)
        .map(|i| {
            let (op, key) = op_and_key(i, n);
            table.upsert(op, key, &values(i))
        })
        .collect()
}

/// The NDJSON text of `lines`, made once for every run over it. Shared, so that a bench frees
/// it after the clock stops (freeing hundreds of megabytes takes a core for tens of
/// milliseconds), and not made again before each run.
pub fn ndjson(lines: &[String]) -> Arc<[u8]> {
    (lines.join("\n") + "\n").into_bytes().into()
}

/// `text` (an [`ndjson`] text) in a file, written once for every run over it (and read from the
/// page cache by each).
pub fn ndjson_file(text: &[u8]) -> tempfile::NamedTempFile {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}
