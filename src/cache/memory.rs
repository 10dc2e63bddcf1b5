//! In-memory variant cache (moka), bounded by the bytes it holds.
//!
//! Entries are long-lived and made between short-lived multi-megabyte pixel buffers. Left where
//! an encoder allocated them, they pin the heap pages around them long after those buffers are
//! freed (`benches/soak.sh` saw 1 GB resident for a 256 MB cache). So each kept entry is copied
//! out of the way first: into a mapping of its own when it is large (freed straight back to the
//! system on eviction), into a fresh exact-size allocation when it is small.

use std::sync::Arc;

use bytes::Bytes;

use super::DigestedState;
use crate::format::ImageFormat;
use crate::transform::VariantKey;

/// Bytes charged per entry on top of its payload: the key, the `Arc<Variant>` allocation and
/// moka's own entry, deque node and frequency sketch share, rounded up.
const ENTRY_OVERHEAD: usize = 256;

/// Entries this large get a mapping of their own (page-rounded; the weigher counts the pages).
const OWN_MAPPING: usize = 64 << 10;

/// Page size the weigher rounds mapped entries to.
const PAGE: usize = 4096;

/// An encoded variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// Encoded bytes.
    pub bytes: Bytes,
    /// Their format.
    pub format: ImageFormat,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Byte-bounded cache of variants; a zero budget disables it.
#[derive(Clone)]
pub struct MemoryCache {
    inner: Option<moka::sync::Cache<VariantKey, Arc<Variant>, DigestedState>>,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of variants.
    pub fn new(max_bytes: u64) -> Self {
        let inner = (max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &VariantKey, v: &Arc<Variant>| {
                    u32::try_from(held(v.bytes.len()) + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .build_with_hasher(DigestedState::default())
        });
        Self { inner }
    }

    /// The cached variant, if any.
    pub fn get(&self, key: &VariantKey) -> Option<Arc<Variant>> {
        self.inner.as_ref()?.get(key)
    }

    /// Caches `variant` with its bytes moved out of the way of the pixel buffers (see the
    /// module doc) and returns it to serve; with the cache off, returns it as it is. Entries
    /// larger than the budget are skipped by moka.
    pub fn keep(&self, key: VariantKey, variant: Variant) -> Arc<Variant> {
        let Some(cache) = &self.inner else { return Arc::new(variant) };
        let kept = Arc::new(Variant { bytes: detach(&variant.bytes), ..variant });
        cache.insert(key, Arc::clone(&kept));
        kept
    }

    /// Settles moka's pending bookkeeping (evictions, weights); tests call it before reading
    /// [`MemoryCache::weighted_size`].
    pub fn run_pending_tasks(&self) {
        if let Some(cache) = &self.inner {
            cache.run_pending_tasks();
        }
    }

    /// Bytes currently held (approximate; moka settles counts lazily).
    pub fn weighted_size(&self) -> u64 {
        self.inner.as_ref().map_or(0, moka::sync::Cache::weighted_size)
    }
}

/// A copy of `bytes` that owns exactly its memory: a mapping of its own when large (when the
/// system refuses one, a heap copy), else a fresh allocation of the exact size.
fn detach(bytes: &[u8]) -> Bytes {
    if bytes.len() >= OWN_MAPPING {
        if let Ok(mut map) = memmap2::MmapMut::map_anon(bytes.len()) {
            map.copy_from_slice(bytes);
            if let Ok(map) = map.make_read_only() {
                return Bytes::from_owner(map);
            }
        }
    }
    Bytes::copy_from_slice(bytes)
}

/// Memory an entry of `len` bytes holds once detached.
fn held(len: usize) -> usize {
    if len >= OWN_MAPPING {
        len.next_multiple_of(PAGE)
    } else {
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(format: ImageFormat) -> VariantKey {
        let ops = crate::transform::Ops::default();
        let plan = crate::transform::geometry::plan((1, 1), &ops, 8192).unwrap();
        VariantKey::new(&crate::ids::ImageId::generate(), &ops, &plan, format)
    }

    fn variant(len: usize) -> Variant {
        let mut bytes = Vec::with_capacity(len * 2);
        bytes.extend((0..len).map(|i| i as u8));
        Variant { bytes: Bytes::from(bytes), format: ImageFormat::Png, width: 1, height: 1 }
    }

    #[test]
    fn kept_entries_hold_the_same_bytes_and_are_weighed_by_what_they_hold() {
        let cache = MemoryCache::new(1 << 20);
        let small = variant(1000);
        let large = variant(OWN_MAPPING + 1);
        let (k1, k2) = (key(ImageFormat::Png), key(ImageFormat::Webp));
        let kept_small = cache.keep(k1, small.clone());
        let kept_large = cache.keep(k2, large.clone());
        assert_eq!((&*kept_small, &*kept_large), (&small, &large));
        assert_ne!(kept_large.bytes.as_ptr(), large.bytes.as_ptr(), "copied out");
        assert_eq!(cache.get(&k2).unwrap().bytes, large.bytes);
        cache.run_pending_tasks();
        let expected = 1000 + (OWN_MAPPING + PAGE) + 2 * ENTRY_OVERHEAD;
        assert_eq!(cache.weighted_size(), expected as u64, "the large one counts whole pages");
    }

    #[test]
    fn with_the_cache_off_nothing_is_copied_or_kept() {
        let cache = MemoryCache::new(0);
        let v = variant(OWN_MAPPING);
        let k = key(ImageFormat::Gif);
        let kept = cache.keep(k, v.clone());
        assert_eq!(kept.bytes.as_ptr(), v.bytes.as_ptr());
        assert!(cache.get(&k).is_none());
    }
}
