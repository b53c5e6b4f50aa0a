//! `floe sink`: the long-running Kafka sink.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use floe_catalog::Catalog;
use floe_sink::config::default_config_path;
use floe_sink::SinkConfig;

use crate::cli::KafkaArgs;

pub async fn run(catalog: &dyn Catalog, data_dir: &Path, config: Option<PathBuf>, overrides: KafkaArgs) -> Result<ExitCode> {
    let path = config.unwrap_or_else(|| default_config_path(data_dir));
    let file = path.display().to_string();
    let mut config = if path.exists() { SinkConfig::load(&path)? } else { SinkConfig::default() };
    overrides.apply(&mut config, &file)?;
    let source = floe_sink::source::kafka::connect(config.kafka(&file)?)?;
    super::ingest::run_until_done(catalog, config, source).await
}
