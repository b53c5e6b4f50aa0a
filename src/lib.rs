//! # floe
//!
//! The `floe` command line: wires the catalog, sink, compactor and views crates together.
//! `main.rs` only calls [`main`], so tests and benches reach everything through this crate.

pub mod cli;
pub mod commands;
pub mod progress;
pub mod quickstart;
pub mod shutdown;

pub use floe_catalog as catalog;
pub use floe_sink as sink;
pub use floe_views as views;

use std::process::ExitCode;

use clap::Parser;

/// Exit code of an ingest that finished but wrote dead letters.
pub const EXIT_DEAD_LETTERS: u8 = 3;
/// Exit code of an ingest that finished with a paused table (see `floe status`).
pub const EXIT_PAUSED: u8 = 4;

pub fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    init_logging(&cli.log);
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // Colour codes only for a terminal: in a file or a log collector they are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi).init();
}
