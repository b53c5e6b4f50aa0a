//! Where a warehouse's files live: a local directory, or an S3-compatible bucket.
//!
//! iceberg 0.10.1 ships only local and in-memory storage (its S3 backend is a separate crate on
//! opendal and aws-lc). floe's S3 storage is `object_store`'s, the library DataFusion reads
//! with, behind iceberg's `Storage` trait, so every read and write of the catalog, the sink, the
//! compactor and the views goes through it unchanged. `object_store` retries transient errors
//! (5xx, throttling, timeouts, resets) with backoff and jitter, uploads large files in parts,
//! and reads ranges.
//!
//! Credentials come from the standard AWS environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, web identity, container and instance
//! credentials), the region from `AWS_REGION` and an S3-compatible endpoint from
//! `AWS_ENDPOINT_URL`; iceberg's `s3.*` properties override them.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{
    FileIO, FileIOBuilder, FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory,
    S3_ACCESS_KEY_ID, S3_ENDPOINT, S3_PATH_STYLE_ACCESS, S3_REGION, S3_SECRET_ACCESS_KEY, S3_SESSION_TOKEN,
};
use object_store::aws::AmazonS3Builder;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::{CatalogError, Result};

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

    /// `location`: `s3://bucket/prefix`, `file:///path` or a local path, with iceberg's `s3.*`
    /// `properties` for a bucket (they override the AWS environment).
    pub fn parse(location: &str, properties: HashMap<String, String>) -> Result<Self> {
        if location.starts_with("s3://") || location.starts_with("s3a://") {
            let (bucket, _) = bucket_and_key(location)?;
            if bucket.is_empty() {
                return Err(CatalogError::Invalid(format!("{location} names no bucket: write s3://bucket/prefix")));
            }
            let file_io = FileIOBuilder::new(Arc::new(S3StorageFactory)).with_props(properties).build();
            return Ok(Self { location: location.trim_end_matches('/').to_string(), file_io });
        }
        if let Some(scheme) = location.split_once("://").map(|(s, _)| s).filter(|s| *s != "file") {
            return Err(CatalogError::Invalid(format!(
                "warehouse {location}: floe stores tables in s3:// buckets (AWS or S3-compatible) or local directories, not {scheme}://"
            )));
        }
        Self::local(&crate::maintenance::local_path(location))
    }
}

/// The bucket and key of `s3://bucket/key`.
fn bucket_and_key(location: &str) -> Result<(&str, &str)> {
    let rest = location.strip_prefix("s3://").or_else(|| location.strip_prefix("s3a://"));
    let rest = rest.ok_or_else(|| CatalogError::Invalid(format!("{location} is not an s3:// location")))?;
    Ok(rest.split_once('/').unwrap_or((rest, "")))
}

fn storage_error(e: impl std::fmt::Display, what: &str, path: &str) -> iceberg::Error {
    iceberg::Error::new(iceberg::ErrorKind::Unexpected, format!("{what} {path}: {e}"))
}

/// Builds [`S3Storage`] from a FileIO's properties.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct S3StorageFactory;

#[typetag::serde]
impl StorageFactory for S3StorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(S3Storage { properties: config.props().clone(), stores: Arc::default() }))
    }
}

/// iceberg's `Storage` over `object_store`'s S3 client, one client per bucket.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct S3Storage {
    properties: HashMap<String, String>,
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl S3Storage {
    /// The client for `location`'s bucket, and the object's key.
    fn locate(&self, location: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        let (bucket, key) = bucket_and_key(location).map_err(|e| storage_error(e, "locating", location))?;
        let mut stores = self.stores.lock().expect("stores lock");
        let store = match stores.get(bucket) {
            Some(store) => store.clone(),
            None => {
                let store: Arc<dyn ObjectStore> =
                    Arc::new(s3_client(bucket, &self.properties).map_err(|e| storage_error(e, "connecting to", location))?);
                stores.insert(bucket.to_string(), store.clone());
                store
            }
        };
        Ok((store, ObjectPath::from(key)))
    }
}

