//! The sink's Prometheus metrics, in one place. They are recorded through the `metrics` facade;
//! `floe sink --metrics-addr` and `floe serve` install the exporter that serves them.

use std::time::Duration;

/// Records read from the source, decodable or not.
pub fn events_read(count: usize) {
    metrics::counter!("floe_sink_events_total").increment(count as u64);
}

pub fn dead_letter(table: Option<&str>) {
    metrics::counter!("floe_sink_dead_letters_total", "table" => table.unwrap_or("").to_string()).increment(1);
}

/// One commit of `rows` rows to `table`, which took `latency`; `max_op_ts` is the table's
/// latest `_op_ts` (microseconds) after it: the freshness of the table.
pub fn committed(table: &str, rows: u64, latency: Duration, max_op_ts: i64) {
    let table = table.to_string();
    metrics::counter!("floe_sink_commits_total", "table" => table.clone()).increment(1);
    metrics::counter!("floe_sink_rows_total", "table" => table.clone()).increment(rows);
    metrics::histogram!("floe_sink_commit_seconds", "table" => table.clone()).record(latency.as_secs_f64());
    metrics::gauge!("floe_sink_last_op_ts_seconds", "table" => table).set(max_op_ts as f64 / 1e6);
}

/// 1 while `table` is paused (its source changed in a way it cannot follow): alert on it.
pub fn table_paused(table: &str, paused: bool) {
    metrics::gauge!("floe_sink_table_paused", "table" => table.to_string()).set(if paused { 1.0 } else { 0.0 });
}

pub fn table_failed(table: &str) {
    metrics::counter!("floe_sink_table_failures_total", "table" => table.to_string()).increment(1);
}

/// Messages in a partition after the consumer's position, as librdkafka reports it.
pub fn consumer_lag(topic: &str, partition: i32, lag: i64) {
    metrics::gauge!("floe_sink_consumer_lag", "topic" => topic.to_string(), "partition" => partition.to_string()).set(lag as f64);
}
