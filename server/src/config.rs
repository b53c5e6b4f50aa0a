//! The endpoint's part of `floe.toml`: `[server]`, the `[[users]]` who may connect, and the
//! `[[grants]]` that say what they may read ([`crate::grants`]).
//!
//! ```toml
//! [server]
//! pg_addr = "127.0.0.1:5433"     # Postgres wire; loopback by default
//! http_addr = "127.0.0.1:8433"   # HTTP
//! flight_addr = "127.0.0.1:8815" # Arrow Flight SQL
//! allow_anonymous = false        # true: anyone may connect, without a password
//! query_timeout = "5m"           # queries running longer are cancelled (every endpoint)
//! query_memory_limit = "2GiB"    # per session, for sorts, joins and aggregates
//! max_concurrent_queries = 16    # queries at once (HTTP, Flight SQL); more are refused
//! tls_cert = "/etc/floe/cert.pem" # optional, with tls_key: TLS on every endpoint
//! tls_key = "/etc/floe/key.pem"
//! catalog_read_only = false      # true: the Iceberg REST catalog takes no writes
//!
//! [server.vended_credentials.read]  # storage keys the REST catalog hands to readers
//! "s3.access-key-id" = "AKIA…"
//! "s3.secret-access-key" = "…"
//!
//! [[users]]
//! name = "analyst"
//! password_hash = "scram-sha-256$4096$…"   # floe hash-password
//! roles = ["bi"]                           # optional
//!
//! [[grants]]
//! to = "bi"
//! on = "studio.*"
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde::Deserialize;

use floe_views::access::Columns;

use crate::auth::{Secret, Users};
use crate::grants::{Grant, Grants, Scope};
use crate::iceberg_rest::{CatalogService, VendedCredentials};
use crate::session::Limits;
use crate::tls::{Tls, TlsError};

/// Where the Postgres wire endpoint listens when the config does not say.
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";
/// Where the HTTP endpoint listens when the config does not say.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8433";
/// Where the Flight SQL endpoint listens when the config does not say (Arrow's usual port).
pub const DEFAULT_FLIGHT_ADDR: &str = "127.0.0.1:8815";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default = "default_pg_addr")]
    pg_addr: SocketAddr,
    #[serde(default = "default_http_addr")]
    http_addr: SocketAddr,
    #[serde(default = "default_flight_addr")]
    flight_addr: SocketAddr,
    #[serde(default)]
    allow_anonymous: bool,
    #[serde(default = "default_query_timeout", with = "humantime_serde")]
    query_timeout: Duration,
    #[serde(default = "default_query_memory_limit")]
    query_memory_limit: String,
    #[serde(default = "default_max_concurrent_queries")]
    max_concurrent_queries: usize,
    tls_cert: Option<std::path::PathBuf>,
    tls_key: Option<std::path::PathBuf>,
    /// The Iceberg REST catalog refuses every write, whatever the grants say.
    #[serde(default)]
    catalog_read_only: bool,
    /// Storage keys the Iceberg REST catalog hands out with tables ([`VendedCredentials`]).
    #[serde(default)]
    vended_credentials: VendedCredentials,
}

fn default_pg_addr() -> SocketAddr {
    DEFAULT_PG_ADDR.parse().expect("a socket address")
}

fn default_http_addr() -> SocketAddr {
    DEFAULT_HTTP_ADDR.parse().expect("a socket address")
}

fn default_flight_addr() -> SocketAddr {
    DEFAULT_FLIGHT_ADDR.parse().expect("a socket address")
}

fn default_query_timeout() -> Duration {
    Duration::from_secs(300)
}

fn default_query_memory_limit() -> String {
    "2GiB".into()
}

