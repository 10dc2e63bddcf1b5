//! Durable home of originals and cached variants, behind one [`Storage`] trait with a
//! local-folder and an S3 implementation chosen at start-up.
//!
//! Keys are built only from validated ids ([`BlobKeys`]), never from request text. Reads stream.

pub mod fs;
pub mod s3;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};

use crate::config::StorageConfig;
use crate::ids::ImageId;
use crate::BoxError;

/// Shared handle to the configured store.
pub type Store = Arc<dyn Storage>;

/// A stream of an object's bytes.
pub type ByteStream = Pin<Box<dyn Stream<Item = std::io::Result<Bytes>> + Send>>;

/// A failed object-store call.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// No object under the key.
    #[error("object not found")]
    NotFound,
    /// The store cannot be reached or timed out.
    #[error("object store unavailable")]
    Unavailable(#[source] BoxError),
    /// The store has no room left (disk full, quota reached).
    #[error("object store full")]
    Full(#[source] BoxError),
    /// Any other failure (permissions, disk full, protocol errors).
    #[error("object store error")]
    Backend(#[source] BoxError),
}

impl StorageError {
    /// True when the key does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::NotFound)
    }

    /// True when retrying later may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

/// An object being read: its length and its bytes as a stream.
pub struct Blob {
    /// Length in bytes.
    pub len: u64,
    /// The bytes.
    pub stream: ByteStream,
}

impl Blob {
    /// Reads the whole object into memory.
    ///
    /// # Errors
    /// The stream fails part way.
    pub async fn into_bytes(mut self) -> Result<Bytes, StorageError> {
        let mut buf = BytesMut::with_capacity(usize::try_from(self.len).unwrap_or(0).min(64 << 20));
        while let Some(chunk) = self.stream.next().await {
            buf.extend_from_slice(&chunk.map_err(|e| StorageError::Backend(e.into()))?);
        }
        Ok(buf.freeze())
    }
}

/// An object found by [`Storage::list`]; ordered by key first.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Listed {
    /// Its key.
    pub key: BlobKey,
    /// When it was last written, when the store says.
    pub modified: Option<SystemTime>,
}

/// An object key. Only [`BlobKeys`] makes them, from validated ids and hex hashes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    /// The key as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Accepts a key read back from a listing of the store.
    pub fn from_listing(key: &str) -> Option<Self> {
        crate::ids::is_key_path(key).then(|| Self(key.to_owned()))
    }
}

/// Builds the keys of an image's objects under the configured prefixes.
#[derive(Debug, Clone)]
pub struct BlobKeys {
    originals: String,
    derived: String,
}

impl BlobKeys {
    /// Keys under the prefixes of `config`.
    pub fn new(config: &StorageConfig) -> Self {
        Self { originals: config.originals_prefix.clone(), derived: config.derived_prefix.clone() }
    }

    /// The original of `id`.
    pub fn original(&self, id: &ImageId) -> BlobKey {
        BlobKey(format!("{}{id}", self.originals))
    }

    /// A cached variant of `id`; `hash` is the variant key's hex, `ext` the format's extension.
    pub fn variant(&self, id: &ImageId, hash: &str, ext: &str) -> BlobKey {
        BlobKey(format!("{}{id}/{hash}.{ext}", self.derived))
    }

    /// The working copy of `id` at 1/`factor` (see [`crate::transform::levels`]): kept beside
    /// its variants, so it goes with the image. The name says `.jpg` for every copy, the PNG
    /// copies of lossless originals too (the name came first); readers go by the bytes.
    pub fn level(&self, id: &ImageId, factor: u32) -> BlobKey {
        BlobKey(format!("{}{id}/level-{factor}.jpg", self.derived))
    }

    /// The prefix holding every variant (and working copy) of `id`.
    pub fn variants_of(&self, id: &ImageId) -> String {
        format!("{}{id}/", self.derived)
    }

    /// Prefix of all originals.
    pub fn originals_prefix(&self) -> &str {
        &self.originals
    }

    /// Prefix of all variants.
    pub fn derived_prefix(&self) -> &str {
        &self.derived
    }

