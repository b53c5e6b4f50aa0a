//! Where a warehouse's files live: a local directory, or a bucket or container in object
//! storage (`s3://`, `gs://`, `az://`, `abfss://`).
//!
//! iceberg 0.10.1 ships only local and in-memory storage (its S3 backend is a separate crate on
//! opendal and aws-lc). floe's object storage is `object_store`'s, the library DataFusion reads
//! with, behind iceberg's `Storage` trait ([`object`]), so every read and write of the catalog,
//! the sink, the compactor and the views goes through it unchanged. `object_store` retries
//! transient errors (5xx, throttling, timeouts, resets) with backoff and jitter, uploads large
//! files in parts, and reads ranges. Credentials come from each cloud's standard environment
//! ([`clients`]).

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use iceberg::io::{FileIO, FileIOBuilder};
use object_store::path::Path as ObjectPath;

use crate::{CatalogError, Result};

mod clients;
mod object;

pub use clients::{MAX_RETRIES, RETRY_TIMEOUT_MS};
pub use object::{ObjectStorage, ObjectStorageFactory};

/// Whether `key` is a storage property (iceberg's `s3.*`, `gcs.*`, `adls.*`, `client.*`): what a
/// REST catalog may vend with a table, and all floe takes from what it vends.
pub fn is_storage_property(key: &str) -> bool {
    ["s3.", "client.", "gcs.", "adls."].iter().any(|prefix| key.starts_with(prefix))
}

/// A warehouse: the location tables are created under, and the FileIO that reaches it.
#[derive(Debug, Clone)]
pub struct Warehouse {
    pub location: String,
    pub file_io: FileIO,
}

impl Warehouse {
    /// A local directory (an absolute path or `file://` URL).
    pub fn local(path: &std::path::Path) -> Result<Self> {
        std::fs::create_dir_all(path)?;
        let path = std::fs::canonicalize(path)?;
        Ok(Self { location: path.display().to_string(), file_io: FileIO::new_with_fs() })
    }

    /// `location`: `s3://bucket/prefix`, `gs://bucket/prefix`, `az://container/prefix`,
    /// `abfss://container@account.dfs.core.windows.net/prefix`, `file:///path` or a local path,
    /// with iceberg's `s3.*` and floe's `floe.storage.*` `properties`.
    pub fn parse(location: &str, properties: HashMap<String, String>) -> Result<Self> {
        if let Some(url) = ObjectUrl::parse(location) {
            if url.bucket.is_empty() {
                return Err(CatalogError::Invalid(format!("{location} names no bucket: write {}://bucket/prefix", url.scheme)));
            }
            let file_io = FileIOBuilder::new(Arc::new(ObjectStorageFactory)).with_props(properties).build();
            return Ok(Self { location: location.trim_end_matches('/').to_string(), file_io });
        }
        if let Some(scheme) = location.split_once("://").map(|(s, _)| s).filter(|s| *s != "file") {
            return Err(CatalogError::Invalid(format!(
                "warehouse {location}: floe stores tables in s3://, gs://, az:// or abfss:// buckets or local directories, not {scheme}://"
            )));
        }
        Self::local(&crate::maintenance::local_path(location))
    }
}

/// An object's URL, `scheme://bucket/key`: the bucket (an Azure container, or for `abfss://`
/// `container@account.host`) and the key within it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectUrl<'a> {
    pub scheme: &'a str,
    pub bucket: &'a str,
    pub key: &'a str,
}

impl<'a> ObjectUrl<'a> {
    /// `None` for a local path or a `file://` URL.
    pub fn parse(location: &'a str) -> Option<Self> {
        let (scheme, rest) = location.split_once("://")?;
        if !clients::SCHEMES.contains(&scheme) {
            return None;
        }
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        Some(ObjectUrl { scheme, bucket, key })
    }

    /// `scheme://bucket`: which client reaches it.
    pub fn store(&self) -> String {
        format!("{}://{}", self.scheme, self.bucket)
    }
}

/// The object key of `key` exactly as written: `Path::from` would percent-encode characters
/// such as `%#[]?*`, and the object would then be stored under a name its metadata does not
/// give. A key object_store cannot take as is (an empty segment, `..`) is encoded as before.
pub(crate) fn object_key(key: &str) -> ObjectPath {
    ObjectPath::parse(key).unwrap_or_else(|_| ObjectPath::from(key))
}

/// Whether `location` is in object storage rather than on a local disk.
pub fn is_object_url(location: &str) -> bool {
    ObjectUrl::parse(location).is_some()
}

fn storage_error(e: impl std::fmt::Display, what: &str, path: &str) -> iceberg::Error {
    iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("{what} {path}: {e}"))
}

/// One file under a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// As Iceberg metadata names it: `scheme://bucket/key` or an absolute local path.
    pub location: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// Every file under `root` (a table's location), through `file_io`'s storage.
pub async fn list_files(file_io: &FileIO, root: &str) -> Result<Vec<ListedFile>> {
    let Some(url) = ObjectUrl::parse(root) else {
        return list_local(&crate::maintenance::local_path(root));
    };
    let client =
        clients::client(&url, file_io.config().props()).map_err(|e| CatalogError::Invalid(format!("connecting to {root}: {e}")))?;
    let prefix = object_key(url.key);
    let listed: Vec<_> =
        client.list(Some(&prefix)).try_collect().await.map_err(|e| CatalogError::Invalid(format!("listing {root}: {e}")))?;
    Ok(listed
        .into_iter()
        .map(|meta| ListedFile { location: format!("{}/{}", url.store(), meta.location), size: meta.size, modified: meta.last_modified })
        .collect())
}

fn list_local(root: &std::path::Path) -> Result<Vec<ListedFile>> {
    if !root.is_absolute() {
        return Err(CatalogError::Invalid(format!("cleanup needs an absolute table location, got {}", root.display())));
    }
    let mut files = vec![];
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file() {
                let meta = entry.metadata()?;
                let modified = DateTime::<Utc>::from(meta.modified()?);
                files.push(ListedFile { location: entry.path().display().to_string(), size: meta.len(), modified });
            }
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warehouse_is_a_bucket_or_a_directory_and_nothing_else() {
        let s3 = Warehouse::parse("s3://lake/floe/", HashMap::new()).unwrap();
        assert_eq!(s3.location, "s3://lake/floe");
        let url = ObjectUrl::parse("s3://lake/floe/ns/t/data/a.parquet").unwrap();
        assert_eq!((url.bucket, url.key, url.store()), ("lake", "floe/ns/t/data/a.parquet", "s3://lake".to_string()));
        let abfss = ObjectUrl::parse("abfss://lake@acct.dfs.core.windows.net/floe/a").unwrap();
        assert_eq!((abfss.bucket, abfss.key), ("lake@acct.dfs.core.windows.net", "floe/a"));
        for location in ["gs://lake/floe", "az://lake/floe"] {
            assert_eq!(Warehouse::parse(location, HashMap::new()).unwrap().location, location);
        }
        assert_eq!(object_key("t/data/a#1 [x]%2.parquet").as_ref(), "t/data/a#1 [x]%2.parquet", "no encoding");
        let err = Warehouse::parse("ftp://lake/floe", HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("not ftp://"), "{err}");
        assert!(Warehouse::parse("s3:///floe", HashMap::new()).is_err(), "no bucket");
        let dir = tempfile::tempdir().unwrap();
        let local = Warehouse::parse(&format!("file://{}", dir.path().join("wh").display()), HashMap::new()).unwrap();
        assert!(std::path::Path::new(&local.location).is_dir());
    }
}