fn default_max_concurrent_queries() -> usize {
    16
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSection {
    name: String,
    password_hash: String,
    #[serde(default)]
    roles: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantSection {
    to: String,
    on: String,
    columns: Option<Vec<String>>,
    #[serde(default)]
    write: bool,
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub pg_addr: SocketAddr,
    pub http_addr: SocketAddr,
    pub flight_addr: SocketAddr,
    pub allow_anonymous: bool,
    pub users: Users,
    pub grants: Grants,
    pub limits: Limits,
    /// The certificate and key of every endpoint, when `tls_cert` and `tls_key` are set.
    pub tls: Option<Tls>,
    pub catalog_service: CatalogService,
}

/// A problem in one key, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ServerConfig {
    /// Reads `[server]`, `[[users]]` and `[[grants]]` (as TOML tables).
    pub fn from_toml(server: &toml::Table, users: &[toml::Table], grants: &[toml::Table]) -> Result<Self, Invalid> {
        let invalid = |key: String, problem: String, fix: &str| Invalid { key, problem, fix: fix.into() };
        let section: ServerSection = server.clone().try_into().map_err(|e: toml::de::Error| {
            invalid(
                "server".into(),
                e.message().to_string(),
                "[server] takes pg_addr, http_addr, flight_addr, allow_anonymous, query_timeout, query_memory_limit, max_concurrent_queries, tls_cert, tls_key, catalog_read_only and vended_credentials",
            )
        })?;
        let memory = section.query_memory_limit.parse::<bytesize::ByteSize>().map_err(|e| {
            invalid(
                "server.query_memory_limit".into(),
                format!("{:?} is not a size: {e}", section.query_memory_limit),
                "write e.g. \"2GiB\"",
            )
        })?;
        if section.max_concurrent_queries == 0 {
            return Err(invalid("server.max_concurrent_queries".into(), "is 0: no query could run".into(), "set it to 1 or more"));
        }
        let limits = Limits::new(section.query_timeout, memory.as_u64() as usize, section.max_concurrent_queries);
        let tls = tls_of(&section)?;
        if let Some(key) = section.vended_credentials.unknown_key() {
            return Err(invalid(
                format!("server.vended_credentials.{key}"),
                "is not a storage property".into(),
                "vend s3.*, gcs.* or adls.* properties, e.g. \"s3.access-key-id\" and \"s3.secret-access-key\"",
            ));
        }
        let mut secrets = vec![];
        let mut roles = std::collections::BTreeMap::new();
        for (i, user) in users.iter().enumerate() {
            let user: UserSection = user.clone().try_into().map_err(|e: toml::de::Error| {
                invalid(format!("users[{i}]"), e.message().to_string(), "each [[users]] has name and password_hash")
            })?;
            let secret = user.password_hash.parse::<Secret>().map_err(|problem| {
                invalid(format!("users[{i}].password_hash"), problem, "make one with `floe hash-password` (it reads the password on stdin)")
            })?;
            roles.insert(user.name.clone(), user.roles.into_iter().collect());
            secrets.push((user.name, secret));
        }
        let grants = parse_grants(grants, roles)?;
        let users = Users::new(secrets);
        if users.is_empty() && !section.allow_anonymous {
            return Err(invalid(
                "users".into(),
                "no [[users]], and [server] allow_anonymous is not set".into(),
                "add [[users]] with name and password_hash (floe hash-password), or set allow_anonymous = true to let anyone in",
            ));
        }
        Ok(ServerConfig {
            pg_addr: section.pg_addr,
            http_addr: section.http_addr,
            flight_addr: section.flight_addr,
            allow_anonymous: section.allow_anonymous,
            users,
            grants,
            limits,
            tls,
            catalog_service: CatalogService { read_only: section.catalog_read_only, vended: section.vended_credentials },
        })
    }
}

/// The TLS identity `tls_cert` and `tls_key` name: both or neither.
fn tls_of(section: &ServerSection) -> Result<Option<Tls>, Invalid> {
    let invalid = |key: &str, problem: String, fix: &str| Invalid { key: format!("server.{key}"), problem, fix: fix.into() };
    match (&section.tls_cert, &section.tls_key) {
        (None, None) => Ok(None),
        (Some(cert), Some(key)) => Tls::load(cert, key).map(Some).map_err(|e| match e {
            TlsError::Cert(problem) => invalid("tls_cert", problem, "name a PEM file with the server's certificate (then its chain)"),
            TlsError::Key(problem) => invalid("tls_key", problem, "name the PEM file with the private key of tls_cert's certificate"),
        }),
        (Some(_), None) => {
            Err(invalid("tls_key", "is missing, while tls_cert is set".into(), "set tls_key to the certificate's PEM private key"))
        }
        (None, Some(_)) => {
            Err(invalid("tls_cert", "is missing, while tls_key is set".into(), "set tls_cert to the PEM certificate of that key"))
        }
    }
}

fn parse_grants(
    grants: &[toml::Table],
    roles: std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Result<Grants, Invalid> {
    let known = |name: &str| roles.contains_key(name) || roles.values().any(|r| r.contains(name));
    let mut parsed = vec![];
    for (i, grant) in grants.iter().enumerate() {
        let invalid = |key: &str, problem: String, fix: &str| Invalid { key: format!("grants[{i}]{key}"), problem, fix: fix.into() };
        let grant: GrantSection = grant.clone().try_into().map_err(|e: toml::de::Error| {
            invalid("", e.message().to_string(), "each [[grants]] has to, on and optionally columns and write")
        })?;
        let scope = Scope::parse(&grant.on).ok_or_else(|| {
            invalid(".on", format!("{:?} names no tables", grant.on), "write \"*\", \"namespace.*\" or \"namespace.table\"")
        })?;
        if !known(&grant.to) {
            return Err(invalid(
                ".to",
                format!("{:?} is neither a user nor a role of one", grant.to),
                "name a [[users]] name or one of their roles",
            ));
        }
        let columns = match (grant.columns, &scope) {
            (None, _) => Columns::All,
            (Some(columns), Scope::Table { .. }) => Columns::Only(columns.into_iter().collect()),
            (Some(_), _) => {
                return Err(invalid(".columns", "columns need one table".into(), "set on = \"namespace.table\" for a column grant"))
            }
        };
        if grant.write && columns != Columns::All {
            return Err(invalid(".write", "a grant of some columns cannot write".into(), "drop columns, or write = true, from this grant"));
        }
        parsed.push(Grant { to: grant.to, scope, columns, write: grant.write });
    }
    Ok(Grants { grants: parsed, roles })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, Invalid> {
        let mut file: toml::Table = text.parse().unwrap();
        let server = file.remove("server").and_then(|s| s.as_table().cloned()).unwrap_or_default();
        let tables = |key: &str, file: &mut toml::Table| -> Vec<toml::Table> {
            let items = file.remove(key).and_then(|u| u.as_array().cloned()).unwrap_or_default();
            items.into_iter().filter_map(|u| u.as_table().cloned()).collect()
        };
        let users = tables("users", &mut file);
        let grants = tables("grants", &mut file);
        ServerConfig::from_toml(&server, &users, &grants)
    }

    #[test]
    fn tls_needs_both_files_and_names_the_one_that_is_wrong() {
        let open = "[server]\nallow_anonymous = true\n";
        let err = parse(&format!("{open}tls_cert = \"cert.pem\"\n")).unwrap_err();
        assert_eq!((err.key.as_str(), err.problem.as_str()), ("server.tls_key", "is missing, while tls_cert is set"));
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert, "not a certificate").unwrap();
        let both = format!("{open}tls_cert = {:?}\ntls_key = {:?}\n", cert.display().to_string(), key.display().to_string());
        let err = parse(&both).unwrap_err();
        assert_eq!(err.key, "server.tls_key", "the key file does not exist: {err:?}");
        std::fs::write(&key, "not a key").unwrap();
        let err = parse(&both).unwrap_err();
        assert_eq!(err.key, "server.tls_cert", "{err:?}");
        assert!(err.problem.contains("holds no certificate") && err.fix.contains("PEM"), "{err:?}");
    }

    #[test]
    fn nobody_gets_in_unless_a_user_is_configured_or_anonymous_access_is_explicit() {
        let err = parse("[server]\n").unwrap_err();
        assert_eq!(err.key, "users");
        assert!(err.fix.contains("floe hash-password"), "{err:?}");
        let open = parse("[server]\nallow_anonymous = true\n").unwrap();
        assert!(open.allow_anonymous && open.users.is_empty());
        assert_eq!(open.pg_addr.to_string(), DEFAULT_PG_ADDR);
    }

    #[test]
    fn a_bad_hash_or_key_is_named() {
        let err = parse("[[users]]\nname = \"a\"\npassword_hash = \"pencil\"\n").unwrap_err();
        assert_eq!(err.key, "users[0].password_hash");
        let err = parse("[server]\npg_adr = \"x\"\n").unwrap_err();
        assert!(err.problem.contains("pg_adr"), "{err:?}");
        let err = parse("[server]\nallow_anonymous = true\nquery_memory_limit = \"lots\"\n").unwrap_err();
        assert_eq!(err.key, "server.query_memory_limit");
        let err = parse("[server]\nallow_anonymous = true\n[server.vended_credentials.read]\n\"access-key\" = \"x\"\n").unwrap_err();
        assert_eq!(
            (err.key.as_str(), err.problem.as_str()),
            ("server.vended_credentials.read.\"access-key\"", "is not a storage property")
        );
        let limits = parse("[server]\nallow_anonymous = true\nquery_memory_limit = \"64MiB\"\nquery_timeout = \"30s\"\n").unwrap().limits;
        assert_eq!((limits.memory, limits.timeout), (64 << 20, Duration::from_secs(30)));
        let hash = crate::auth::hash_password("pencil");
        let ok = parse(&format!("[server]\npg_addr = \"127.0.0.1:0\"\n[[users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n")).unwrap();
        assert_eq!(ok.pg_addr.port(), 0);
    }

    #[test]
    fn a_grant_names_a_known_user_or_role_and_tables_it_can_cover() {
        let hash = crate::auth::hash_password("pencil");
        let user = format!("[[users]]\nname = \"ana\"\npassword_hash = \"{hash}\"\nroles = [\"bi\"]\n");
        let with = |grant: &str| parse(&format!("{user}[[grants]]\n{grant}"));
        assert!(with("to = \"bi\"\non = \"studio.*\"\n").is_ok());
        assert!(with("to = \"ana\"\non = \"studio.movies\"\ncolumns = [\"title\"]\n").is_ok());
        assert_eq!(with("to = \"anna\"\non = \"*\"\n").unwrap_err().key, "grants[0].to");
        assert_eq!(with("to = \"bi\"\non = \"movies\"\n").unwrap_err().key, "grants[0].on");
        assert_eq!(with("to = \"bi\"\non = \"studio.*\"\ncolumns = [\"title\"]\n").unwrap_err().key, "grants[0].columns");
    }
}
