//! The endpoint's part of `floe.toml`: `[server]` and the `[[users]]` who may connect.
//!
//! ```toml
//! [server]
//! pg_addr = "127.0.0.1:5433"     # Postgres wire; loopback by default
//! allow_anonymous = false        # true: anyone may connect, without a password
//!
//! [[users]]
//! name = "analyst"
//! password_hash = "scram-sha-256$4096$…"   # floe hash-password
//! ```

use std::net::SocketAddr;

use serde::Deserialize;

use crate::auth::{Secret, Users};

/// Where the Postgres wire endpoint listens when the config does not say.
pub const DEFAULT_PG_ADDR: &str = "127.0.0.1:5433";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSection {
    #[serde(default = "default_pg_addr")]
    pg_addr: SocketAddr,
    #[serde(default)]
    allow_anonymous: bool,
}

fn default_pg_addr() -> SocketAddr {
    DEFAULT_PG_ADDR.parse().expect("a socket address")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct UserSection {
    name: String,
    password_hash: String,
}

/// The endpoint's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub pg_addr: SocketAddr,
    pub allow_anonymous: bool,
    pub users: Users,
}

/// A problem in one key, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub key: String,
    pub problem: String,
    pub fix: String,
}

impl ServerConfig {
    /// Reads `[server]` and `[[users]]` (as TOML tables).
    pub fn from_toml(server: &toml::Table, users: &[toml::Table]) -> Result<Self, Invalid> {
        let invalid = |key: String, problem: String, fix: &str| Invalid { key, problem, fix: fix.into() };
        let section: ServerSection = server.clone().try_into().map_err(|e: toml::de::Error| {
            invalid(
                "server".into(),
                e.message().to_string(),
                "[server] takes pg_addr = \"127.0.0.1:5433\" and allow_anonymous = true|false",
            )
        })?;
        let mut secrets = vec![];
        for (i, user) in users.iter().enumerate() {
            let user: UserSection = user.clone().try_into().map_err(|e: toml::de::Error| {
                invalid(format!("users[{i}]"), e.message().to_string(), "each [[users]] has name and password_hash")
            })?;
            let secret = user.password_hash.parse::<Secret>().map_err(|problem| {
                invalid(format!("users[{i}].password_hash"), problem, "make one with `floe hash-password` (it reads the password on stdin)")
            })?;
            secrets.push((user.name, secret));
        }
        let users = Users::new(secrets);
        if users.is_empty() && !section.allow_anonymous {
            return Err(invalid(
                "users".into(),
                "no [[users]], and [server] allow_anonymous is not set".into(),
                "add [[users]] with name and password_hash (floe hash-password), or set allow_anonymous = true to let anyone in",
            ));
        }
        Ok(ServerConfig { pg_addr: section.pg_addr, allow_anonymous: section.allow_anonymous, users })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ServerConfig, Invalid> {
        let mut file: toml::Table = text.parse().unwrap();
        let server = file.remove("server").and_then(|s| s.as_table().cloned()).unwrap_or_default();
        let users: Vec<toml::Table> = file
            .remove("users")
            .and_then(|u| u.as_array().cloned())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|u| u.as_table().cloned())
            .collect();
        ServerConfig::from_toml(&server, &users)
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
        let hash = crate::auth::hash_password("pencil");
        let ok = parse(&format!("[server]\npg_addr = \"127.0.0.1:0\"\n[[users]]\nname = \"a\"\npassword_hash = \"{hash}\"\n")).unwrap();
        assert_eq!(ok.pg_addr.port(), 0);
    }
}