/// floe's own warehouse properties: how long and how often a request to object storage is
/// retried before the operation fails (by default 3 minutes and 20 times).
pub const RETRY_TIMEOUT_MS: &str = "floe.storage.retry-timeout-ms";
pub const MAX_RETRIES: &str = "floe.storage.max-retries";

/// object_store's retry settings, with the budget `properties` give. floe's defaults wait
/// longer than object_store's (10 retries from 100 ms, with a jitter that can spend them all
/// in about a second): at least 20 × 200 ms, so a throttling burst of a few seconds is waited
/// out, still within 3 minutes.
fn retry_config(properties: &HashMap<String, String>) -> object_store::RetryConfig {
    let mut retry = object_store::RetryConfig { max_retries: 20, ..Default::default() };
    retry.backoff.init_backoff = std::time::Duration::from_millis(200);
    if let Some(ms) = properties.get(RETRY_TIMEOUT_MS).and_then(|v| v.parse().ok()) {
        retry.retry_timeout = std::time::Duration::from_millis(ms);
    }
    if let Some(n) = properties.get(MAX_RETRIES).and_then(|v| v.parse().ok()) {
        retry.max_retries = n;
    }
    retry
}

/// An S3 client for `bucket`: the AWS environment, overridden by iceberg's `s3.*` properties.
/// With an endpoint of its own (an S3-compatible server), requests are path-style unless the
/// properties say otherwise.
fn s3_client(bucket: &str, properties: &HashMap<String, String>) -> object_store::Result<object_store::aws::AmazonS3> {
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry_config(properties));
    let endpoint = properties.get(S3_ENDPOINT).cloned().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
    if let Some(endpoint) = &endpoint {
        let path_style = properties.get(S3_PATH_STYLE_ACCESS).is_none_or(|v| v == "true");
        builder =
            builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://")).with_virtual_hosted_style_request(!path_style);
    }
    let set = |builder: AmazonS3Builder, key: &str, apply: fn(AmazonS3Builder, &String) -> AmazonS3Builder| match properties.get(key) {
        Some(value) => apply(builder, value),
        None => builder,
    };
    builder = set(builder, S3_REGION, |b, v| b.with_region(v));
    builder = set(builder, S3_ACCESS_KEY_ID, |b, v| b.with_access_key_id(v));
    builder = set(builder, S3_SECRET_ACCESS_KEY, |b, v| b.with_secret_access_key(v));
    builder = set(builder, S3_SESSION_TOKEN, |b, v| b.with_token(v));
    builder.build()
}

