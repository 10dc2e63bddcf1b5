//! The shared parts every service is built from: backends, caches, the worker pool, the quota,
//! the clock and the counters. Built once by `app`, cloned (a handful of `Arc`s) into
//! [`Library`](crate::library::Library) and [`Delivery`](crate::delivery::Delivery).

use std::sync::Arc;

use crate::auth::JwtKeys;
use crate::cache::{Lookups, MemoryCache};
use crate::clock::Clock;
use crate::config::Limits;
use crate::db::Db;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::storage::{BlobKeys, Store};
use crate::workers::WorkerPool;

/// Collaborators of the domain services.
#[derive(Clone)]
pub struct Parts {
    /// Metadata repository.
    pub db: Db,
    /// Object store.
    pub store: Store,
    /// Object key layout.
    pub keys: BlobKeys,
    /// Cached image and owner lookups, and remembered URLs.
    pub lookups: Lookups,
    /// In-memory variant cache.
    pub memory: MemoryCache,
    /// CPU workers for transforms and upload checks.
    pub workers: WorkerPool,
    /// CPU workers for password hashing, apart so a login flood cannot starve transforms.
    pub hashing: WorkerPool,
    /// Daily transform quota.
    pub quota: Quota,
    /// Owner tokens.
    pub jwt: JwtKeys,
    /// Time source.
    pub clock: Clock,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Upload and transform limits.
    pub limits: Limits,
}
