//! The embedded default store: files under a local folder. Writes go to a temporary file in
//! the same folder tree, are synced, then renamed into place, so readers see whole objects only.
//! Reads of small objects whose path and bytes the kernel has cached happen on the calling
//! thread with calls that cannot wait for the disk; everything else goes to the blocking pool.

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

/// Opens, sizes and (when small) reads `path` on the blocking pool, in one trip instead of one
/// per step and per chunk.
async fn open_blocking(path: PathBuf) -> Result<(u64, Opened), StorageError> {
    tokio::task::spawn_blocking(move || -> std::io::Result<(u64, Opened)> {
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
    .map_err(io)
}

/// Opens, sizes and (when small) reads `path` on the calling thread, but only when nothing
/// would wait for the disk: the path resolves from the kernel's lookup cache (`openat2` with
/// `RESOLVE_CACHED`; a cached "no such file" is an answer too) and every byte is in the page
/// cache (`preadv2` with `RWF_NOWAIT`). `None` sends the work to the blocking pool: a cold
/// file, or a kernel without these calls (before Linux 5.12).
#[cfg(target_os = "linux")]
fn open_if_cached(path: &Path) -> std::io::Result<Option<(u64, Opened)>> {
    use std::os::fd::{AsRawFd, FromRawFd};
    use std::os::unix::ffi::OsStrExt;

    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else { return Ok(None) };
    // SAFETY: `open_how` is plain integers, for which zero is valid; the fields are set below.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = u64::try_from(libc::O_RDONLY | libc::O_CLOEXEC).unwrap_or(0);
    how.resolve = libc::RESOLVE_CACHED;
    // SAFETY: a NUL-terminated path and an `open_how` of the size given, both alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            std::ptr::from_ref(&how),
            std::mem::size_of::<libc::open_how>(),
        )
    };
    let Ok(fd) = i32::try_from(fd) else { return Ok(None) };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        // EAGAIN: not all cached; ENOSYS, EINVAL: an older kernel.
        return if e.kind() == ErrorKind::NotFound { Err(e) } else { Ok(None) };
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    let len = file.metadata()?.len();
    if len > SMALL_OBJECT {
        return Ok(Some((len, Opened::Large(file))));
    }
    let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
    let mut filled = 0;
    while filled < bytes.len() {
        let rest = &mut bytes[filled..];
        let iov = libc::iovec { iov_base: rest.as_mut_ptr().cast(), iov_len: rest.len() };
        let offset = libc::off_t::try_from(filled).unwrap_or(libc::off_t::MAX);
        // SAFETY: one iovec over `rest`, writable for its length, on an open descriptor.
        let n = unsafe { libc::preadv2(file.as_raw_fd(), &iov, 1, offset, libc::RWF_NOWAIT) };
        match usize::try_from(n) {
            Ok(0) => break,
            Ok(n) => filled += n,
            // EAGAIN: part of it would wait for the disk; EOPNOTSUPP, EINVAL: not supported here.
            Err(_) => return Ok(None),
        }
    }
    bytes.truncate(filled);
    Ok(Some((filled as u64, Opened::Small(Bytes::from(bytes)))))
}

#[cfg(not(target_os = "linux"))]
fn open_if_cached(_: &Path) -> std::io::Result<Option<(u64, Opened)>> {
    Ok(None)
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
        let path = self.path(key);
        // A variant read recently is in the page cache: read it here, without a trip to the
        // blocking pool (which costs more than the read).
        let (len, opened) = match open_if_cached(&path).map_err(io)? {
            Some(opened) => opened,
            None => open_blocking(path).await?,
        };
        let stream: super::ByteStream = match opened {
            Opened::Small(bytes) => Box::pin(futures_util::stream::once(async move { Ok(bytes) })),
            Opened::Large(file) => Box::pin(ReaderStream::with_capacity(tokio::fs::File::from_std(file), READ_CHUNK)),
        };
        Ok(Blob { len, stream })
    }

    fn get_at_hand(&self, key: &BlobKey) -> Result<Option<Bytes>, StorageError> {
        match open_if_cached(&self.path(key)).map_err(io)? {
            Some((_, Opened::Small(bytes))) => Ok(Some(bytes)),
            Some((_, Opened::Large(_))) | None => Ok(None),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(opened: (u64, Opened)) -> (u64, Vec<u8>) {
        match opened {
            (len, Opened::Small(bytes)) => (len, bytes.to_vec()),
            (len, Opened::Large(file)) => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(&mut { file }, &mut out).unwrap();
                (len, out)
            }
        }
    }

    #[tokio::test]
    async fn cached_reads_give_what_the_blocking_pool_gives() {
        let dir = tempfile::tempdir().unwrap();
        let (small, large) = (dir.path().join("small"), dir.path().join("large"));
        let small_bytes: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
        let large_bytes = vec![7u8; usize::try_from(SMALL_OBJECT).unwrap() + 1];
        std::fs::write(&small, &small_bytes).unwrap();
        std::fs::write(&large, &large_bytes).unwrap();
        for (path, bytes) in [(&small, &small_bytes), (&large, &large_bytes)] {
            let slow = read(open_blocking(path.clone()).await.unwrap()).await;
            assert_eq!(slow, (bytes.len() as u64, bytes.clone()));
            // Just written and read, so in the kernel's caches: on Linux (5.12 and later, which
            // these tests run on) the calling thread answers, and answers the same.
            let fast = open_if_cached(path).unwrap();
            if cfg!(target_os = "linux") {
                let fast = fast.unwrap_or_else(|| panic!("{} was not read from the caches", path.display()));
                assert_eq!(read(fast).await, slow);
            }
        }
        let missing = dir.path().join("missing");
        assert!(matches!(open_blocking(missing.clone()).await, Err(StorageError::NotFound)));
        assert!(open_if_cached(&missing).map_or_else(|e| e.kind() == ErrorKind::NotFound, |o| o.is_none()));
    }

    #[tokio::test]
    async fn small_objects_just_written_are_at_hand() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsStorage::open(dir.path()).await.unwrap();
        let (small, large) =
            (BlobKey::from_listing("derived/a/small.webp").unwrap(), BlobKey::from_listing("derived/a/large").unwrap());
        store.put(&small, Bytes::from_static(b"RIFF...."), "image/webp").await.unwrap();
        let large_bytes = Bytes::from(vec![1u8; usize::try_from(SMALL_OBJECT).unwrap() + 1]);
        store.put(&large, large_bytes, "application/octet-stream").await.unwrap();
        if cfg!(target_os = "linux") {
            assert_eq!(store.get_at_hand(&small).unwrap().as_deref(), Some(&b"RIFF...."[..]));
        }
        // A large object streams through `get`; so does anything not at hand.
        assert_eq!(store.get_at_hand(&large).unwrap(), None);
        let missing = BlobKey::from_listing("derived/a/missing").unwrap();
        assert!(matches!(store.get_at_hand(&missing), Ok(None) | Err(StorageError::NotFound)));
    }
}
