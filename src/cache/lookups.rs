//! Short-lived caches of image records, owner keys and authorised URLs, so a cache hit on `/i`
//! costs no database round trip and, for a URL seen before, no signature check either.
//!
//! Entries live at most `ttl` (10 s by default): a delete or key rotation made on another
//! replica takes effect here within that bound. Changes made through this replica invalidate
//! at once: the entry itself, and every authorised URL (by bumping a generation).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use moka::sync::Cache;

use crate::db::{Db, DbError, ImageRecord, OwnerKey};
use crate::format::ImageFormat;
use crate::ids::{ImageId, UserId};
use crate::transform::VariantKey;

/// Entries per cache; a few MB at most.
const CAPACITY: u64 = 100_000;

/// What is remembered of a signed `/i` URL whose signature, image and ops were checked:
/// everything needed to answer it again from the memory cache.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// Signature expiry (unix seconds), if the URL has one.
    pub exp: Option<i64>,
    /// The variant.
    pub key: VariantKey,
    /// Its `ETag`.
    pub etag: HeaderValue,
    /// Its format.
    pub format: ImageFormat,
    /// Whether the response varies by `Accept`.
    pub vary: bool,
}

/// A remembered URL with what it is compared against on lookup.
#[derive(Debug)]
struct Authorised {
    /// Path and query exactly as requested.
    path: String,
    query: String,
    /// `Accept` class the variant was resolved for (see [`accept_class`]).
    accept: u8,
    /// Generation of local changes when this was checked.
    generation: u64,
    remembered: Remembered,
}

/// Cached lookups in front of the database.
#[derive(Clone)]
pub struct Lookups {
    db: Db,
    images: Option<Cache<ImageId, Option<ImageRecord>>>,
    owners: Option<Cache<UserId, Option<OwnerKey>>>,
    urls: Option<Cache<u64, Arc<Authorised>>>,
    generation: Arc<AtomicU64>,
    hasher: std::collections::hash_map::RandomState,
}

impl Lookups {
    /// Caches over `db` for `ttl`; a zero ttl asks the database every time.
    pub fn new(db: Db, ttl: Duration) -> Self {
        Self {
            db,
            images: cache(ttl),
            owners: cache(ttl),
            urls: cache(ttl),
            generation: Arc::default(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
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

    /// Forgets an image (deleted through this replica) and every authorised URL.
    pub fn forget_image(&self, id: &ImageId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.images {
            cache.invalidate(id);
        }
    }

    /// Forgets an owner's key (rotated through this replica) and every authorised URL.
    pub fn forget_owner(&self, id: &UserId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.owners {
            cache.invalidate(id);
        }
    }

    /// A URL checked earlier and still valid as far as this replica knows.
    pub fn authorised(&self, path: &str, query: &str, accept: u8) -> Option<Remembered> {
        let entry = self.urls.as_ref()?.get(&self.hasher.hash_one((path, query, accept)))?;
        let current = entry.generation == self.generation.load(Ordering::Acquire);
        let same = entry.path == path && entry.query == query && entry.accept == accept;
        (current && same).then(|| entry.remembered.clone())
    }

    /// Remembers a checked URL. Take `generation` from [`Lookups::generation`] *before* the
    /// checks, so a change racing with them invalidates the entry.
    pub fn remember(&self, path: &str, query: &str, accept: u8, generation: u64, remembered: Remembered) {
        if let Some(cache) = &self.urls {
            let entry = Authorised { path: path.to_owned(), query: query.to_owned(), accept, generation, remembered };
            cache.insert(self.hasher.hash_one((path, query, accept)), Arc::new(entry));
        }
    }

    /// The current generation of local changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// Which of the `fmt_auto` outcomes an `Accept` header selects: 2 AVIF, 1 WebP, 0 neither.
pub fn accept_class(accept: Option<&str>) -> u8 {
    let accept = accept.unwrap_or_default();
    if !accept.contains("image/") {
        return 0;
    }
    match crate::transform::resolve_format(
        Some(crate::transform::FormatChoice::Auto),
        ImageFormat::Png,
        false,
        Some(accept),
    ) {
        ImageFormat::Avif => 2,
        ImageFormat::Webp => 1,
        _ => 0,
    }
}

fn cache<K, V>(ttl: Duration) -> Option<Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    (!ttl.is_zero()).then(|| Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build())
}
