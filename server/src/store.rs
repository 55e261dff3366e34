//! Where package bytes live: a small trait the server reads and writes
//! through, implemented over any `object_store` backend (the local file
//! system by default; S3, GCS or Azure with that crate's features).

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, PutPayload};

use crate::error::{Error, Result};

/// A package store. Keys are relative paths (`packages/<sha256>.fota`).
#[async_trait::async_trait]
pub trait PackageStore: Send + Sync + std::fmt::Debug {
    /// Stores `bytes` under `key` (whole, or not at all).
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()>;
    /// Reads `range` of the object at `key`.
    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes>;
    /// The object's length.
    async fn len(&self, key: &str) -> Result<u64>;
}

/// A [`PackageStore`] over an `object_store` backend.
#[derive(Debug, Clone)]
pub struct ObjectStorePackages {
    inner: Arc<dyn ObjectStore>,
}

impl ObjectStorePackages {
    /// Over any object store.
    pub fn new(inner: Arc<dyn ObjectStore>) -> Self {
        ObjectStorePackages { inner }
    }

    /// Over a local folder (created if missing).
    ///
    /// # Errors
    /// [`Error::Io`] when the folder cannot be created; [`Error::Store`]
    /// when it cannot be used.
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::Io {
            path: dir.display().to_string(),
            source: e,
        })?;
        let fs = LocalFileSystem::new_with_prefix(dir)?;
        Ok(ObjectStorePackages::new(Arc::new(fs)))
    }
}

fn path(key: &str) -> Result<ObjectPath> {
    ObjectPath::parse(key).map_err(|e| Error::BadRequest(format!("store key {key:?}: {e}")))
}

#[async_trait::async_trait]
impl PackageStore for ObjectStorePackages {
    async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.inner.put(&path(key)?, PutPayload::from(bytes)).await?;
        Ok(())
    }

    async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        Ok(self.inner.get_range(&path(key)?, range).await?)
    }

    async fn len(&self, key: &str) -> Result<u64> {
        Ok(self.inner.head(&path(key)?).await?.size)
    }
}
