//! The variant caches of a replica: the byte-bounded in-memory cache of encoded variants, and
//! the variants whose transform failed. (Records are cached by [`crate::lookups`]; single flight
//! lives with delivery.)

pub mod failures;
pub mod memory;

pub use failures::Failures;
pub use memory::{MemoryCache, Variant};

use http::HeaderValue;

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

    /// The `Vary` header, `None` when the answer depends on no request header.
    pub fn header(self) -> Option<HeaderValue> {
        let names: Vec<&str> = [
            (self.accept, "Accept"),
            (self.width, "Sec-CH-Width, Width"),
            (self.dpr, "Sec-CH-DPR, DPR"),
            (self.save_data, "Save-Data"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        (!names.is_empty()).then(|| HeaderValue::from_str(&names.join(", ")).ok()).flatten()
    }
}
