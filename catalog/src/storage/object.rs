//! iceberg's `Storage` over `object_store`: one client per bucket or container, made on first
//! use ([`super::clients`]). Writes go through `BufWriter` (a large file is a multipart upload
//! and appears only once complete), reads are ranged, and deletes are bulk requests.
//!
//! A small Parquet file is read whole, once: reading one takes a request for its footer and
//! another for its column chunks, each a round trip to the store, and the compactor reads its
//! inputs twice (keys, then the winning rows). Its bytes are kept in [`SMALL_FILES`], bounded
//! in memory, for the next read; data files never change once written. Metadata files floe
//! writes (metadata.json, manifest lists, manifests) are kept there as they are written: the
//! writer reads them back (the next append's manifest list, the cleanup's references), and
//! every Iceberg file's name is new, so the copy cannot go stale. A deleted file is dropped.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, LazyLock, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use iceberg::io::{FileMetadata, FileRead, FileWrite, InputFile, OutputFile, Storage, StorageConfig, StorageFactory};
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use super::{clients, storage_error, ObjectUrl};

/// Builds [`ObjectStorage`] from a FileIO's properties.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectStorageFactory;

#[typetag::serde]
impl StorageFactory for ObjectStorageFactory {
    fn build(&self, config: &StorageConfig) -> iceberg::Result<Arc<dyn Storage>> {
        Ok(Arc::new(ObjectStorage { properties: config.props().clone(), stores: Arc::default() }))
    }
}

/// iceberg's `Storage` over `object_store`, one client per bucket or container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectStorage {
    properties: HashMap<String, String>,
    #[serde(skip)]
    stores: Arc<Mutex<HashMap<String, Arc<dyn ObjectStore>>>>,
}

impl ObjectStorage {
    /// The client for `location`'s bucket, and the object's key.
    fn locate(&self, location: &str) -> iceberg::Result<(Arc<dyn ObjectStore>, ObjectPath)> {
        let url = parse(location)?;
        Ok((self.store(&url, location)?, super::object_key(url.key)))
    }

    /// The client of `url`'s bucket, made on first use.
    fn store(&self, url: &ObjectUrl, location: &str) -> iceberg::Result<Arc<dyn ObjectStore>> {
        let mut stores = self.stores.lock().expect("stores lock");
        if let Some(store) = stores.get(&url.store()) {
            return Ok(store.clone());
        }
        let store = clients::client(url, &self.properties).map_err(|e| storage_error(e, "connecting to", location))?;
        stores.insert(url.store(), store.clone());
        Ok(store)
    }
}

