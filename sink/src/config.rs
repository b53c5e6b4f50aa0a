//! Sink configuration (`floe.toml`). Every error names the file, the key and the fix.
//!
//! ```toml
//! [sink]
//! batch_rows = 50000                  # rows buffered before files are written and committed
//! batch_bytes = "128MiB"              # or this much input, whichever comes first
//! commit_interval = "10s"             # and at least this often, so a quiet stream is committed
//! dead_letter_table = "floe.dead_letters"
//! unavailable_value_placeholder = "__debezium_unavailable_value"  # Debezium's, if changed there
//!
//! [kafka]                             # only for `floe sink`
//! brokers = "127.0.0.1:9092"
//! group_id = "floe"
//! topics = ["pg.studio.movies"]       # or topic_pattern = "^pg\\.studio\\..*"
//! connect_timeout = "30s"             # how long to wait for the brokers at start
//! commit_interval = "5s"              # optional: overrides [sink] commit_interval
//! [kafka.properties]                  # passed to librdkafka as they are
//! "security.protocol" = "SASL_SSL"
//!
//! [tables."pg.studio.movies"]         # one section per topic (all optional)
//! name = "studio.movies"              # Iceberg table; default: the topic's last two segments
//! columns = { budget = "decimal(14,2)", updated_at = "timestamptz" }  # schemaless types
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use floe_catalog::iceberg::{NamespaceIdent, TableIdent};
use serde::Deserialize;

use crate::decode::infer::ColumnHints;
use crate::decode::Kind;

pub const DEFAULT_BATCH_ROWS: usize = 50_000;
pub const DEFAULT_BATCH_BYTES: usize = 128 << 20;
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_DEAD_LETTER_TABLE: &str = "floe.dead_letters";

#[derive(Debug, thiserror::Error)]
#[error("{file}: {key}: {problem}\n  fix: {fix}")]
pub struct ConfigError {
    pub file: String,
    pub key: String,
    pub problem: String,
    pub fix: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    #[serde(default)]
    pub sink: SinkSettings,
    #[serde(default)]
    pub tables: BTreeMap<String, TableConfig>,
    /// The Kafka source of `floe sink`.
    #[serde(default)]
    pub kafka: Option<KafkaSettings>,
    /// `[server]`, the SQL endpoint's settings: read by floe-server, carried here so one file
    /// (checked key by key) configures every command.
    #[serde(default)]
    pub server: Option<toml::Table>,
    /// `[[users]]` of the SQL endpoint, read by floe-server.
    #[serde(default)]
    pub users: Vec<toml::Table>,
    /// `[[grants]]`: what the SQL endpoint's users may read, read by floe-server.
    #[serde(default)]
    pub grants: Vec<toml::Table>,
    /// `[catalog]`: which catalog and warehouse every command opens, under the flags and the
    /// environment (`--catalog-url`, `--warehouse`).
    #[serde(default)]
    pub catalog: CatalogSettings,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogSettings {
    /// `sqlite://…`, `postgres://…` or an Iceberg REST catalog's `http(s)://…`.
    pub url: Option<String>,
    /// Which warehouse of a REST catalog `url` serves several of (its `warehouse` parameter).
    pub catalog_warehouse: Option<String>,
    /// `s3://`, `gs://`, `az://` or `abfss://` bucket/prefix, `file:///path` or a local path.
    pub warehouse: Option<String>,
    /// How long a request to object storage is retried (with backoff) before the operation
    /// fails; object_store's default is 3 minutes.
    #[serde(default, with = "humantime_serde")]
    pub storage_retry_timeout: Option<std::time::Duration>,
    /// How often a request to object storage is retried at most (default 10).
    pub storage_max_retries: Option<usize>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSettings {
    /// `bootstrap.servers`: `host:port[,host:port…]`.
    pub brokers: String,
    /// The consumer group; sinks with the same group share the partitions.
    pub group_id: String,
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression: every matching topic, also ones created later.
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// How long to wait for the brokers at start before giving up.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The sink's `commit_interval` for Kafka, when set here (it wins over [sink]'s).
    #[serde(default, with = "humantime_serde")]
    pub commit_interval: Option<Duration>,
    /// librdkafka properties, passed as they are (security, SASL, TLS, fetch sizes…).
    #[serde(default)]
    pub properties: BTreeMap<String, String>,
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSettings {
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Input bytes buffered before a flush (`"64MiB"`, `"1GB"` or a number of bytes).
    #[serde(default = "default_batch_bytes", deserialize_with = "bytes_setting")]
    pub batch_bytes: usize,
    /// Longest time between flushes (`"10s"`, `"500ms"`, `"2m"`).
    #[serde(default = "default_commit_interval", with = "humantime_serde")]
    pub commit_interval: Duration,
    #[serde(default = "default_dead_letter_table")]
    pub dead_letter_table: String,
    /// Debezium's `unavailable.value.placeholder`: the value it sends for an unchanged TOASTed
    /// column, which floe replaces with the previous value.
    #[serde(default = "default_placeholder")]
    pub unavailable_value_placeholder: String,
    /// What a source schema change the table cannot follow does to the table.
    #[serde(default)]
    pub on_incompatible: OnIncompatible,
}

/// What happens to a table when its source changes in a way the table cannot follow (a decimal
/// scale change, a narrowed or retyped column, a changed key).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnIncompatible {
    /// The table stops taking records (they stay in the source) until an operator resumes it;
    /// the pause is kept in the table, so it survives restarts.
    #[default]
    Pause,
    /// The record goes to the dead-letter table and the table goes on.
    DeadLetter,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
            batch_bytes: DEFAULT_BATCH_BYTES,
            commit_interval: DEFAULT_COMMIT_INTERVAL,
            dead_letter_table: DEFAULT_DEAD_LETTER_TABLE.into(),
            unavailable_value_placeholder: default_placeholder(),
            on_incompatible: OnIncompatible::default(),
        }
    }
}

