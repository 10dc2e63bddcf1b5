//! Caches in front of the database and the object store: short-lived lookups of images and
//! owner keys, the byte-bounded in-memory variant cache, single flight for misses, and the
//! variants whose transform failed.

pub mod failures;
pub mod flight;
pub mod lookups;
pub mod memory;

pub use failures::Failures;
pub use flight::Flights;
pub use lookups::Lookups;
pub use memory::{MemoryCache, Variant};

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
