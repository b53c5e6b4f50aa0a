//! `floe ingest FILE|-`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use floe_catalog::Catalog;
use floe_sink::config::default_config_path;
use floe_sink::source::Source;
use floe_sink::{Control, IngestReport, Ingestor, SinkConfig};

use crate::{EXIT_DEAD_LETTERS, EXIT_PAUSED};

pub async fn run(
    catalog: &dyn Catalog,
    data_dir: &Path,
    input: &Path,
    config: Option<PathBuf>,
    source_name: Option<String>,
) -> Result<ExitCode> {
    let config = load_config(data_dir, config)?;
    let source = floe_sink::source::file::open(input, source_name).with_context(|| format!("opening {}", input.display()))?;
    run_until_done(catalog, config, source).await
}

/// Ingests `source` until it ends or Ctrl-C/SIGTERM, which commit everything read first; then
/// prints the report. Shared by `floe ingest` and `floe sink`.
pub async fn run_until_done(catalog: &dyn Catalog, config: SinkConfig, source: impl Source) -> Result<ExitCode> {
    let progress = crate::progress::spinner("{pos} events ({per_sec})");
    let mut ingestor = Ingestor::new(catalog, config);
    let control = ingestor.control();
    let mut shutdown = crate::shutdown::Shutdown::listen()?;
    tokio::spawn(async move {
        shutdown.requested().await;
        control.send(Control::Shutdown);
    });
    let report = ingestor.run(source, &|n| progress.set_position(n)).await?;
    progress.finish_and_clear();
    print_report(&report);
    if !report.failed_tables.is_empty() {
        let names: Vec<&str> = report.failed_tables.keys().map(String::as_str).collect();
        eprintln!("error: {} table(s) failed and were left for the next run: {}", names.len(), names.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    if !report.paused_tables.is_empty() {
        let names: Vec<&str> = report.paused_tables.keys().map(String::as_str).collect();
        eprintln!("error: {} table(s) paused, their records left in the source: {}; see `floe status`", names.len(), names.join(", "));
        return Ok(ExitCode::from(EXIT_PAUSED));
    }
    Ok(if report.dead_letters > 0 { ExitCode::from(EXIT_DEAD_LETTERS) } else { ExitCode::SUCCESS })
}

/// `--config`, else `<data-dir>/floe.toml` if it exists, else the defaults.
pub fn load_config(data_dir: &Path, explicit: Option<PathBuf>) -> Result<SinkConfig> {
    let path = explicit.or_else(|| Some(default_config_path(data_dir)).filter(|p| p.exists()));
    Ok(match path {
        Some(path) => SinkConfig::load(&path)?,
        None => SinkConfig::default(),
    })
}

fn print_report(report: &IngestReport) {
    println!("events read:        {}", report.events_read);
    println!("already committed:  {}", report.already_committed);
    println!("tombstones:         {}", report.tombstones);
    for (table, rows) in &report.rows {
        println!("rows → {table:<14} {rows}");
    }
    println!("commits:            {}", report.commits);
    println!("schema changes:     {}", report.schema_changes);
    println!("dead letters:       {}", report.dead_letters);
    for ((table, reason), count) in &report.dead_letter_reasons {
        println!("  {count:>8}  {table}: {reason}");
    }
    if report.skipped_failed_table > 0 {
        println!("left for next run:  {} (their table failed)", report.skipped_failed_table);
    }
    if report.skipped_paused_table > 0 {
        println!("left in the source: {} (their table is paused)", report.skipped_paused_table);
    }
    for (table, reason) in &report.paused_tables {
        println!("paused table:       {table}: {reason}");
    }
    for (table, error) in &report.failed_tables {
        println!("failed table:       {table}: {error}");
    }
    if let Some(kib) = peak_memory_kib() {
        println!("peak memory:        {} MiB", kib / 1024);
    }
}

/// The process's peak resident memory (Linux `VmHWM`), to size machines and batches by.
fn peak_memory_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
