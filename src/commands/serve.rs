//! `floe serve`: compacts every keyed table on a cron schedule and exports Prometheus metrics.
//! Tables with nothing new since their last compaction are skipped cheaply, so a frequent
//! schedule costs little. Stops on Ctrl-C or SIGTERM between compactions.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_compactor::{compact_table, CompactOptions};
use tracing::{error, info};

use super::compact::{keyed_tables, print_report};

pub async fn run(catalog: &dyn Catalog, schedule: &str, metrics_addr: SocketAddr, options: &CompactOptions) -> Result<ExitCode> {
    let schedule = cron::Schedule::from_str(schedule).with_context(|| {
        format!("--schedule '{schedule}' is not a cron expression (sec min hour day month weekday), e.g. '0 0 3 * * *'")
    })?;
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(metrics_addr)
        .install()
        .with_context(|| format!("serving metrics on {metrics_addr}"))?;
    println!("floe serve: metrics on http://{metrics_addr}/metrics, compaction schedule '{schedule}' (UTC)");
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
    println!("floe serve: stopped");
    Ok(ExitCode::SUCCESS)
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
