//! `imgedge sweep`: removes objects whose image no longer exists.
//!
//! Uploads store the object before the row and deletes remove the row before the objects, so a
//! crash or a store failure half way can only leave objects without a row — never a row without
//! its object. This sweep finds those orphans (originals and variants) and deletes them. Objects
//! younger than a grace period are left alone: they may belong to an upload in progress.

use std::collections::HashSet;
use std::time::{Duration, SystemTime};

use crate::db::{Db, DbError};
use crate::storage::{BlobKeys, StorageError, Store};

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects looked at.
    pub scanned: usize,
    /// Objects of images that do not exist.
    pub orphans: usize,
    /// Orphans deleted (0 on a dry run).
    pub deleted: usize,
    /// Orphans younger than the grace period, kept.
    pub recent: usize,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Reading the image ids failed.
    #[error("database: {0}")]
    Db(#[from] DbError),
    /// Listing or deleting objects failed.
    #[error("object store: {0}")]
    Storage(#[from] StorageError),
}

/// Deletes objects under both prefixes whose image id is not in the database and that are older
/// than `grace` at `now`. With `dry_run`, only counts them.
///
/// # Errors
/// The database or the store fails.
pub async fn sweep(
    db: &Db,
    store: &Store,
    keys: &BlobKeys,
    grace: Duration,
    dry_run: bool,
    now: SystemTime,
) -> Result<Report, SweepError> {
    let live: HashSet<_> = db.image_ids().await?.into_iter().collect();
    let mut report = Report::default();
    for prefix in [keys.originals_prefix(), keys.derived_prefix()] {
        for object in store.list(prefix).await? {
            report.scanned += 1;
            let Some(id) = keys.image_of(&object.key) else { continue };
            if live.contains(&id) {
                continue;
            }
            report.orphans += 1;
            let age = object.modified.and_then(|m| now.duration_since(m).ok()).unwrap_or(Duration::MAX);
            if age < grace {
                report.recent += 1;
            } else if !dry_run {
                store.delete(&object.key).await?;
                report.deleted += 1;
                tracing::info!(key = object.key.as_str(), "deleted orphaned object");
            }
        }
    }
    Ok(report)
}