    /// The image a stored key belongs to, if it is one of ours.
    pub fn image_of(&self, key: &BlobKey) -> Option<ImageId> {
        let k = key.as_str();
        let id = k
            .strip_prefix(&self.originals)
            .or_else(|| k.strip_prefix(&self.derived).and_then(|rest| rest.split('/').next()))?;
        ImageId::parse(id)
    }
}

/// Durable home of originals and cached variants.
#[async_trait]
pub trait Storage: Send + Sync + 'static {
    /// Stores `bytes` under `key`, replacing any object there. Readers never see a partial object.
    async fn put(&self, key: &BlobKey, bytes: Bytes, content_type: &str) -> Result<(), StorageError>;

    /// Streams an object; [`StorageError::NotFound`] when the key is absent.
    async fn get(&self, key: &BlobKey) -> Result<Blob, StorageError>;

    /// A small object's bytes when they are at hand without waiting for a disk or the network
    /// (a local file in the page cache): `Ok(None)` when they are not, or when this store cannot
    /// tell, and the caller goes on to [`Storage::get`]; [`StorageError::NotFound`] when it
    /// knows at once that the key is absent.
    fn get_at_hand(&self, _key: &BlobKey) -> Result<Option<Bytes>, StorageError> {
        Ok(None)
    }

    /// Reads a whole object into memory (originals on their way to the pipeline).
    async fn get_bytes(&self, key: &BlobKey) -> Result<Bytes, StorageError> {
        self.get(key).await?.into_bytes().await
    }

    /// Deletes an object; deleting a missing key succeeds.
    async fn delete(&self, key: &BlobKey) -> Result<(), StorageError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError>;

    /// A URL a client can GET the object from directly for `ttl`, when the store has one.
    async fn presign_get(
        &self,
        key: &BlobKey,
        ttl: Duration,
        content_type: &str,
    ) -> Result<Option<String>, StorageError>;

    /// Checks the store answers.
    async fn ping(&self) -> Result<(), StorageError>;

    /// The size of an object, without reading it; [`StorageError::NotFound`] when absent.
    async fn size(&self, key: &BlobKey) -> Result<u64, StorageError>;

    /// Deletes every key starting with `prefix`; returns how many were deleted.
    async fn delete_prefix(&self, prefix: &str) -> Result<usize, StorageError> {
        let objects = self.list(prefix).await?;
        for object in &objects {
            self.delete(&object.key).await?;
        }
        self.remove_empty_folders(prefix).await?;
        Ok(objects.len())
    }

    /// Removes empty folders under `prefix` (a store of files has them; a bucket has none).
    async fn remove_empty_folders(&self, _prefix: &str) -> Result<usize, StorageError> {
        Ok(0)
    }
}

/// Opens the configured store.
///
/// # Errors
/// The folder cannot be created, or the S3 client cannot be configured.
pub async fn open(config: &StorageConfig) -> Result<Store, StorageError> {
    if config.s3.bucket.is_empty() {
        Ok(Arc::new(fs::FsStorage::open(&config.data_dir.join("blobs")).await?))
    } else {
        Ok(Arc::new(s3::S3Storage::connect(&config.s3).await))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_reject_traversal() {
        assert!(BlobKey::from_listing("originals/abc").is_some());
        assert!(BlobKey::from_listing("../etc/passwd").is_none());
        assert!(BlobKey::from_listing("a/./b").is_none());
        assert!(BlobKey::from_listing("/abs").is_none());
        assert!(BlobKey::from_listing("a b").is_none());
        assert!(!crate::ids::is_key_prefix("originals"));
        assert!(crate::ids::is_key_prefix("tenant-1/originals/"));
    }

    #[test]
    fn keys_map_back_to_their_image() {
        let keys = BlobKeys { originals: "o/".into(), derived: "d/".into() };
        let id = ImageId::generate();
        assert_eq!(keys.image_of(&keys.original(&id)), Some(id.clone()));
        assert_eq!(keys.image_of(&keys.variant(&id, "ab12", "webp")), Some(id.clone()));
        assert!(keys.variant(&id, "ab12", "webp").as_str().starts_with(&keys.variants_of(&id)));
        assert_eq!(keys.image_of(&BlobKey("x/y".into())), None);
    }
}
