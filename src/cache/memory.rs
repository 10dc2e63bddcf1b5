//! In-memory variant cache (moka), bounded by the bytes it holds.

use std::sync::Arc;

use bytes::Bytes;

use crate::format::ImageFormat;
use crate::transform::VariantKey;

/// Bytes charged per entry on top of its payload: the key, the `Arc<Variant>` allocation and
/// moka's own entry, deque node and frequency sketch share, rounded up.
const ENTRY_OVERHEAD: usize = 256;

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
    inner: Option<moka::sync::Cache<VariantKey, Arc<Variant>>>,
}

impl MemoryCache {
    /// A cache holding at most `max_bytes` of variants.
    pub fn new(max_bytes: u64) -> Self {
        let inner = (max_bytes > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &VariantKey, v: &Arc<Variant>| {
                    u32::try_from(v.bytes.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .build()
        });
        Self { inner }
    }

    /// The cached variant, if any.
    pub fn get(&self, key: &VariantKey) -> Option<Arc<Variant>> {
        self.inner.as_ref()?.get(key)
    }

    /// Caches a variant (entries larger than the budget are skipped by moka).
    pub fn insert(&self, key: VariantKey, variant: Arc<Variant>) {
        if let Some(cache) = &self.inner {
            cache.insert(key, variant);
        }
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
