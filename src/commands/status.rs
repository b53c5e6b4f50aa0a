//! `floe status`: per table, what it holds and how fresh it is: rows, last commit, latest
//! `_op_ts`, dead letters, (with a [kafka] config) how far it trails its partitions, and
//! whether it is paused; the reasons of the paused tables follow the table.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::Result;
use floe_catalog::layout::{committed_max_op_ts, committed_positions};
use floe_catalog::pause::pause_of;
use floe_catalog::Catalog;
use floe_sink::SinkConfig;

pub async fn run(catalog: &dyn Catalog, config: &SinkConfig) -> Result<ExitCode> {
    let dead_letters = dead_letters_by_table(catalog, config).await;
    println!(
        "{:<28} {:>10} {:<20} {:<20} {:>8} {:>12}  paused since",
        "table", "rows", "last commit (UTC)", "latest _op_ts (UTC)", "lag", "dead letters"
    );
    let mut pauses = vec![];
    for namespace in catalog.list_namespaces().await? {
        for ident in catalog.list_tables(&namespace).await? {
            let table = catalog.load_table(&ident).await?;
            let name = ident.to_string();
            let rows = table.current_summary().get("total-records").cloned().unwrap_or_else(|| "0".into());
            let committed = table.current_snapshot().map(|s| format_millis(s.timestamp_ms()));
            let op_ts = committed_max_op_ts(&table).filter(|ts| *ts > 0).map(|ts| format_millis(ts / 1000));
            let lag = match &config.kafka {
                Some(kafka) => lag(kafka, &committed_positions(&table))
                    .map_or_else(|e| format!("? ({e})"), |l| l.map_or("-".into(), |l| l.to_string())),
                None => "-".into(),
            };
            let dead = dead_letters.get(&name).copied().unwrap_or(0);
            let (committed, op_ts) = (committed.unwrap_or_else(|| "-".into()), op_ts.unwrap_or_else(|| "-".into()));
            let pause = pause_of(&table);
            let since = pause.as_ref().map_or("-", |p| p.at.as_str());
            println!("{name:<28} {rows:>10} {committed:<20} {op_ts:<20} {lag:>8} {dead:>12}  {since}");
            pauses.extend(pause.map(|p| (name, p.reason)));
        }
    }
    for (name, reason) in pauses {
        println!("\n{name} is paused: {reason}\n  fix the cause, then `floe resume {name}`");
    }
    Ok(ExitCode::SUCCESS)
}

/// Records in the table's Kafka partitions after its positions; `None` if it has no Kafka
/// positions (a file's table).
fn lag(kafka: &floe_sink::config::KafkaSettings, positions: &floe_catalog::layout::Positions) -> Result<Option<i64>> {
    let partitions: Vec<(String, i32)> = positions
        .keys()
        .filter_map(|key| key.rsplit_once('/'))
        .filter(|(topic, _)| !topic.starts_with("file:") && *topic != "stdin")
        .filter_map(|(topic, partition)| Some((topic.to_string(), partition.parse().ok()?)))
        .collect();
    if partitions.is_empty() {
        return Ok(None);
    }
    let ends = floe_sink::source::kafka::partition_ends(kafka, &partitions)?;
    Ok(Some(ends.iter().map(|(key, end)| (end - 1 - positions.get(key).copied().unwrap_or(-1)).max(0)).sum()))
}

/// Dead letters per target table; empty when there are none (or no dead-letter table yet).
async fn dead_letters_by_table(catalog: &dyn Catalog, config: &SinkConfig) -> BTreeMap<String, i64> {
    let sql = format!("SELECT target_table, count(*) AS n FROM {} GROUP BY target_table", config.dead_letter_table());
    let Ok(batches) = floe_views::query(catalog, &sql).await else { return BTreeMap::new() };
    let rows = floe_views::render(&batches, floe_views::OutputFormat::Json).unwrap_or_default();
    let rows: Vec<serde_json::Value> = serde_json::from_str(&rows).unwrap_or_default();
    rows.iter().filter_map(|r| Some((r["target_table"].as_str()?.to_string(), r["n"].as_i64()?))).collect()
}

fn format_millis(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map_or_else(|| ms.to_string(), |t| t.format("%Y-%m-%d %H:%M:%S").to_string())
}
