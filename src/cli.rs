//! Command-line arguments. Every flag that names a location also reads an environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "floe", version, about = "Change-data-capture into Apache Iceberg, with latest-record views and compaction")]
pub struct Cli {
    /// Directory of the embedded catalog (catalog.db) and warehouse.
    #[arg(long, env = "FLOE_DATA_DIR", default_value = "./floe-data", global = true)]
    pub data_dir: PathBuf,

    /// Catalog database URL (sqlite:// or postgres://) instead of the embedded one; the
    /// warehouse stays under --data-dir.
    #[arg(long, env = "FLOE_CATALOG_URL", global = true)]
    pub catalog_url: Option<String>,

    /// Log filter (tracing EnvFilter syntax), e.g. `info` or `floe_sink=debug`.
    #[arg(long, env = "FLOE_LOG", default_value = "warn", global = true)]
    pub log: String,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest Debezium change events from an NDJSON file, or `-` for stdin.
    ///
    /// Each line is {"topic": …, "key": "<json string>", "value": "<json string>"|null}.
    /// Committed positions are skipped, so re-running the same input changes nothing.
    /// Exits with 3 when it finished but wrote dead letters.
    Ingest {
        /// Input file, or `-` for stdin.
        input: PathBuf,
        /// Sink configuration (TOML). Defaults to <data-dir>/floe.toml when that exists.
        #[arg(long, env = "FLOE_CONFIG")]
        config: Option<PathBuf>,
        /// Name positions are recorded under (default `file:<absolute path>`, or `stdin`).
        #[arg(long)]
        source_name: Option<String>,
    },
    /// Run a read-only SQL query. Tables are `namespace.table`; keyed tables also have
    /// `namespace.table_latest`, their current state.
    Sql {
        query: String,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// List tables with their row and file counts.
    Tables,
    /// Show a table's schema, key, snapshots, rows, files and bytes.
    Describe {
        /// namespace.table
        table: String,
    },
    /// Ingest a bundled sample into the embedded catalog and query it. Needs no service.
    Quickstart,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

impl From<Format> for floe_views::OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => floe_views::OutputFormat::Table,
            Format::Csv => floe_views::OutputFormat::Csv,
            Format::Json => floe_views::OutputFormat::Json,
        }
    }
}
