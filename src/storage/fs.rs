//! The embedded default store: files under a local folder. Writes go to a temporary file in
//! the same folder tree, are synced, then renamed into place, so readers see whole objects only.

use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use tokio_util::io::ReaderStream;

use super::{Blob, BlobKey, Listed, Storage, StorageError};

/// Chunk size of streamed reads (each chunk is one trip to the blocking pool).
const READ_CHUNK: usize = 256 * 1024;

/// Objects up to this size are read whole by [`Storage::get`] (variants usually are).
const SMALL_OBJECT: u64 = 256 * 1024;

/// A file opened by `get`: read already, or to stream.
enum Opened {
    Small(Bytes),
    Large(std::fs::File),
}

/// A folder of objects; a key `a/b/c` is the file `<root>/a/b/c`.
#[derive(Debug, Clone)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Uses (creating if needed) `root`.
    ///
    /// # Errors
    /// The folder cannot be created.
    pub async fn open(root: &Path) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(root.join(".tmp")).await.map_err(io)?;
        Ok(Self { root: root.to_owned() })
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        // BlobKey guarantees a relative path without `.` or `..` parts.
        self.root.join(key.as_str())
    }
}

fn io(e: std::io::Error) -> StorageError {
    match e.kind() {
        ErrorKind::NotFound => StorageError::NotFound,
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => StorageError::Full(e.into()),
        _ => StorageError::Backend(e.into()),
    }
}

#[async_trait]
impl Storage for FsStorage {
    async fn put(&self, key: &BlobKey, bytes: Bytes, _content_type: &str) -> Result<(), StorageError> {
        let path = self.path(key);
        let tmp = self.root.join(".tmp").join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        // One blocking call: write, sync, rename. (tokio's File reports a failed write only on a
        // later write or flush — not on sync — so a full disk would pass silently.)
        tokio::task::spawn_blocking(move || {
            let write = || -> std::io::Result<()> {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_data()?;
                drop(file);
                std::fs::rename(&tmp, &path)
            };
            write().map_err(|e| {
                // Nothing half-written stays: the temporary file goes, the key was never touched.
                let _ = std::fs::remove_file(&tmp);
                io(e)
            })
        })
        .await
        .map_err(|e| StorageError::Backend(e.into()))?
    }

    async fn get(&self, key: &BlobKey) -> Result<Blob, StorageError> {
        // Open, size and (when small, as variants are) read in one trip to the blocking pool,
        // instead of one per step and per chunk.
        let path = self.path(key);
        let (len, opened) = tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Opened)> {
            let mut file = std::fs::File::open(path)?;
            let len = file.metadata()?.len();
            if len > SMALL_OBJECT {
                return Ok((len, Opened::Large(file)));
            }
            let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
            std::io::Read::read_to_end(&mut file, &mut bytes)?;
            // The length is what was read (objects are replaced by rename, never rewritten).
            Ok((bytes.len() as u64, Opened::Small(Bytes::from(bytes))))
        })
        .await
        .map_err(|e| StorageError::Backend(e.into()))?
        .map_err(io)?;
        let stream: super::ByteStream = match opened {
            Opened::Small(bytes) => Box::pin(futures_util::stream::once(async move { Ok(bytes) })),
            Opened::Large(file) => Box::pin(ReaderStream::with_capacity(tokio::fs::File::from_std(file), READ_CHUNK)),
        };
        Ok(Blob { len, stream })
    }

    async fn get_bytes(&self, key: &BlobKey) -> Result<Bytes, StorageError> {
        // One blocking read instead of a trip to the blocking pool per chunk.
        tokio::fs::read(self.path(key)).await.map(Bytes::from).map_err(io)
    }

    async fn delete(&self, key: &BlobKey) -> Result<(), StorageError> {
        match tokio::fs::remove_file(self.path(key)).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StorageError::Backend(e.into())),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<Listed>, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || list_blocking(&root, &prefix))
            .await
            .map_err(|e| StorageError::Backend(e.into()))?
    }

    async fn presign_get(&self, _: &BlobKey, _: Duration, _: &str) -> Result<Option<String>, StorageError> {
        Ok(None)
    }

    async fn size(&self, key: &BlobKey) -> Result<u64, StorageError> {
        Ok(tokio::fs::metadata(self.path(key)).await.map_err(io)?.len())
    }

    async fn remove_empty_folders(&self, prefix: &str) -> Result<usize, StorageError> {
        let root = self.root.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || remove_empty_blocking(&root, &prefix))
            .await
            .map_err(|e| StorageError::Backend(e.into()))?
    }

    async fn ping(&self) -> Result<(), StorageError> {
        let meta = tokio::fs::metadata(&self.root).await.map_err(|e| StorageError::Unavailable(e.into()))?;
        if meta.is_dir() {
            Ok(())
        } else {
            Err(StorageError::Unavailable(format!("{} is not a folder", self.root.display()).into()))
        }
    }
}

/// Removes the empty folders below the folder `prefix` names (or the prefix's own folder when
/// it names one, like `derived/<id>/`), deepest first.
fn remove_empty_blocking(root: &Path, prefix: &str) -> Result<usize, StorageError> {
    fn walk(dir: &Path, removed: &mut usize) -> std::io::Result<bool> {
        let mut empty = true;
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() && walk(&entry.path(), removed)? {
                std::fs::remove_dir(entry.path())?;
                *removed += 1;
            } else {
                empty = false;
            }
        }
        Ok(empty)
    }
    let dir = root.join(prefix.trim_end_matches('/'));
    let mut removed = 0;
    match walk(&dir, &mut removed) {
        // A prefix that names one image's folder goes too; a top-level prefix stays.
        Ok(true) if prefix.trim_end_matches('/').contains('/') => {
            std::fs::remove_dir(&dir).map_err(|e| StorageError::Backend(e.into()))?;
            Ok(removed + 1)
        }
        Ok(_) => Ok(removed),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(removed),
        Err(e) => Err(StorageError::Backend(e.into())),
    }
}

/// Walks the folder holding `prefix` and returns the keys that start with it.
fn list_blocking(root: &Path, prefix: &str) -> Result<Vec<Listed>, StorageError> {
    // Start at the deepest folder the prefix names completely.
    let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
    let mut pending = vec![root.join(dir_part)];
    let mut keys = Vec::new();
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => continue,
            Err(e) => return Err(StorageError::Backend(e.into())),
        };
        for entry in entries {
            let entry = entry.map_err(|e| StorageError::Backend(e.into()))?;
            let path = entry.path();
            let Ok(rel) = path.strip_prefix(root) else { continue };
            let Some(rel) = rel.to_str() else { continue };
            if rel.starts_with(".tmp") {
                continue;
            }
            if entry.file_type().map_err(|e| StorageError::Backend(e.into()))?.is_dir() {
                pending.push(path);
            } else if rel.starts_with(prefix) {
                if let Some(key) = BlobKey::from_listing(rel) {
                    let modified = entry.metadata().ok().and_then(|m| m.modified().ok());
                    keys.push(Listed { key, modified });
                }
            }
        }
    }
    keys.sort();
    Ok(keys)
}
