//! `floe quickstart`: the whole path on the embedded default, with a sample that ships in the
//! binary: ingest Debezium events, query the latest views, and show where the data lives and how
//! another engine opens it.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Result;
use floe_catalog::SqlCatalog;
use floe_sink::{Ingestor, SinkConfig};
use floe_views::OutputFormat;

/// 31 Debezium JSON events (schemas enabled) for `shop.customers` and `shop.orders`: inserts,
/// updates, deletes with tombstones, a composite key, and a column added mid-stream.
const SAMPLE: &str = include_str!("quickstart/sample.jsonl");

const QUERIES: [(&str, &str); 3] = [
    (
        "Current state of every customer (the latest record per key):",
        "SELECT id, name, balance, tier, _op_ts FROM shop.customers_latest ORDER BY id",
    ),
    (
        "Every change the sink appended, against the current state:",
        "SELECT (SELECT count(*) FROM shop.customers) AS changes, (SELECT count(*) FROM shop.customers_latest) AS live_customers",
    ),
    (
        "Orders with a composite key (customer_id, line):",
        "SELECT customer_id, line, sku, qty FROM shop.orders_latest ORDER BY customer_id, line",
    ),
];

pub async fn run(data_dir: &Path) -> Result<ExitCode> {
    let catalog = SqlCatalog::open_embedded(data_dir).await?;
    println!("== ingest: {} sample events into {}", SAMPLE.lines().count(), data_dir.display());
    let source = floe_sink::source::file::from_reader(Box::new(SAMPLE.as_bytes()), "quickstart-sample".into());
    let report = Ingestor::new(&catalog, SinkConfig::default()).run(source, &|_| {}).await?;
    println!(
        "   {} events read, {} already committed earlier, rows: {:?}, {} schema change(s)\n",
        report.events_read, report.already_committed, report.rows, report.schema_changes
    );
    for (title, sql) in QUERIES {
        println!("== {title}\n   floe sql \"{sql}\"");
        let batches = floe_views::query(&catalog, sql).await?;
        println!("{}", floe_views::render(&batches, OutputFormat::Table)?);
    }
    let dir = std::fs::canonicalize(data_dir)?;
    println!("== where the data lives");
    println!("   catalog:   {}/catalog.db  (Iceberg JDBC layout, catalog name 'floe')", dir.display());
    println!("   warehouse: {}/warehouse/<namespace>/<table>/{{data,metadata}}", dir.display());
    println!("\n== open it from PyIceberg (pip install \"pyiceberg[sql-sqlite,pyarrow]\")");
    println!("   from pyiceberg.catalog.sql import SqlCatalog");
    println!("   catalog = SqlCatalog(\"floe\", uri=\"sqlite:///{0}/catalog.db\", warehouse=\"file://{0}/warehouse\")", dir.display());
    println!("   print(catalog.load_table(\"shop.customers\").scan().to_arrow())");
    Ok(ExitCode::SUCCESS)
}
