//! Storage credentials a REST catalog vends with a table (`X-Iceberg-Access-Delegation:
//! vended-credentials`): Polaris, Lakekeeper, Gravitino, Unity and floe's own `serve` answer
//! `loadTable` with the keys that reach the table's files, so the client needs none of its own.
//!
//! They come as the answer's `config` and, in newer catalogs, as `storage-credentials`, each for
//! a location prefix: the entry with the longest prefix of the table's location wins. floe
//! reads the `s3.*` keys (access key, secret, session token, endpoint, region, path style),
//! Azure's `adls.sas-token.<account>` and Google's `gcs.oauth2.token` over the warehouse's own
//! properties. Credentials with an expiry are renewed by loading the table again when they are
//! about to lapse ([`expiring`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use iceberg::io::{FileIO, FileIOBuilder};
use serde::Deserialize;

use crate::storage::{is_storage_property, ObjectStorageFactory};

/// The header that asks the catalog for credentials, and the value that asks for keys.
pub(super) const ACCESS_DELEGATION: (&str, &str) = ("X-Iceberg-Access-Delegation", "vended-credentials");

/// Credentials this close to lapsing are renewed before the next commit is built on them.
pub(super) const RENEW_MARGIN: Duration = Duration::from_secs(5 * 60);

/// One entry of a `loadTable` answer's `storage-credentials`.
#[derive(Debug, Deserialize)]
pub(super) struct StorageCredential {
    prefix: String,
    #[serde(default)]
    config: HashMap<String, String>,
}

/// The storage properties a `loadTable` answer vends for the table at `location`.
pub(super) fn vended_properties(
    config: &HashMap<String, String>,
    credentials: &[StorageCredential],
    location: &str,
) -> BTreeMap<String, String> {
    let closest = credentials.iter().filter(|c| location.starts_with(&c.prefix)).max_by_key(|c| c.prefix.len());
    let entries = config.iter().chain(closest.into_iter().flat_map(|c| c.config.iter()));
    entries.filter(|(key, _)| is_storage_property(key)).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// FileIOs by the vended properties they were made with, over the warehouse's own: a table
/// loaded again with the same keys reuses its clients and their connections.
#[derive(Debug, Clone, Default)]
pub(super) struct VendedFileIos {
    made: Arc<Mutex<HashMap<BTreeMap<String, String>, FileIO>>>,
}

impl VendedFileIos {
    /// At most this many sets of keys are kept: renewed keys replace lapsed ones.
    const KEPT: usize = 64;

    /// The FileIO for `vended` keys, or `warehouse` itself when none were vended.
    pub(super) fn file_io(&self, warehouse: &FileIO, vended: BTreeMap<String, String>) -> FileIO {
        if vended.is_empty() {
            return warehouse.clone();
        }
        let mut made = self.made.lock().expect("not poisoned");
        if let Some(file_io) = made.get(&vended) {
            return file_io.clone();
        }
        if made.len() >= Self::KEPT {
            made.clear();
        }
        let mut properties = warehouse.config().props().clone();
        properties.extend(vended.clone());
        let file_io = FileIOBuilder::new(Arc::new(ObjectStorageFactory)).with_props(properties).build();
        made.insert(vended, file_io.clone());
        file_io
    }
}

/// Whether `file_io` holds vended credentials that lapse within `margin` of now. A catalog
/// says when in `s3.session-token-expires-at-ms` (or its GCS and ADLS equivalents), in
/// milliseconds since the epoch.
pub(super) fn expiring(file_io: &FileIO, margin: Duration) -> bool {
    let now = chrono::Utc::now().timestamp_millis();
    let expiries = file_io.config().props().iter().filter(|(key, _)| key.contains("expires-at")).filter_map(|(_, v)| v.parse::<i64>().ok());
    expiries.into_iter().any(|at| at - now < margin.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_credential_with_the_longest_prefix_of_the_table_wins_over_config() {
        let config = map(&[("s3.access-key-id", "from-config"), ("s3.region", "eu-west-1"), ("rest-metrics-reporting-enabled", "false")]);
        let credentials = vec![
            StorageCredential { prefix: "s3://lake/".into(), config: map(&[("s3.access-key-id", "whole-bucket")]) },
            StorageCredential { prefix: "s3://lake/ns/t".into(), config: map(&[("s3.access-key-id", "this-table")]) },
            StorageCredential { prefix: "s3://other/".into(), config: map(&[("s3.access-key-id", "elsewhere")]) },
        ];
        let vended = vended_properties(&config, &credentials, "s3://lake/ns/t");
        assert_eq!(vended.get("s3.access-key-id").map(String::as_str), Some("this-table"));
        assert_eq!(vended.get("s3.region").map(String::as_str), Some("eu-west-1"));
        assert!(!vended.contains_key("rest-metrics-reporting-enabled"), "only storage keys: {vended:?}");
        assert!(vended_properties(&HashMap::new(), &[], "s3://lake/ns/t").is_empty());
    }

    #[test]
    fn the_same_keys_reuse_one_file_io_and_an_expiry_near_now_is_expiring() {
        let (ios, warehouse) = (VendedFileIos::default(), FileIO::new_with_fs());
        let soon = (chrono::Utc::now().timestamp_millis() + 60_000).to_string();
        let keys: BTreeMap<_, _> =
            [("s3.access-key-id".to_string(), "k".to_string()), ("s3.session-token-expires-at-ms".into(), soon)].into();
        let first = ios.file_io(&warehouse, keys.clone());
        assert_eq!(first.config().get("s3.access-key-id").map(String::as_str), Some("k"));
        assert_eq!(ios.made.lock().unwrap().len(), 1);
        ios.file_io(&warehouse, keys);
        assert_eq!(ios.made.lock().unwrap().len(), 1, "reused");
        assert!(expiring(&first, RENEW_MARGIN), "lapses in a minute");
        assert!(!expiring(&first, Duration::from_secs(1)));
        assert!(!expiring(&warehouse, RENEW_MARGIN), "no vended keys, nothing lapses");
    }
}
