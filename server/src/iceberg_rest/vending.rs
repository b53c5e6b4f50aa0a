//! Storage credentials floe's REST catalog hands out with a table, to a client that asks
//! (`X-Iceberg-Access-Delegation: vended-credentials`, which PyIceberg and Iceberg's Java
//! client send), so engines need no object-store keys of their own.
//!
//! floe vends static keys the operator configured for the purpose, as Gravitino's
//! `s3-secret-key` provider does: a `read` set for callers who may read the table, and a
//! `write` set for callers who may write it (they get `read` when no `write` set is given).
//! Keys cannot be narrowed to one table, so the `read` set should be a read-only key of the
//! warehouse's bucket: whoever may load one table can then read every file in it, also of
//! tables they hold only column grants on. A read-only catalog hands out only the `read` set.
//!
//! ```toml
//! [server.vended_credentials.read]
//! "s3.access-key-id" = "AKIA…"
//! "s3.secret-access-key" = "…"
//! [server.vended_credentials.write]
//! "s3.access-key-id" = "AKIA…"
//! "s3.secret-access-key" = "…"
//! ```

use std::collections::BTreeMap;

use axum::http::HeaderMap;
use floe_catalog::storage::is_storage_property;
use serde_json::{json, Value};

/// The sets of keys to vend, by what the caller may do.
#[derive(Clone, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendedCredentials {
    #[serde(default)]
    pub read: BTreeMap<String, String>,
    #[serde(default)]
    pub write: BTreeMap<String, String>,
}

/// Names the keys, never their values: the config is logged.
impl std::fmt::Debug for VendedCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VendedCredentials").field("read", &self.read.keys()).field("write", &self.write.keys()).finish()
    }
}

impl VendedCredentials {
    /// The first key of a set that is not a storage property, as `read."key"`.
    pub fn unknown_key(&self) -> Option<String> {
        let sets = [("read", &self.read), ("write", &self.write)];
        let mut keys = sets.into_iter().flat_map(|(set, keys)| keys.keys().map(move |key| (set, key)));
        keys.find(|(_, key)| !is_storage_property(key)).map(|(set, key)| format!("{set}.{key:?}"))
    }

    /// The keys for a caller who `writes` (or only reads) the table, if they asked for keys.
    fn for_caller(&self, headers: &HeaderMap, writes: bool) -> Option<&BTreeMap<String, String>> {
        let asked = headers.get_all("x-iceberg-access-delegation").iter().filter_map(|v| v.to_str().ok());
        if !asked.flat_map(|v| v.split(',')).any(|mode| mode.trim() == "vended-credentials") {
            return None;
        }
        let keys = if writes && !self.write.is_empty() { &self.write } else { &self.read };
        (!keys.is_empty()).then_some(keys)
    }

    /// A `loadTable` answer's `config` and `storage-credentials` for the table at `location`.
    pub(super) fn answer(&self, headers: &HeaderMap, writes: bool, location: &str) -> (Value, Value) {
        match self.for_caller(headers, writes) {
            None => (json!({}), json!([])),
            Some(keys) => (json!(keys), json!([{"prefix": location, "config": keys}])),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(id: &str) -> BTreeMap<String, String> {
        [("s3.access-key-id".to_string(), id.to_string()), ("s3.secret-access-key".into(), "secret".into())].into()
    }

    #[test]
    fn only_a_caller_who_asks_gets_keys_and_a_writer_gets_the_write_set() {
        let vended = VendedCredentials { read: keys("reader"), write: keys("writer") };
        let mut asking = HeaderMap::new();
        asking.insert("x-iceberg-access-delegation", "remote-signing, vended-credentials".parse().unwrap());
        let id = |(config, _): (Value, Value)| config["s3.access-key-id"].as_str().map(str::to_string);
        assert_eq!(id(vended.answer(&asking, false, "s3://lake/t")), Some("reader".into()));
        assert_eq!(id(vended.answer(&asking, true, "s3://lake/t")), Some("writer".into()));
        assert_eq!(id(vended.answer(&HeaderMap::new(), true, "s3://lake/t")), None, "not asked");
        let (_, credentials) = vended.answer(&asking, false, "s3://lake/t");
        assert_eq!(credentials[0]["prefix"], "s3://lake/t");
        let read_only = VendedCredentials { read: keys("reader"), write: BTreeMap::new() };
        assert_eq!(id(read_only.answer(&asking, true, "s3://lake/t")), Some("reader".into()), "read set when no write set");
        assert_eq!(id(VendedCredentials::default().answer(&asking, true, "s3://lake/t")), None, "nothing configured");
    }

    #[test]
    fn a_key_that_is_no_storage_property_is_named() {
        let mut vended = VendedCredentials { read: keys("reader"), write: BTreeMap::new() };
        assert_eq!(vended.unknown_key(), None);
        vended.write.insert("access-key-id".into(), "x".into());
        assert_eq!(vended.unknown_key().as_deref(), Some("write.\"access-key-id\""));
    }
}
