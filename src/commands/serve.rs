//! `floe serve`: compacts every keyed table on a cron schedule and exports Prometheus metrics;
//! with a [kafka] section in its config, it runs the Kafka sink beside, and with a [server]
//! section (or --pg-addr/--http-addr) the SQL endpoints, PostgreSQL wire and HTTP. Tables with nothing new since their last
//! compaction are skipped cheaply, so a frequent schedule costs little. Ctrl-C or SIGTERM stops
//! all three: the sink commits what it read, compaction stops between tables' runs, the endpoints
//! stop accepting connections.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_compactor::{compact_table, CompactOptions};
use floe_server::config::ServerConfig;
use floe_sink::source::kafka::KafkaSource;
use floe_sink::SinkConfig;
use tracing::{error, info};

use super::compact::{keyed_tables, print_report};

pub async fn run(
    catalog: &dyn Catalog,
    schedule: &str,
    metrics_addr: SocketAddr,
    options: &CompactOptions,
    sink: Option<(KafkaSource, SinkConfig)>,
    server: Option<ServerConfig>,
) -> Result<ExitCode> {
    let schedule = cron::Schedule::from_str(schedule).with_context(|| {
        format!("--schedule '{schedule}' is not a cron expression (sec min hour day month weekday), e.g. '0 0 3 * * *'")
    })?;
    let metrics = super::sink::serve_metrics(metrics_addr)?;
    let endpoints = match server {
        Some(server) => Some(super::endpoints::Endpoints::bind(catalog, server, std::sync::Arc::new(move || metrics.render())).await?),
        None => None,
    };
    println!("floe serve: metrics on http://{metrics_addr}/metrics, compaction schedule '{schedule}' (UTC)");
    let sink = async {
        match sink {
            Some((source, config)) => {
                println!("floe serve: Kafka sink running");
                super::ingest::run_until_done(catalog, config, source).await
            }
            None => Ok(ExitCode::SUCCESS),
        }
    };
    let sql = async {
        match endpoints {
            Some(endpoints) => endpoints.serve().await,
            None => Ok(()),
        }
    };
    let (compaction, sink, sql) = tokio::join!(compact_on_schedule(catalog, &schedule, options), sink, sql);
    compaction?;
    sql?;
    println!("floe serve: stopped");
    sink
}

async fn compact_on_schedule(catalog: &dyn Catalog, schedule: &cron::Schedule, options: &CompactOptions) -> Result<()> {
    // Listen once, before the first run: a signal that arrives during a compaction is then kept
    // for the next wait instead of lost (a listener only sees signals after it exists).
    let mut shutdown = crate::shutdown::Shutdown::listen()?;
    loop {
        let next = schedule.upcoming(chrono::Utc).next().context("the schedule has no future run")?;
        info!(%next, "next compaction run");
        let wait = (next - chrono::Utc::now()).to_std().unwrap_or_default();
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.requested() => break,
        }
        run_once(catalog, options).await;
    }
    Ok(())
}

async fn run_once(catalog: &dyn Catalog, options: &CompactOptions) {
    let tables = match keyed_tables(catalog).await {
        Ok(tables) => tables,
        Err(e) => return error!(error = %e, "listing tables failed"),
    };
    for ident in tables {
        match compact_table(catalog, &ident, options).await {
            Ok(report) => print_report(&report),
            Err(e) => error!(table = %ident, error = %e, "compaction failed"),
        }
    }
}