#[async_trait]
#[typetag::serde]
impl Storage for ObjectStorage {
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
        // Metadata is kept whole; a Parquet file may be kept only up to its footer's end.
        if let Some(kept) = SMALL_FILES.get(path).filter(|_| !path.ends_with(".parquet")) {
            return Ok(kept);
        }
        let (store, key) = self.locate(path)?;
        let got = store.get(&key).await.map_err(|e| storage_error(e, "reading", path))?;
        got.bytes().await.map_err(|e| storage_error(e, "reading", path))
    }

    async fn reader(&self, path: &str) -> iceberg::Result<Box<dyn FileRead>> {
        let (store, key) = self.locate(path)?;
        Ok(Box::new(ObjectRead { store, key, path: path.to_string(), small: Default::default() }))
    }

    async fn write(&self, path: &str, bs: Bytes) -> iceberg::Result<()> {
        SMALL_FILES.invalidate(path);
        let (store, key) = self.locate(path)?;
        store.put(&key, bs.clone().into()).await.map_err(|e| storage_error(e, "writing", path))?;
        if kept_on_write(path, bs.len()) {
            SMALL_FILES.insert(path.to_string(), bs);
        }
        Ok(())
    }

    async fn writer(&self, path: &str) -> iceberg::Result<Box<dyn FileWrite>> {
        SMALL_FILES.invalidate(path);
        let (store, key) = self.locate(path)?;
        // Buffers a part, then uploads in parts: a large file is a multipart upload, and an
        // object appears only once it is complete.
        let written = kept_on_write(path, 0).then(Vec::new);
        Ok(Box::new(ObjectWrite { writer: BufWriter::new(store, key), path: path.to_string(), written }))
    }

    async fn delete(&self, path: &str) -> iceberg::Result<()> {
        SMALL_FILES.invalidate(path);
        let (store, key) = self.locate(path)?;
        match store.delete(&key).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(storage_error(e, "deleting", path)),
        }
    }

    async fn delete_prefix(&self, path: &str) -> iceberg::Result<()> {
        for (kept, _) in SMALL_FILES.iter().filter(|(kept, _)| kept.starts_with(path)) {
            SMALL_FILES.invalidate(kept.as_str());
        }
        let (store, key) = self.locate(path)?;
        let keys = store.list(Some(&key)).map_ok(|meta| meta.location).boxed();
        store.delete_stream(keys).try_collect::<Vec<_>>().await.map_err(|e| storage_error(e, "deleting under", path))?;
        Ok(())
    }

    /// Bulk deletes (S3's DeleteObjects takes a thousand keys a request), store by store.
    async fn delete_stream(&self, paths: BoxStream<'static, String>) -> iceberg::Result<()> {
        let mut stores: HashMap<String, (Arc<dyn ObjectStore>, Vec<ObjectPath>)> = HashMap::new();
        for path in paths.collect::<Vec<_>>().await {
            SMALL_FILES.invalidate(&path);
            let url = parse(&path)?;
            let key = super::object_key(url.key);
            match stores.entry(url.store()) {
                std::collections::hash_map::Entry::Occupied(mut known) => known.get_mut().1.push(key),
                std::collections::hash_map::Entry::Vacant(new) => _ = new.insert((self.store(&url, &path)?, vec![key])),
            }
        }
        for (name, (store, keys)) in stores {
            let mut deleted = store.delete_stream(futures::stream::iter(keys.into_iter().map(Ok)).boxed());
            while let Some(result) = deleted.next().await {
                match result {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(storage_error(e, "deleting in", &name)),
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

fn parse(location: &str) -> iceberg::Result<ObjectUrl<'_>> {
    ObjectUrl::parse(location).ok_or_else(|| storage_error("not an object store URL", "locating", location))
}

/// A Parquet file whose first read ends within this many bytes is read whole (its footer is at
/// its end, so the first read, the footer's, ends at the file's size).
const SMALL_FILE: u64 = 16 << 20;

/// Whether a file floe writes is kept in [`SMALL_FILES`] for its next read: metadata, which
/// is small and read back, not data files, which a sink writes far more of than it reads.
fn kept_on_write(path: &str, len: usize) -> bool {
    !path.ends_with(".parquet") && len as u64 <= SMALL_FILE
}

/// Small Parquet files read whole and metadata files written, by location, up to 256 MiB in all.
static SMALL_FILES: LazyLock<moka::sync::Cache<String, Bytes>> = LazyLock::new(|| {
    moka::sync::Cache::builder()
        .weigher(|_, bytes: &Bytes| bytes.len().try_into().unwrap_or(u32::MAX))
        .max_capacity(256 << 20)
        .time_to_idle(std::time::Duration::from_secs(300))
        .build()
});

/// Ranged reads of one object.
struct ObjectRead {
    store: Arc<dyn ObjectStore>,
    key: ObjectPath,
    path: String,
    /// Whether this is a small Parquet file, read whole: decided by the first read.
    small: std::sync::OnceLock<bool>,
}

impl ObjectRead {
    async fn get_range(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        self.store.get_range(&self.key, range).await.map_err(|e| storage_error(e, "reading", &self.path))
    }

    /// `range` of the file, from its bytes kept in [`SMALL_FILES`] or fetched whole (from its
    /// start to the end of `range`, all of it when `range` ends at its end) and kept.
    async fn read_small(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        let whole = match SMALL_FILES.get(&self.path).filter(|whole| range.end <= whole.len() as u64) {
            Some(whole) => whole,
            None => {
                let whole = self.get_range(0..range.end).await?;
                SMALL_FILES.insert(self.path.clone(), whole.clone());
                whole
            }
        };
        let (start, end) = (range.start as usize, (range.end as usize).min(whole.len()));
        if start > end {
            let reason = format!("{range:?} is beyond its {} bytes", whole.len());
            return Err(storage_error(reason, "reading", &self.path));
        }
        Ok(whole.slice(start..end))
    }
}

#[async_trait]
impl FileRead for ObjectRead {
    async fn read(&self, range: Range<u64>) -> iceberg::Result<Bytes> {
        let small = *self.small.get_or_init(|| self.path.ends_with(".parquet") && range.end <= SMALL_FILE);
        match small {
            true => self.read_small(range).await,
            false => self.get_range(range).await,
        }
    }
}

/// An upload in progress.
struct ObjectWrite {
    writer: BufWriter,
    path: String,
    /// What was written, kept for [`SMALL_FILES`] while it is small enough.
    written: Option<Vec<Bytes>>,
}

#[async_trait]
impl FileWrite for ObjectWrite {
    async fn write(&mut self, bs: Bytes) -> iceberg::Result<()> {
        self.writer.write_all(&bs).await.map_err(|e| storage_error(e, "writing", &self.path))?;
        if let Some(written) = &mut self.written {
            written.push(bs);
            if !kept_on_write(&self.path, written.iter().map(Bytes::len).sum()) {
                self.written = None;
            }
        }
        Ok(())
    }

    async fn close(&mut self) -> iceberg::Result<()> {
        self.writer.shutdown().await.map_err(|e| storage_error(e, "completing", &self.path))?;
        if let Some(written) = self.written.take() {
            SMALL_FILES.insert(self.path.clone(), written.concat().into());
        }
        Ok(())
    }
}
