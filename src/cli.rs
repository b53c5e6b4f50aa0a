//! Command-line arguments. Every flag that names a location also reads an environment variable.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "floe", version, about = "Change-data-capture into Apache Iceberg, with latest-record views and compaction")]
pub struct Cli {
    /// Directory of the embedded catalog (catalog.db) and warehouse.
    #[arg(long, env = "FLOE_DATA_DIR", default_value = "./floe-data", global = true)]
    pub data_dir: PathBuf,

    /// Catalog database URL (sqlite:// or postgres://) instead of the embedded one.
    #[arg(long, env = "FLOE_CATALOG_URL", global = true)]
    pub catalog_url: Option<String>,

    /// Which warehouse of an Iceberg REST catalog (`--catalog-url http(s)://…`) to use, sent as
    /// its `warehouse` parameter: Polaris's catalog name, Lakekeeper's warehouse name.
    #[arg(long, env = "FLOE_CATALOG_WAREHOUSE", global = true)]
    pub catalog_warehouse: Option<String>,

    /// Where new tables' files go: `s3://bucket/prefix` (AWS, or an S3-compatible server at
    /// $AWS_ENDPOINT_URL; credentials and region from the standard AWS environment),
    /// `gs://bucket/prefix` (GOOGLE_* environment), `az://container/prefix` or
    /// `abfss://container@account.dfs.core.windows.net/prefix` (AZURE_* environment),
    /// `file:///path` or a local path. Default: <data-dir>/warehouse.
    #[arg(long, env = "FLOE_WAREHOUSE", global = true)]
    pub warehouse: Option<String>,

    /// The warehouse's storage properties, from `[catalog]` of the config file.
    #[arg(skip)]
    pub warehouse_properties: std::collections::HashMap<String, String>,

    /// The config file `warehouse` came from, when neither the flag nor its variable gave it.
    #[arg(skip)]
    pub warehouse_file: Option<PathBuf>,

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
    /// Exits with 3 when it finished but wrote dead letters, 4 when a table is paused.
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
    /// Run the Kafka sink: consume the configured topics as one member of a consumer group and
    /// append each change to its table, exactly once, until Ctrl-C or SIGTERM.
    ///
    /// Reads the [kafka] section of the config file; the flags below override it. Each
    /// partition resumes after the offset its table last committed.
    Sink {
        /// Sink configuration (TOML). Defaults to <data-dir>/floe.toml.
        #[arg(long, env = "FLOE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Serve Prometheus metrics (events, commits, lag per partition…) at
        /// http://<addr>/metrics.
        #[arg(long, env = "FLOE_METRICS_ADDR")]
        metrics_addr: Option<std::net::SocketAddr>,
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
    /// Per table: rows, last commit, latest _op_ts, Kafka lag (with a [kafka] config), dead
    /// letters, and whether it is paused (and why).
    Status {
        /// Configuration (TOML), for the Kafka brokers and the dead-letter table. Defaults to
        /// <data-dir>/floe.toml when that exists.
        #[arg(long, env = "FLOE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Resume tables paused by an incompatible change of their source. Fix the cause first
    /// (e.g. `on_incompatible = "dead_letter"` for the table in the config); the next run of
    /// the sink takes the table's records up again from its committed positions.
    Resume {
        /// namespace.table, one or more.
        #[arg(required = true)]
        tables: Vec<String>,
    },
    /// Show a table's schema, key, snapshots, rows, files and bytes.
    Describe {
        /// namespace.table
        table: String,
    },
    /// Compact keyed tables: keep only the latest record per key, atomically.
    ///
    /// Skips tables with nothing new since their last compaction. Afterwards, snapshots older
    /// than --snapshot-retention are expired and files no snapshot references are deleted.
    Compact {
        /// namespace.table; omit with --all.
        table: Option<String>,
        /// Compact every keyed table.
        #[arg(long, conflicts_with = "table")]
        all: bool,
        /// Print the plan (files, rows, bytes) without rewriting anything.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        compaction: CompactionArgs,
    },
    /// Run floe's scheduled work: compact every keyed table on a cron schedule, and serve
    /// Prometheus metrics at http://<metrics-addr>/metrics. With a [kafka] section in the
    /// config (or the Kafka flags), run the Kafka sink beside, as `floe sink` does. With a
    /// [server] section (or --pg-addr), serve SQL over the PostgreSQL wire protocol.
    Serve {
        /// Configuration (TOML). Defaults to <data-dir>/floe.toml when that exists.
        #[arg(long, env = "FLOE_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        kafka: KafkaArgs,
        /// Compaction schedule, a cron expression with seconds (sec min hour day month weekday),
        /// evaluated in UTC. Default: daily at 03:00.
        #[arg(long, default_value = "0 0 3 * * *")]
        schedule: String,
        /// Address of the Prometheus metrics endpoint.
        #[arg(long, env = "FLOE_METRICS_ADDR", default_value = "127.0.0.1:9464")]
        metrics_addr: std::net::SocketAddr,
        #[command(flatten)]
        endpoints: EndpointArgs,
        #[command(flatten)]
        compaction: CompactionArgs,
    },
    /// Print a password hash for a [[users]] entry of the SQL endpoint. Reads the password from
    /// stdin (one line), so it stays out of shell history.
    HashPassword,
    /// Ingest a bundled sample into the embedded catalog and query it. Needs no service.
    Quickstart,
}

/// Flags that override the SQL endpoints' addresses in the config file's [server] section.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct EndpointArgs {
    /// Serve SQL over the PostgreSQL wire protocol at this address (port 0: any free port,
    /// printed at start). Overrides [server] pg_addr; the endpoints run when [server] or an
    /// address flag is set. Users and grants come from the config's [[users]], [[grants]].
    #[arg(long, env = "FLOE_PG_ADDR")]
    pub pg_addr: Option<std::net::SocketAddr>,
    /// Serve SQL over HTTP (POST /sql, GET /tables) at this address (port 0: any free port,
    /// printed at start). Overrides [server] http_addr; runs with the Postgres endpoint.
    #[arg(long, env = "FLOE_HTTP_ADDR")]
    pub http_addr: Option<std::net::SocketAddr>,
    /// Serve Arrow Flight SQL (ADBC, JDBC's Flight SQL driver) at this address (port 0: any
    /// free port, printed at start). Overrides [server] flight_addr; runs with the others.
    #[arg(long, env = "FLOE_FLIGHT_ADDR")]
    pub flight_addr: Option<std::net::SocketAddr>,
}

impl EndpointArgs {
    pub fn any(&self) -> bool {
        self.pg_addr.is_some() || self.http_addr.is_some() || self.flight_addr.is_some()
    }
}

/// Flags (and `FLOE_KAFKA_*` variables) that override the config file's [kafka] section.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers, host:port[,host:port…].
    #[arg(long, env = "FLOE_KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// Consumer group; sinks with one group share the partitions.
    #[arg(long, env = "FLOE_KAFKA_GROUP_ID")]
    pub group_id: Option<String>,
    /// Topics to read, comma-separated.
    #[arg(long, env = "FLOE_KAFKA_TOPICS", value_delimiter = ',')]
    pub topics: Vec<String>,
}

