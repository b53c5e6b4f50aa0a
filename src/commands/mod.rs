//! One module per command. Each returns the process exit code.

mod compact;
mod describe;
mod endpoints;
mod ingest;
mod resume;
mod serve;
mod sink;
mod sql;
mod status;

use std::process::ExitCode;

use anyhow::{Context, Result};
use std::sync::Arc;

use floe_catalog::rest::{Credential, RestCatalog, RestOptions};
use floe_catalog::storage::{self, Warehouse};
use floe_catalog::{Catalog, SqlCatalog};

use crate::cli::{Cli, Command, KafkaArgs};

pub async fn run(mut cli: Cli) -> Result<ExitCode> {
    if let Command::Quickstart = cli.command {
        return crate::quickstart::run(&cli.data_dir).await;
    }
    if let Command::HashPassword = cli.command {
        return hash_password();
    }
    take_catalog_section(&mut cli)?;
    let opened = open_catalog(&cli).await?;
    let catalog = opened.as_ref();
    match cli.command {
        Command::Ingest { input, config, source_name } => ingest::run(catalog, &cli.data_dir, &input, config, source_name).await,
        Command::Sink { config, kafka, metrics_addr } => sink::run(catalog, &cli.data_dir, config, kafka, metrics_addr).await,
        Command::Sql { query, format } => sql::run(catalog, &query, format.into()).await,
        Command::Tables => describe::tables(catalog).await,
        Command::Status { config } => status::run(catalog, &sink::load(&cli.data_dir, config, KafkaArgs::none())?.0).await,
        Command::Resume { tables } => resume::run(catalog, &tables).await,
        Command::Describe { table } => describe::describe(catalog, &table).await,
        Command::Compact { table, all, dry_run, compaction } => compact::run(catalog, table, all, &compaction.options(dry_run)).await,
        Command::Serve { schedule, metrics_addr, endpoints, compaction, config, kafka } => {
            let (config, file) = sink::load(&cli.data_dir, config, kafka)?;
            let server = endpoints::settings(&config, &file, &endpoints)?;
            let sink = if config.kafka.is_some() { Some((sink::connect(&config, &file)?, config)) } else { None };
            serve::run(catalog, &schedule, metrics_addr, &compaction.options(false), sink, server).await
        }
        Command::HashPassword => unreachable!("handled above"),
        Command::Quickstart => unreachable!("handled above"),
    }
}

/// `floe hash-password`: one line of stdin in, its hash out.
fn hash_password() -> Result<ExitCode> {
    let mut password = String::new();
    std::io::stdin().read_line(&mut password).context("reading the password from stdin")?;
    let password = password.trim_end_matches(['\n', '\r']);
    anyhow::ensure!(!password.is_empty(), "no password on stdin: `echo -n 'secret' | floe hash-password`");
    println!("{}", floe_server::auth::hash_password(password));
    Ok(ExitCode::SUCCESS)
}

/// Fills `--catalog-url` and `--warehouse`, when neither the flag nor its variable gave them,
/// from `[catalog]` of the command's `--config`, or of `<data-dir>/floe.toml`.
fn take_catalog_section(cli: &mut Cli) -> Result<()> {
    let explicit = match &cli.command {
        Command::Ingest { config, .. } | Command::Sink { config, .. } | Command::Serve { config, .. } => config.clone(),
        Command::Status { config } => config.clone(),
        _ => None,
    };
    let file = explicit.clone().unwrap_or_else(|| floe_sink::config::default_config_path(&cli.data_dir));
    let section = ingest::load_config(&cli.data_dir, explicit)?.catalog;
    if cli.warehouse.is_none() && section.warehouse.is_some() {
        cli.warehouse_file = Some(file);
    }
    cli.catalog_url = cli.catalog_url.take().or(section.url);
    cli.catalog_warehouse = cli.catalog_warehouse.take().or(section.catalog_warehouse);
    cli.warehouse = cli.warehouse.take().or(section.warehouse);
    if let Some(timeout) = section.storage_retry_timeout {
        cli.warehouse_properties.insert(storage::RETRY_TIMEOUT_MS.into(), timeout.as_millis().to_string());
    }
    if let Some(retries) = section.storage_max_retries {
        cli.warehouse_properties.insert(storage::MAX_RETRIES.into(), retries.to_string());
    }
    Ok(())
}

/// The warehouse `--warehouse` (or its variable, or `[catalog] warehouse`) names, if any. A bad
/// one from the config file is an error naming the file and the key.
fn configured_warehouse(cli: &Cli) -> Result<Option<Warehouse>> {
    let Some(location) = &cli.warehouse else { return Ok(None) };
    let parsed = Warehouse::parse(location, cli.warehouse_properties.clone());
    Ok(Some(match &cli.warehouse_file {
        Some(file) => parsed.map_err(|e| floe_sink::config::ConfigError {
            file: file.display().to_string(),
            key: "catalog.warehouse".into(),
            problem: e.to_string(),
            fix: "write s3://, gs:// or az://bucket/prefix, file:///path or a local directory".into(),
        })?,
        None => parsed.with_context(|| format!("--warehouse {location}"))?,
    }))
}

/// The embedded catalog under `--data-dir`, or the one at `--catalog-url`, with tables in
/// `--warehouse` (default: `<data-dir>/warehouse`).
pub async fn open_catalog(cli: &Cli) -> Result<Arc<dyn Catalog>> {
    if let Some(url) = cli.catalog_url.as_deref().filter(|url| url.starts_with("http://") || url.starts_with("https://")) {
        return open_rest_catalog(cli, url).await;
    }
    let warehouse = match configured_warehouse(cli)? {
        Some(warehouse) => warehouse,
        None => Warehouse::local(&cli.data_dir.join(floe_catalog::sql::WAREHOUSE_DIR))
            .with_context(|| format!("creating the warehouse in {}", cli.data_dir.display()))?,
    };
    match &cli.catalog_url {
        None => SqlCatalog::open_embedded_with(&cli.data_dir, warehouse)
            .await
            .with_context(|| format!("opening the embedded catalog in {}", cli.data_dir.display())),
        Some(url) => SqlCatalog::open_with(url, floe_catalog::sql::DEFAULT_CATALOG_NAME, warehouse)
            .await
            .with_context(|| format!("opening the catalog at {url}")),
    }
    .map(|catalog| catalog.shared())
}

/// The Iceberg REST catalog at `url`, with tables' files in `--warehouse` or the catalog's own.
async fn open_rest_catalog(cli: &Cli, url: &str) -> Result<Arc<dyn Catalog>> {
    let options = RestOptions {
        credential: Credential::from_env()?,
        catalog_warehouse: cli.catalog_warehouse.clone(),
        warehouse: configured_warehouse(cli)?,
        storage: cli.warehouse_properties.clone(),
    };
    let catalog = RestCatalog::open(url, options).await.with_context(|| format!("opening the REST catalog at {url}"))?;
    Ok(Arc::new(catalog))
}