fn default_placeholder() -> String {
    crate::unavailable::DEFAULT_PLACEHOLDER.into()
}

fn default_batch_rows() -> usize {
    DEFAULT_BATCH_ROWS
}

fn default_batch_bytes() -> usize {
    DEFAULT_BATCH_BYTES
}

fn default_commit_interval() -> Duration {
    DEFAULT_COMMIT_INTERVAL
}

/// A byte size: a number, or text with a unit (`"128MiB"`, `"1GB"`).
fn bytes_setting<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Number(usize),
        Text(String),
    }
    match Size::deserialize(deserializer)? {
        Size::Number(n) => Ok(n),
        Size::Text(text) => text
            .parse::<bytesize::ByteSize>()
            .map(|size| size.as_u64() as usize)
            .map_err(|e| serde::de::Error::custom(format!("invalid size {text:?} ({e}); write e.g. \"128MiB\""))),
    }
}

fn default_dead_letter_table() -> String {
    DEFAULT_DEAD_LETTER_TABLE.into()
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableConfig {
    pub name: Option<String>,
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// This table's `on_incompatible`, when it differs from [sink]'s.
    pub on_incompatible: Option<OnIncompatible>,
}

/// Where one topic's changes go, and how to type its schemaless columns.
#[derive(Debug, Clone)]
pub struct TableRoute {
    pub ident: TableIdent,
    pub hints: ColumnHints,
    pub on_incompatible: OnIncompatible,
}

impl SinkConfig {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: file.clone(),
            key: "-".into(),
            problem: format!("cannot read: {e}"),
            fix: "pass an existing file with --config, or leave --config out for the defaults".into(),
        })?;
        Self::parse(&text, &file)
    }

    pub fn parse(text: &str, file: &str) -> Result<Self, ConfigError> {
        let config: SinkConfig = toml::from_str(text).map_err(|e| ConfigError {
            file: file.to_string(),
            key: key_of(text, &e),
            problem: e.message().to_string(),
            fix: "see the Configuration section of the README for the keys floe reads".into(),
        })?;
        config.validate(file)?;
        let mut config = config;
        if let Some(interval) = config.kafka.as_ref().and_then(|k| k.commit_interval) {
            config.sink.commit_interval = interval;
        }
        Ok(config)
    }

    pub fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: String, problem: String, fix: &str| ConfigError { file: file.into(), key, problem, fix: fix.into() };
        if self.sink.batch_rows == 0 {
            return Err(err("sink.batch_rows".into(), "must be at least 1".into(), "set batch_rows = 50000 (the default)"));
        }
        if self.sink.batch_bytes == 0 {
            return Err(err("sink.batch_bytes".into(), "must be more than 0".into(), "set batch_bytes = \"128MiB\" (the default)"));
        }
        if self.sink.commit_interval.is_zero() {
            return Err(err("sink.commit_interval".into(), "must be more than 0".into(), "set commit_interval = \"10s\" (the default)"));
        }
        parse_table_name(&self.sink.dead_letter_table).ok_or_else(|| {
            err(
                "sink.dead_letter_table".into(),
                format!("'{}' is not namespace.table", self.sink.dead_letter_table),
                "use a name like \"floe.dead_letters\"",
            )
        })?;
        if let Some(kafka) = &self.kafka {
            kafka.validate(file)?;
        }
        for (topic, table) in &self.tables {
            if let Some(name) = &table.name {
                parse_table_name(name).ok_or_else(|| {
                    err(format!("tables.\"{topic}\".name"), format!("'{name}' is not namespace.table"), "use a name like \"studio.movies\"")
                })?;
            }
            for (column, ty) in &table.columns {
                Kind::parse(ty).ok_or_else(|| {
                    err(
                        format!("tables.\"{topic}\".columns.{column}"),
                        format!("unknown column type '{ty}'"),
                        "use one of boolean, int, long, float, double, string, binary, date, time, timestamp, timestamp_ms, timestamptz, decimal(P,S), variable_decimal, json, uuid",
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The Kafka settings `floe sink` needs, or an error that says how to add them.
    pub fn kafka(&self, file: &str) -> Result<&KafkaSettings, ConfigError> {
        self.kafka.as_ref().ok_or_else(|| ConfigError {
            file: file.into(),
            key: "kafka".into(),
            problem: "floe sink reads Kafka, and the config has no [kafka] section".into(),
            fix: "add [kafka] with brokers, group_id and topics (or topic_pattern)".into(),
        })
    }

    /// The route for `topic`: configured, or `prefix.schema.table` → `schema.table`.
    pub fn route(&self, topic: &str) -> TableRoute {
        let table = self.tables.get(topic);
        let ident = table.and_then(|t| t.name.as_deref()).and_then(parse_table_name).unwrap_or_else(|| default_table(topic));
        let hints = table.map(|t| t.columns.iter().filter_map(|(c, ty)| Some((c.clone(), Kind::parse(ty)?))).collect()).unwrap_or_default();
        let on_incompatible = table.and_then(|t| t.on_incompatible).unwrap_or(self.sink.on_incompatible);
        TableRoute { ident, hints, on_incompatible }
    }

    pub fn dead_letter_table(&self) -> TableIdent {
        parse_table_name(&self.sink.dead_letter_table).expect("validated on load")
    }
}

/// `schema.table` → identifier; `None` unless exactly two non-empty parts.
impl KafkaSettings {
    fn validate(&self, file: &str) -> Result<(), ConfigError> {
        let err = |key: &str, problem: String, fix: &str| ConfigError { file: file.into(), key: key.into(), problem, fix: fix.into() };
        if self.brokers.trim().is_empty() {
            return Err(err("kafka.brokers", "is empty".into(), "set brokers = \"host:9092\" (several: comma-separated)"));
        }
        if self.commit_interval.is_some_and(|i| i.is_zero()) {
            return Err(err(
                "kafka.commit_interval",
                "must be more than 0".into(),
                "set commit_interval = \"10s\", or leave it out for [sink]'s",
            ));
        }
        if self.group_id.trim().is_empty() {
            return Err(err("kafka.group_id", "is empty".into(), "set group_id = \"floe\" (sinks with one group share the work)"));
        }
        match (&self.topics[..], &self.topic_pattern) {
            ([], None) => {
                Err(err("kafka.topics", "no topics to read".into(), "set topics = [\"…\"] or topic_pattern = \"^prefix\\\\..*\""))
            }
            ([_, ..], Some(_)) => {
                Err(err("kafka.topic_pattern", "topics and topic_pattern are both set".into(), "keep one of them: a list, or a pattern"))
            }
            (_, Some(pattern)) => regex::Regex::new(pattern).map(|_| ()).map_err(|e| {
                err("kafka.topic_pattern", format!("not a regular expression: {e}"), "use a regex such as \"^pg\\\\.studio\\\\..*\"")
            }),
            _ => Ok(()),
        }
    }
}

pub fn parse_table_name(name: &str) -> Option<TableIdent> {
    let (ns, table) = name.split_once('.')?;
    if ns.is_empty() || table.is_empty() || table.contains('.') {
        return None;
    }
    Some(TableIdent::new(NamespaceIdent::new(ns.to_string()), table.to_string()))
}

fn default_table(topic: &str) -> TableIdent {
    let parts: Vec<&str> = topic.split('.').filter(|p| !p.is_empty()).collect();
    let (ns, table) = match parts.as_slice() {
        [] => ("default", "unnamed"),
        [only] => ("default", *only),
        [.., ns, table] => (*ns, *table),
    };
    TableIdent::new(NamespaceIdent::new(ns.to_string()), table.to_string())
}

/// The dotted key a TOML error points at, from the line its span starts on.
fn key_of(text: &str, error: &toml::de::Error) -> String {
    let Some(span) = error.span() else { return "-".into() };
    let line_start = text[..span.start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    let section =
        text[..line_start].lines().rev().find(|l| l.trim_start().starts_with('[')).map(|l| l.trim().trim_matches(|c| c == '[' || c == ']'));
    let key = line.split('=').next().unwrap_or(line).trim();
    match section {
        Some(section) if !line.starts_with('[') => format!("{section}.{key}"),
        _ => key.to_string(),
    }
}

/// The default config path inside a data directory.
pub fn default_config_path(data_dir: &Path) -> PathBuf {
    data_dir.join("floe.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_routes_drop_the_topic_prefix() {
        let config = SinkConfig::default();
        assert_eq!(config.route("pg.studio.movies").ident.to_string(), "studio.movies");
        assert_eq!(config.route("orders").ident.to_string(), "default.orders");
    }

    #[test]
    fn a_kafka_commit_interval_is_the_sinks() {
        let text = "[sink]\ncommit_interval = \"10s\"\n[kafka]\nbrokers = \"b:9092\"\ngroup_id = \"g\"\ntopics = [\"t\"]\ncommit_interval = \"2s\"\n";
        let config = SinkConfig::parse(text, "floe.toml").unwrap();
        assert_eq!(config.sink.commit_interval, Duration::from_secs(2));
        let zero = text.replace("\"2s\"", "\"0s\"");
        assert!(SinkConfig::parse(&zero, "floe.toml").unwrap_err().to_string().contains("kafka.commit_interval"));
    }

    #[test]
    fn incompatible_changes_pause_unless_the_table_or_sink_says_dead_letter() {
        assert_eq!(SinkConfig::default().route("pg.shop.prices").on_incompatible, OnIncompatible::Pause);
        let text = "[sink]\non_incompatible = \"dead_letter\"\n[tables.\"pg.shop.stock\"]\non_incompatible = \"pause\"\n";
        let config = SinkConfig::parse(text, "floe.toml").unwrap();
        assert_eq!(config.route("pg.shop.prices").on_incompatible, OnIncompatible::DeadLetter);
        assert_eq!(config.route("pg.shop.stock").on_incompatible, OnIncompatible::Pause);
        let err = SinkConfig::parse("[sink]\non_incompatible = \"skip\"\n", "floe.toml").unwrap_err().to_string();
        assert!(err.contains("sink.on_incompatible") && err.contains("pause") && err.contains("dead_letter"), "{err}");
    }

    #[test]
    fn errors_name_file_key_and_fix() {
        let text = "[tables.\"pg.a.b\"]\ncolumns = { budget = \"decimall(14,2)\" }\n";
        let err = SinkConfig::parse(text, "floe.toml").unwrap_err().to_string();
        assert!(err.contains("floe.toml"), "{err}");
        assert!(err.contains("tables.\"pg.a.b\".columns.budget"), "{err}");
        assert!(err.contains("fix: use one of"), "{err}");

        let err = SinkConfig::parse("[sink]\nbatch_rowz = 5\n", "x.toml").unwrap_err().to_string();
        assert!(err.contains("x.toml: sink.batch_rowz"), "{err}");
        assert!(err.contains("unknown field"), "{err}");
    }
}
