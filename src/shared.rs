//! The collaborators every domain service is built from: backends, caches, the worker pool, the
//! quota, the clock and the counters. Opened once by [`crate::services`], cloned (a handful of
//! `Arc`s) into each service.

use std::sync::Arc;

use crate::auth::JwtKeys;
use crate::cache::MemoryCache;
use crate::clock::Clock;
use crate::config::Limits;
use crate::db::Db;
use crate::lookups::Lookups;
use crate::metrics::Metrics;
use crate::purges::Purges;
use crate::quota::Quota;
use crate::storage::{BlobKeys, Store};
use crate::workers::WorkerPool;

/// Collaborators of the domain services.
#[derive(Clone)]
pub struct Shared {
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
    /// Cache tags queued for the CDN's purge webhook.
    pub purges: Purges,
    /// Time source.
    pub clock: Clock,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Upload and transform limits.
    pub limits: Limits,
}

/// Whether the backends answer, for readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Readiness {
    /// The database answered within the deadline.
    pub database: bool,
    /// The object store answered within the deadline.
    pub storage: bool,
}

impl Shared {
    /// Asks the database and the object store at once, each for at most `limit`; a failure is
    /// logged with its cause.
    pub async fn readiness(&self, limit: std::time::Duration) -> Readiness {
        let (db, store) =
            tokio::join!(tokio::time::timeout(limit, self.db.ping()), tokio::time::timeout(limit, self.store.ping()));
        if let Ok(Err(e)) = &db {
            tracing::warn!(error = ?e, "readiness: database check failed");
        }
        if let Ok(Err(e)) = &store {
            tracing::warn!(error = ?e, "readiness: object store check failed");
        }
        Readiness { database: matches!(db, Ok(Ok(()))), storage: matches!(store, Ok(Ok(()))) }
    }
}
