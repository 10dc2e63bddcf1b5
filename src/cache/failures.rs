//! Transforms that failed, remembered per variant for a while: asking again for a variant whose
//! original cannot be decoded, or whose pipeline refused it, answers the same error from here —
//! no store read, no charge, no worker. A failing URL then costs what a cache hit costs.
//!
//! Only the pipeline's own verdicts are kept (corrupt data, too much memory, an encoder that
//! refused, a decoder that panicked): they say the same thing every time. Overload, quota and
//! backend failures pass and are never remembered.

use std::time::Duration;

use moka::sync::Cache;

use crate::transform::{PipelineError, VariantKey};

/// Bytes charged per remembered failure on top of its message.
const ENTRY_OVERHEAD: usize = 192;

/// Failed variants, each for `ttl`, at most `max_bytes` of them; a zero ttl or size remembers
/// nothing.
#[derive(Clone)]
pub struct Failures {
    inner: Option<Cache<VariantKey, PipelineError>>,
}

impl Failures {
    /// A memo keeping each failure `ttl`, within `max_bytes`.
    pub fn new(ttl: Duration, max_bytes: u64) -> Self {
        let inner = (!ttl.is_zero() && max_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|_: &VariantKey, e: &PipelineError| {
                    u32::try_from(e.to_string().len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build()
        });
        Self { inner }
    }

    /// The error the variant's transform ended with, while it is remembered.
    pub fn get(&self, key: &VariantKey) -> Option<PipelineError> {
        self.inner.as_ref()?.get(key)
    }

    /// Remembers that `key`'s transform failed with `error`.
    pub fn remember(&self, key: VariantKey, error: PipelineError) {
        if let Some(cache) = &self.inner {
            cache.insert(key, error);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> VariantKey {
        let ops = crate::transform::Ops::default();
        let plan = crate::transform::geometry::plan((1, 1), &ops, 8192).unwrap();
        VariantKey::new(&crate::ids::ImageId::generate(), &ops, &plan, crate::format::ImageFormat::Png)
    }

    #[test]
    fn failures_come_back_for_their_variant_unless_the_memo_is_off() {
        let failures = Failures::new(Duration::from_secs(600), 1 << 20);
        let (k, other) = (key(), key());
        failures.remember(k, PipelineError::Decode("bad".into()));
        assert_eq!(failures.get(&k), Some(PipelineError::Decode("bad".into())));
        assert_eq!(failures.get(&other), None);
        let off = Failures::new(Duration::ZERO, 1 << 20);
        off.remember(k, PipelineError::Panicked);
        assert_eq!(off.get(&k), None);
    }
}
