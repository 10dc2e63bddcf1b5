//! Short-lived caches of image records and owner keys, so a cache hit on `/i` costs no
//! database round trip.
//!
//! Entries live at most `ttl` (10 s by default): a delete or key rotation made on another
//! replica takes effect here within that bound. Changes made through this replica invalidate
//! the entry at once.

use std::time::Duration;

use moka::sync::Cache;

use crate::db::{Db, DbError, ImageRecord, OwnerKey};
use crate::ids::{ImageId, UserId};

/// Entries per cache; a few MB at most.
const CAPACITY: u64 = 100_000;

/// Cached lookups in front of the database.
#[derive(Clone)]
pub struct Lookups {
    db: Db,
    images: Option<Cache<ImageId, Option<ImageRecord>>>,
    owners: Option<Cache<UserId, Option<OwnerKey>>>,
}

impl Lookups {
    /// Caches over `db` for `ttl`; a zero ttl asks the database every time.
    pub fn new(db: Db, ttl: Duration) -> Self {
        Self { db, images: cache(ttl), owners: cache(ttl) }
    }

    /// The image record, `None` when there is no such image.
    ///
    /// # Errors
    /// The database call fails.
    pub async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, DbError> {
        if let Some(hit) = self.images.as_ref().and_then(|c| c.get(id)) {
            return Ok(hit);
        }
        let record = self.db.image(id).await?;
        if let Some(cache) = &self.images {
            cache.insert(id.clone(), record.clone());
        }
        Ok(record)
    }

    /// The owner's key and plan, `None` when there is no such user.
    ///
    /// # Errors
    /// The database call fails.
    pub async fn owner(&self, id: &UserId) -> Result<Option<OwnerKey>, DbError> {
        if let Some(hit) = self.owners.as_ref().and_then(|c| c.get(id)) {
            return Ok(hit);
        }
        let owner = self.db.owner_key(id).await?;
        if let Some(cache) = &self.owners {
            cache.insert(id.clone(), owner.clone());
        }
        Ok(owner)
    }

    /// Forgets an image (deleted through this replica).
    pub fn forget_image(&self, id: &ImageId) {
        if let Some(cache) = &self.images {
            cache.invalidate(id);
        }
    }

    /// Forgets an owner's key (rotated through this replica).
    pub fn forget_owner(&self, id: &UserId) {
        if let Some(cache) = &self.owners {
            cache.invalidate(id);
        }
    }
}

fn cache<K, V>(ttl: Duration) -> Option<Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    (!ttl.is_zero()).then(|| Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build())
}