#[async_trait]
#[typetag::serde]
impl Storage for S3Storage {
    async fn exists(&self, path: &str) -> iceberg::Result<bool> {
        let (store, key) = self.locate(path)?;
        match store.head(&key).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(storage_error(e, "checking", path)),
        }
    }

    async fn metadata(&self, path: &str) -> iceberg::Result<FileMetadata> {
        let (store, key) = self.locate(path)?;
        let meta = store.head(&key).await.map_err(|e| storage_error(e, "reading the size of", path))?;
        Ok(FileMetadata { size: meta.size })
    }

    async fn read(&self, path: &str) -> iceberg::Result<Bytes> {
        let (store, key) = self.locate(path)?;
        let got = store.get(&key).await.map_err(|e| storage_error(e, "reading", path))?;
        got.bytes().await.map_err(|e| storage_error(e, "reading", path))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(S3Read { store, key, path: path.to_string() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        let (store, key) = self.locate(path)?;
        store.put(&key, bs.into()).await.map_err(|e| storage_error(e, "writing", path))?;
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        let (store, key) = self.locate(path)?;
        // Buffers a part, then uploads in parts: a large file is a multipart upload, and an
        // object appears only once it is complete.
        Ok(Box::new(S3Write { writer: BufWriter::new(store, key), path: path.to_string() }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.locate(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e, "deleting", path)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        let (store, key) = self.locate(path)?;
        let keys = store.list(Some(&key)).map_ok(|meta| meta.location).boxed();
        store.delete_stream(keys).try_collect::<Vec<_>>().await.map_err(|e| storage_error(e, "deleting under", path))?;
        Ok(())
    }

    /// Bulk deletes: a thousand keys a request (DeleteObjects), bucket by bucket.
    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        let mut buckets: HashMap<String, (Arc<dyn ObjectStore>, Vec<ObjectPath>)> = HashMap::new();
        for path in paths.collect::<Vec<_>>().await {
            let (store, key) = self.locate(&path)?;
            let (bucket, _) = bucket_and_key(&path).map_err(|e| storage_error(e, "locating", &path))?;
            buckets.entry(bucket.to_string()).or_insert_with(|| (store, vec![])).1.push(key);
        }
        for (bucket, (store, keys)) in buckets {
            let mut deleted = store.delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed());
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(storage_error(e, "deleting in", &format!("s3://{bucket}"))),
                }
            }
        }
        Ok(())
    }

    fn new_input(&self, path: &str) -> iceberg::Result<InputFile> {
        Ok(InputFile::new(Arc::new(self.clone()), path.to_string()))
    }

    fn new_output(&self, path: &str) -> iceberg::Result<OutputFile> {
        Ok(OutputFile::new(Arc::new(self.clone()), path.to_string()))
    }
}

/// Ranged reads of one object.
struct S3Read {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    path: String,
}

#[async_trait]
impl FileRead for S3Read {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(|e| storage_error(e, "reading", &self.path))
    }
}

/// An upload in progress.
struct S3Write {
    writer: BufWriter,
    path: String,
}

#[async_trait]
impl FileWrite for S3Write {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.writer.write_all(&bs).await.map_err(|e| storage_error(e, "writing", &self.path))
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        self.writer.shutdown().await.map_err(|e| storage_error(e, "completing", &self.path))
    }
}

/// One file under a location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// As Iceberg metadata names it: `s3://bucket/key` or an absolute local path.
    pub location: String,
    pub size: u64,
    pub modified: DateTime<Utc>,
}

/// Every file under `root` (a table's location), through `file_io`'s storage.
pub async fn list_files(file_io: &FileIO, root: &str) -> Result<Vec<ListedFile>> {
    if !(root.starts_with("s3://") || root.starts_with("s3a://")) {
        return list_local(&crate::maintenance::local_path(root));
    }
    let (bucket, prefix) = bucket_and_key(root)?;
    let scheme = root.split_once("://").map(|(s, _)| s).unwrap_or("s3");
    let client = s3_client(bucket, file_io.config().props()).map_err(|e| CatalogError::Invalid(format!("connecting to {root}: {e}")))?;
    let prefix = ObjectPath::from(prefix);
    let listed: Vec<_> =
        client.list(Some(&prefix)).try_collect().await.map_err(|e| CatalogError::Invalid(format!("listing {root}: {e}")))?;
    Ok(listed
        .into_iter()
        .map(|meta| ListedFile {
            location: format!("{scheme}://{bucket}/{}", meta.location),
            size: meta.size,
            modified: meta.last_modified,
        })
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
        assert_eq!(bucket_and_key("s3://lake/floe/ns/t/data/a.parquet").unwrap(), ("lake", "floe/ns/t/data/a.parquet"));
        let err = Warehouse::parse("gs://lake/floe", HashMap::new()).unwrap_err().to_string();
        assert!(err.contains("not gs://"), "{err}");
        assert!(Warehouse::parse("s3:///floe", HashMap::new()).is_err(), "no bucket");
        let dir = tempfile::tempdir().unwrap();
        let local = Warehouse::parse(&format!("file://{}", dir.path().join("wh").display()), HashMap::new()).unwrap();
        assert!(std::path::Path::new(&local.location).is_dir());
    }
}
