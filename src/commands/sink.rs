//! `floe sink`: the long-running Kafka sink.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_sink::config::default_config_path;
use floe_sink::source::kafka::KafkaSource;
use floe_sink::SinkConfig;

use crate::cli::KafkaArgs;

pub async fn run(
    catalog: &dyn Catalog,
    data_dir: &Path,
    config: Option<PathBuf>,
    overrides: KafkaArgs,
    metrics_addr: Option<SocketAddr>,
) -> Result<ExitCode> {
    if let Some(addr) = metrics_addr {
        serve_metrics(addr)?;
    }
    let (config, file) = load(data_dir, config, overrides)?;
    let source = connect(&config, &file)?;
    super::ingest::run_until_done(catalog, config, source).await
}

/// The config (`--config`, else `<data-dir>/floe.toml` if it exists) with the flags over it,
/// and the file it came from.
pub fn load(data_dir: &Path, explicit: Option<PathBuf>, overrides: KafkaArgs) -> Result<(SinkConfig, String)> {
    let file = explicit.clone().unwrap_or_else(|| default_config_path(data_dir)).display().to_string();
    let mut config = super::ingest::load_config(data_dir, explicit)?;
    overrides.apply(&mut config, &file)?;
    Ok((config, file))
}

/// The Kafka source of the config's [kafka] section (an error that says what to add if none).
pub fn connect(config: &SinkConfig, file: &str) -> Result<KafkaSource> {
    Ok(floe_sink::source::kafka::connect(config.kafka(file)?)?)
}

/// Serves the Prometheus metrics at http://<addr>/metrics; the handle renders them for others
/// (the HTTP endpoint's `/metrics`).
pub fn serve_metrics(addr: SocketAddr) -> Result<metrics_exporter_prometheus::PrometheusHandle> {
    let (recorder, exporter) = metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .build()
        .with_context(|| format!("serving metrics on {addr}"))?;
    let handle = recorder.handle();
    metrics::set_global_recorder(recorder).context("a metrics recorder was installed already")?;
    tokio::spawn(async move {
        if let Err(e) = exporter.await {
            tracing::error!(%addr, error = ?e, "the metrics endpoint stopped");
        }
    });
    Ok(handle)
}
