//! `imgedge sweep`: removes objects whose image no longer exists (and the variant claims that
//! killed replicas left behind).
//!
//! Uploads store the object before the row and deletes remove the row before the objects, so a
//! crash or a store failure half way can only leave objects without a row — never a row without
//! its object. This sweep finds those orphans (originals and variants) and deletes them.
//!
//! It runs while the service serves, so it never deletes an object whose row exists when it
//! deletes: [`plan`] lists the store and the image ids once to find candidates, and [`apply`]
//! asks the database again, image by image, just before each delete. Objects younger than a
//! grace period are left alone (an upload in progress has its object before its row); a
//! modification time in the future, or none at all, counts as age 0.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, SystemTime};

use crate::db::{Db, DbError};
use crate::ids::ImageId;
use crate::storage::{BlobKey, BlobKeys, Listed, StorageError, Store};

/// What a sweep found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Objects looked at.
    pub scanned: usize,
    /// Objects of images that did not exist when they were listed.
    pub orphans: usize,
    /// Orphans deleted (0 on a dry run).
    pub deleted: usize,
    /// Orphans younger than the grace period, kept.
    pub recent: usize,
    /// Orphans whose image appeared before they were deleted (an upload finishing), kept.
    pub claimed: usize,
    /// Empty folders removed (local store).
    pub folders: usize,
    /// Variant claims of killed replicas, expired for longer than the grace period, deleted.
    pub claims: u64,
}

/// Why a sweep stopped.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// Reading the image ids failed.
    #[error("database")]
    Db(#[from] DbError),
    /// Listing or deleting objects failed.
    #[error("object store")]
    Storage(#[from] StorageError),
}

/// Objects without an image row when the store and the database were read.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Candidates by image, with their keys.
    candidates: BTreeMap<ImageId, Vec<BlobKey>>,
    report: Report,
}

/// Lists both prefixes and the image ids; objects of unknown images older than `grace` at
/// `now` become candidates.
///
/// # Errors
/// The database or the store fails.
pub async fn plan(
    db: &Db,
    store: &Store,
    keys: &BlobKeys,
    grace: Duration,
    now: SystemTime,
) -> Result<Plan, SweepError> {
    let mut objects: Vec<Listed> = Vec::new();
    for prefix in [keys.originals_prefix(), keys.derived_prefix()] {
        objects.extend(store.list(prefix).await?);
    }
    // Listed before the ids are read: an object written after its row cannot look orphaned.
    let live: HashSet<ImageId> = db.image_ids().await?.into_iter().collect();
    let mut plan = Plan::default();
    for object in objects {
        plan.report.scanned += 1;
        let Some(id) = keys.image_of(&object.key) else { continue };
        if live.contains(&id) {
            continue;
        }
        plan.report.orphans += 1;
        let age = object.modified.and_then(|m| now.duration_since(m).ok()).unwrap_or(Duration::ZERO);
        if age < grace {
            plan.report.recent += 1;
        } else {
            plan.candidates.entry(id).or_default().push(object.key);
        }
    }
    Ok(plan)
}

/// Deletes the candidates of `plan` whose image still does not exist, asking the database
/// again for each image just before deleting its objects; then removes empty folders. With
/// `dry_run`, deletes nothing.
///
/// # Errors
/// The database or the store fails.
pub async fn apply(plan: Plan, db: &Db, store: &Store, keys: &BlobKeys, dry_run: bool) -> Result<Report, SweepError> {
    let mut report = plan.report;
    for (id, objects) in plan.candidates {
        if db.image(&id).await?.is_some() {
            report.claimed += objects.len();
            continue;
        }
        if dry_run {
            continue;
        }
        for key in objects {
            store.delete(&key).await?;
            report.deleted += 1;
            tracing::info!(key = key.as_str(), "deleted orphaned object");
        }
    }
    if !dry_run {
        report.folders = store.remove_empty_folders(keys.derived_prefix()).await?;
    }
    Ok(report)
}

/// [`plan`] then [`apply`].
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
    let plan = plan(db, store, keys, grace, now).await?;
    let mut report = apply(plan, db, store, keys, dry_run).await?;
    if !dry_run {
        // A replica killed while making a variant leaves its claim behind; the next request for
        // that variant takes it over, and this forgets the ones nobody asked for again.
        let before = chrono::DateTime::<chrono::Utc>::from(now) - grace;
        report.claims = db.forget_expired_claims(before).await?;
    }
    Ok(report)
}
