//! `floe serve`: compacts every keyed table on a cron schedule and exports Prometheus metrics;
//! with a [kafka] section in its config, it runs the Kafka sink beside, and with a [server]
//! section (or --pg-addr) the PostgreSQL wire endpoint. Tables with nothing new since their last
//! compaction are skipped cheaply, so a frequent schedule costs little. Ctrl-C or SIGTERM stops
//! all three: the sink commits what it read, compaction stops between tables' runs, the endpoint
//! stops accepting connections.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_compactor::{compact_table, CompactOptions};
use floe_server::config::ServerConfig;
use floe_server::pg::{Access, PgEndpoint};
use floe_sink::config::ConfigError;
use floe_sink::source::kafka::KafkaSource;
use floe_sink::SinkConfig;
use floe_views::catalog_provider::FloeCatalogProvider;
use tracing::{error, info};

use super::compact::{keyed_tables, print_report};

pub async fn run(
    catalog: &dyn Catalog,
    schedule: &str,
    metrics_addr: SocketAddr,
    options: &CompactOptions,
    sink: Option<(KafkaSource, SinkConfig)>,
    sql: Option<PgEndpoint>,
) -> Result<ExitCode> {
    let schedule = cron::Schedule::from_str(schedule).with_context(|| {
        format!("--schedule '{schedule}' is not a cron expression (sec min hour day month weekday), e.g. '0 0 3 * * *'")
    })?;
    super::sink::serve_metrics(metrics_addr)?;
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
        let Some(endpoint) = sql else { return Ok(()) };
        println!("floe serve: Postgres wire on {}", endpoint.local_addr()?);
        let mut shutdown = crate::shutdown::Shutdown::listen()?;
        endpoint.serve(shutdown.requested()).await;
        anyhow::Ok(())
    };
    let (compaction, sink, sql) = tokio::join!(compact_on_schedule(catalog, &schedule, options), sink, sql);
    compaction?;
    sql?;
    println!("floe serve: stopped");
    sink
}

/// The Postgres wire endpoint, bound, when the config has [server] or `pg_addr` is given.
pub async fn pg_endpoint(
    catalog: &dyn Catalog,
    config: &SinkConfig,
    file: &str,
    pg_addr: Option<SocketAddr>,
) -> Result<Option<PgEndpoint>> {
    if config.server.is_none() && pg_addr.is_none() {
        return Ok(None);
    }
    let server = ServerConfig::from_toml(&config.server.clone().unwrap_or_default(), &config.users, &config.grants)
        .map_err(|e| ConfigError { file: file.to_string(), key: e.key, problem: e.problem, fix: e.fix })?;
    let access = if server.allow_anonymous { Access::Anonymous } else { Access::Users(server.users.into(), server.grants.into()) };
    let partitions = std::thread::available_parallelism().map_or(1, usize::from);
    let provider = FloeCatalogProvider::new(catalog.shared(), partitions);
    provider.refresh().await?;
    let addr = pg_addr.unwrap_or(server.pg_addr);
    let endpoint = PgEndpoint::bind(addr, provider.into(), access).await.with_context(|| format!("listening on {addr} (Postgres wire)"))?;
    Ok(Some(endpoint))
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
