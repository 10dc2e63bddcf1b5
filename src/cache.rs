//! The variant caches of a replica: the byte-bounded in-memory cache of encoded variants, and
//! the variants whose transform failed. (Records are cached by [`crate::lookups`]; single flight
//! lives with delivery.)

pub mod failures;
pub mod memory;

pub use failures::Failures;
pub use memory::{MemoryCache, Variant};

use std::hash::{BuildHasherDefault, Hasher};

use http::HeaderValue;

/// Hashes keys that are digests already (a blake3 variant key, a keyed hash of a URL) by
/// taking them as they are: hashing them again buys no spread, and cost a memory hit two
/// SipHash passes. Such keys write one `u64`; anything else is folded in, byte by byte.
#[derive(Debug, Default, Clone, Copy)]
pub struct Digested(u64);

impl Hasher for Digested {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// The [`Digested`] hasher for moka's builders.
pub type DigestedState = BuildHasherDefault<Digested>;

/// Where a variant came from, as reported in `X-Cache`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// This replica's memory.
    Memory,
    /// The object store.
    Store,
    /// Made now (or joined a transform already running).
    Miss,
}

impl Tier {
    /// The `X-Cache` header value.
    pub fn header(self) -> &'static str {
        match self {
            Self::Memory => "hit-memory",
            Self::Store => "hit-store",
            Self::Miss => "miss",
        }
    }
}

/// The request headers an answer depends on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Vary {
    /// `Accept` (`fmt_auto`).
    pub accept: bool,
    /// `Sec-CH-Width` and `Width` (`w_auto`).
    pub width: bool,
    /// `Sec-CH-DPR` and `DPR` (`dpr_auto`).
    pub dpr: bool,
    /// `Save-Data` (it lowered the quality).
    pub save_data: bool,
}

impl Vary {
    /// True when the answer depends on a hint (such answers are not remembered by URL).
    pub fn has_hints(self) -> bool {
        self.width || self.dpr || self.save_data
    }

    /// The `Vary` header, `None` when the answer depends on no request header. A static
    /// value: every `fmt_auto` hit carries one.
    pub fn header(self) -> Option<HeaderValue> {
        /// Every combination, indexed by the flags as bits (accept 1, width 2, dpr 4, save-data 8).
        const VALUES: [&str; 16] = [
            "",
            "Accept",
            "Sec-CH-Width, Width",
            "Accept, Sec-CH-Width, Width",
            "Sec-CH-DPR, DPR",
            "Accept, Sec-CH-DPR, DPR",
            "Sec-CH-Width, Width, Sec-CH-DPR, DPR",
            "Accept, Sec-CH-Width, Width, Sec-CH-DPR, DPR",
            "Save-Data",
            "Accept, Save-Data",
            "Sec-CH-Width, Width, Save-Data",
            "Accept, Sec-CH-Width, Width, Save-Data",
            "Sec-CH-DPR, DPR, Save-Data",
            "Accept, Sec-CH-DPR, DPR, Save-Data",
            "Sec-CH-Width, Width, Sec-CH-DPR, DPR, Save-Data",
            "Accept, Sec-CH-Width, Width, Sec-CH-DPR, DPR, Save-Data",
        ];
        let bits = usize::from(self.accept)
            | usize::from(self.width) << 1
            | usize::from(self.dpr) << 2
            | usize::from(self.save_data) << 3;
        (bits != 0).then(|| HeaderValue::from_static(VALUES[bits]))
    }
}

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use super::{DigestedState, Vary};

    /// Keys that are digests pass through: a `u64` hashes to itself (variant keys: see
    /// `canonical`'s tests).
    #[test]
    fn digests_are_their_own_hash() {
        let state = DigestedState::default();
        assert_eq!(state.hash_one(0x1234_5678_9abc_def0_u64), 0x1234_5678_9abc_def0);
        assert_eq!(state.hash_one(7_u64), 7);
    }

    /// Each flag names its headers, in one order, whichever others are set.
    #[test]
    fn vary_names_the_headers_of_each_flag_in_order() {
        for bits in 0..16u8 {
            let flag = |bit: u8| bits & (1 << bit) != 0;
            let vary = Vary { accept: flag(0), width: flag(1), dpr: flag(2), save_data: flag(3) };
            let names = [
                (vary.accept, "Accept"),
                (vary.width, "Sec-CH-Width, Width"),
                (vary.dpr, "Sec-CH-DPR, DPR"),
                (vary.save_data, "Save-Data"),
            ];
            let expected: Vec<&str> = names.into_iter().filter_map(|(on, name)| on.then_some(name)).collect();
            let header = vary.header().map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(header, (!expected.is_empty()).then(|| expected.join(", ")), "{vary:?}");
        }
    }
}