impl KafkaArgs {
    /// No overrides.
    pub fn none() -> Self {
        Self { brokers: None, group_id: None, topics: vec![] }
    }

    /// Puts the given flags over the file's settings; a section made only from flags needs at
    /// least the brokers, the group and the topics.
    pub fn apply(self, config: &mut floe_sink::SinkConfig, file: &str) -> Result<(), floe_sink::config::ConfigError> {
        if self.brokers.is_none() && self.group_id.is_none() && self.topics.is_empty() {
            return Ok(());
        }
        let mut kafka = config.kafka.take().unwrap_or_else(|| floe_sink::config::KafkaSettings {
            brokers: String::new(),
            group_id: String::new(),
            topics: vec![],
            topic_pattern: None,
            connect_timeout: std::time::Duration::from_secs(30),
            commit_interval: None,
            properties: Default::default(),
        });
        kafka.brokers = self.brokers.unwrap_or(kafka.brokers);
        kafka.group_id = self.group_id.unwrap_or(kafka.group_id);
        if !self.topics.is_empty() {
            (kafka.topics, kafka.topic_pattern) = (self.topics, None);
        }
        config.kafka = Some(kafka);
        config.validate(file)
    }
}

/// Compaction settings shared by `compact` and `serve`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompactionArgs {
    /// Memory DataFusion may use before spilling to disk, e.g. 512MiB or 2GiB
    /// (default: a quarter of RAM).
    #[arg(long, value_parser = parse_bytes)]
    pub memory_limit: Option<usize>,
    /// Target size of the rewritten data files.
    #[arg(long, value_parser = parse_bytes, default_value = "128MiB")]
    pub target_file_size: usize,
    /// Keep delete and truncate rows this many seconds, for incremental readers.
    #[arg(long, default_value_t = 0)]
    pub tombstone_retention_secs: u64,
    /// Expire snapshots older than this many seconds after compacting.
    #[arg(long, default_value_t = 86_400)]
    pub snapshot_retention_secs: u64,
    /// Only delete unreferenced files older than this many seconds.
    #[arg(long, default_value_t = 3_600)]
    pub orphan_grace_secs: u64,
    /// Always rewrite the whole table, never only what changed.
    #[arg(long)]
    pub full: bool,
    /// Compact incrementally (only what changed since the last compaction, retiring superseded
    /// rows with position deletes) while superseded plus new rows stay under this fraction of
    /// the compacted rows; beyond it, rewrite the whole table.
    #[arg(long, default_value_t = 0.1)]
    pub full_rewrite_ratio: f64,
}

impl CompactionArgs {
    pub fn options(&self, dry_run: bool) -> floe_compactor::CompactOptions {
        use std::time::Duration;
        floe_compactor::CompactOptions {
            target_file_size: self.target_file_size,
            memory_limit: self.memory_limit.unwrap_or_else(floe_compactor::compact::default_memory_limit),
            tombstone_retention: Duration::from_secs(self.tombstone_retention_secs),
            snapshot_retention: Duration::from_secs(self.snapshot_retention_secs),
            orphan_grace: Duration::from_secs(self.orphan_grace_secs),
            dry_run,
            policy: floe_compactor::PlanPolicy {
                full_rewrite_ratio: if self.full { 0.0 } else { self.full_rewrite_ratio },
                ..Default::default()
            },
        }
    }
}

/// `512MiB`, `2GiB`, `64KiB` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let (number, unit) = t.split_at(t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len()));
    let n: usize = number.parse().map_err(|_| format!("'{text}' is not a size like 512MiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" | "k" | "kb" => 1 << 10,
        "mib" | "m" | "mb" => 1 << 20,
        "gib" | "g" | "gb" => 1 << 30,
        _ => return Err(format!("unknown unit in '{text}': use KiB, MiB or GiB")),
    };
    Ok(n * factor)
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    Ndjson,
}

impl From<Format> for floe_views::OutputFormat {
    fn from(f: Format) -> Self {
        match f {
            Format::Table => floe_views::OutputFormat::Table,
            Format::Csv => floe_views::OutputFormat::Csv,
            Format::Json => floe_views::OutputFormat::Json,
            Format::Ndjson => floe_views::OutputFormat::Ndjson,
        }
    }
}
