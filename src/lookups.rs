//! Short-lived caches of image records, owner keys and authorised URLs, so a cache hit on `/i`
//! costs no database round trip and, for a URL seen before, no signature check either.
//!
//! Revocation is bounded by `ttl` (10 s by default), counted from the change:
//! - a record is kept `ttl` from when it was read from the database, so a delete or key rotation
//!   made on another replica takes effect here within `ttl`;
//! - a remembered URL lives only as long as the records it was checked with, however late it was
//!   remembered;
//! - changes made through this replica take effect at once: the record is dropped and a
//!   generation is bumped, which voids every remembered URL and keeps a read that was in flight
//!   during the change from putting the old record back.

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use http::HeaderValue;
use moka::sync::Cache;

use crate::cache::DigestedState;
use crate::clock::Clock;
use crate::db::{Db, DbError, ImageRecord, OwnerKey, Preset};
use crate::format::ImageFormat;
use crate::ids::{ImageId, UserId};
use crate::transform::VariantKey;

/// Records per cache; a few MB at most.
const CAPACITY: u64 = 100_000;

/// Bytes a remembered URL is charged on top of its path and query.
const URL_OVERHEAD: usize = 256;

/// Bytes an owner's cached presets are charged for each preset, on top of its name and ops,
/// and for the owner.
const PRESET_OVERHEAD: usize = 128;

/// One owner's presets by name.
pub type OwnerPresets = std::collections::BTreeMap<String, Preset>;

/// A database record (or its absence) and when it was read.
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    /// The record; `None` when there is none.
    pub value: Option<T>,
    /// When the database said so (by the injectable clock, so tests move past the bound
    /// instead of sleeping through it).
    pub at: DateTime<Utc>,
}

/// What is remembered of a signed `/i` URL whose signature, image and ops were checked:
/// everything needed to answer it again from the memory cache.
#[derive(Debug, Clone)]
pub struct Remembered {
    /// Signature expiry (unix seconds), if the URL has one.
    pub exp: Option<i64>,
    /// The image (for the variant's key in the store).
    pub image: crate::ids::ImageId,
    /// The tags a CDN purges it by.
    pub tags: Option<crate::purges::Tags>,
    /// The variant.
    pub key: VariantKey,
    /// Its `ETag`.
    pub etag: HeaderValue,
    /// Its format.
    pub format: ImageFormat,
    /// The request headers the response varies by.
    pub vary: crate::cache::Vary,
}

/// A remembered URL with what it is compared against on lookup.
#[derive(Debug)]
struct Authorised {
    path: String,
    query: String,
    /// `Accept` class the variant was resolved for (see [`accept_class`]).
    accept: u8,
    /// Generation of local changes when this was checked.
    generation: u64,
    /// Expiry of the oldest record it was checked with.
    valid_until: DateTime<Utc>,
    remembered: Arc<Remembered>,
}

/// Cached lookups in front of the database.
#[derive(Clone)]
pub struct Lookups {
    db: Db,
    ttl: Duration,
    clock: Clock,
    images: Option<Cache<ImageId, Fetched<ImageRecord>>>,
    owners: Option<Cache<UserId, Fetched<OwnerKey>>>,
    presets: Option<Cache<UserId, Fetched<Arc<OwnerPresets>>>>,
    urls: Option<Cache<u64, Arc<Authorised>, DigestedState>>,
    generation: Arc<AtomicU64>,
    /// Keys the URL cache by a keyed hash of the URL (a collision is a miss: entries keep their
    /// URL and are compared in full). foldhash: SipHash here, and again inside moka, were 5 % of
    /// a memory hit's instructions.
    hasher: foldhash::quality::RandomState,
}

impl Lookups {
    /// Caches over `db` for `ttl`, remembering at most `url_bytes` of checked URLs and
    /// `preset_bytes` of owners' presets; a zero ttl asks the database every time.
    pub fn new(db: Db, clock: Clock, ttl: Duration, url_bytes: u64, preset_bytes: u64) -> Self {
        let urls = (!ttl.is_zero() && url_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(url_bytes)
                .weigher(|_, e: &Arc<Authorised>| {
                    u32::try_from(e.path.len() + e.query.len() + URL_OVERHEAD).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build_with_hasher(DigestedState::default())
        });
        // An owner's presets are cached whole, so a name they do not have costs no query.
        let presets = (!ttl.is_zero() && preset_bytes > 0).then(|| {
            Cache::builder()
                .max_capacity(preset_bytes)
                .weigher(|_, e: &Fetched<Arc<OwnerPresets>>| {
                    let presets = e.value.as_deref().into_iter().flat_map(|m| m.values());
                    let bytes = presets.map(|p| p.name.len() + p.ops.len() + PRESET_OVERHEAD).sum::<usize>();
                    u32::try_from(bytes + PRESET_OVERHEAD).unwrap_or(u32::MAX)
                })
                .time_to_live(ttl)
                .build()
        });
        Self {
            db,
            ttl,
            clock,
            images: cache(ttl),
            owners: cache(ttl),
            presets,
            urls,
            generation: Arc::default(),
            hasher: foldhash::quality::RandomState::default(),
        }
    }

    /// The image record, `None` when there is no such image.
    ///
    /// # Errors
    /// The database call fails.
    pub async fn image(&self, id: &ImageId) -> Result<Fetched<ImageRecord>, DbError> {
        fetch(self.images.as_ref(), id, self.window(), || self.db.image(id)).await
    }

    /// The owner's key and plan, `None` when there is no such user.
    ///
    /// # Errors
    /// The database call fails.
    pub async fn owner(&self, id: &UserId) -> Result<Fetched<OwnerKey>, DbError> {
        fetch(self.owners.as_ref(), id, self.window(), || self.db.owner_key(id)).await
    }

    /// One of `owner`'s presets, `None` when there is no such preset. Read from the owner's
    /// presets, cached whole: any name, known or not, costs one query per owner and ttl.
    ///
    /// # Errors
    /// The database call fails.
    pub async fn preset(&self, owner: &UserId, name: &str) -> Result<Fetched<Preset>, DbError> {
        let read = || async {
            let all = self.db.presets(owner, None, u32::MAX).await?;
            Ok(Some(Arc::new(all.into_iter().map(|p| (p.name.clone(), p)).collect::<OwnerPresets>())))
        };
        let all = fetch(self.presets.as_ref(), owner, self.window(), read).await?;
        Ok(Fetched { value: all.value.and_then(|m| m.get(name).cloned()), at: all.at })
    }

    /// Forgets an owner's presets (one changed or was deleted through this replica).
    pub fn forget_presets(&self, owner: &UserId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.presets {
            cache.invalidate(owner);
        }
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

    /// A URL checked earlier and still valid at `now` as far as this replica knows.
    pub fn authorised(&self, path: &str, query: &str, accept: u8, now: DateTime<Utc>) -> Option<Arc<Remembered>> {
        let entry = self.urls.as_ref()?.get(&self.hasher.hash_one((path, query, accept)))?;
        let current = entry.generation == self.generation.load(Ordering::Acquire);
        let same = entry.path == path && entry.query == query && entry.accept == accept;
        (current && same && now < entry.valid_until).then(|| Arc::clone(&entry.remembered))
    }

    /// Remembers a checked URL until the oldest of the records it was checked with (read at
    /// `checked_with`) expires. Take `generation` from [`Lookups::generation`] *before* the
    /// checks, so a change racing with them voids the entry.
    pub fn remember(
        &self,
        (path, query, accept): (&str, &str, u8),
        generation: u64,
        checked_with: DateTime<Utc>,
        remembered: Remembered,
    ) {
        if let Some(cache) = &self.urls {
            let valid_until = checked_with + self.ttl;
            let remembered = Arc::new(remembered);
            let entry =
                Authorised { path: path.into(), query: query.into(), accept, generation, valid_until, remembered };
            cache.insert(self.hasher.hash_one((path, query, accept)), Arc::new(entry));
        }
    }

    /// What [`fetch`] needs to judge and stamp a record.
    fn window(&self) -> Window<'_> {
        Window { ttl: self.ttl, clock: &self.clock, generation: &self.generation }
    }

    /// The current generation of local changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }
}

/// How long records live, by which clock, and the generation of local changes.
struct Window<'a> {
    ttl: Duration,
    clock: &'a Clock,
    generation: &'a AtomicU64,
}

/// A record from `cache`, else from the database. A read that overlapped a local change is
/// answered but not kept: it may hold what the change just removed.
async fn fetch<K, T, F>(
    cache: Option<&Cache<K, Fetched<T>>>,
    key: &K,
    window: Window<'_>,
    read: impl FnOnce() -> F,
) -> Result<Fetched<T>, DbError>
where
    K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
    T: Clone + Send + Sync + 'static,
    F: std::future::Future<Output = Result<Option<T>, DbError>>,
{
    let fresh = |hit: &Fetched<T>| window.clock.now() < hit.at + window.ttl;
    if let Some(hit) = cache.and_then(|c| c.get(key)).filter(fresh) {
        return Ok(hit);
    }
    let before = window.generation.load(Ordering::Acquire);
    let fetched = Fetched { at: window.clock.now(), value: read().await? };
    if let Some(cache) = cache.filter(|_| window.generation.load(Ordering::Acquire) == before) {
        cache.insert(key.clone(), fetched.clone());
    }
    Ok(fetched)
}

/// What an `Accept` header says to `fmt_auto`: bit 2 JPEG XL, bit 1 AVIF, bit 0 WebP (all
/// decide, as an animation takes WebP over the others).
pub fn accept_class(accept: Option<&str>) -> u8 {
    let accept = accept.unwrap_or_default();
    if !accept.contains("image/") {
        return 0;
    }
    u8::from(crate::transform::canonical::accepts(accept, "image/jxl")) << 2
        | u8::from(crate::transform::canonical::accepts(accept, "image/avif")) << 1
        | u8::from(crate::transform::canonical::accepts(accept, "image/webp"))
}

fn cache<K, V>(ttl: Duration) -> Option<Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    // The entry's age counts from the database read, which is when it was inserted.
    (!ttl.is_zero()).then(|| Cache::builder().max_capacity(CAPACITY).time_to_live(ttl).build())
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use chrono::NaiveDate;
    use tokio::sync::Semaphore;

    use super::*;
    use crate::auth::SigningKey;
    use crate::db::{NewUser, PageAfter, Repository, User};

    /// The real SQLite repository, except that an image read, once it has its row, waits for
    /// a permit before answering: a read held in flight across a change.
    struct HeldReads {
        inner: Db,
        release: Semaphore,
        /// Told when a read has its row and is held.
        reached: tokio::sync::Notify,
    }

    #[async_trait]
    impl Repository for HeldReads {
        async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, DbError> {
            let row = self.inner.image(id).await?;
            self.reached.notify_one();
            let _permit = self.release.acquire().await.expect("open semaphore");
            Ok(row)
        }
        async fn ping(&self) -> Result<(), DbError> {
            self.inner.ping().await
        }
        async fn create_user(&self, user: &NewUser) -> Result<User, DbError> {
            self.inner.create_user(user).await
        }
        async fn user_by_username(&self, name: &str) -> Result<Option<(User, String)>, DbError> {
            self.inner.user_by_username(name).await
        }
        async fn user(&self, id: &UserId) -> Result<Option<User>, DbError> {
            self.inner.user(id).await
        }
        async fn owner_key(&self, id: &UserId) -> Result<Option<OwnerKey>, DbError> {
            self.inner.owner_key(id).await
        }
        async fn set_signing_key(&self, id: &UserId, key: &SigningKey) -> Result<bool, DbError> {
            self.inner.set_signing_key(id, key).await
        }
        async fn set_plan(&self, id: &UserId, plan: &str) -> Result<bool, DbError> {
            self.inner.set_plan(id, plan).await
        }
        async fn insert_image(&self, image: &ImageRecord) -> Result<(), DbError> {
            self.inner.insert_image(image).await
        }
        async fn storage(&self, o: &UserId) -> Result<crate::db::Storage, DbError> {
            self.inner.storage(o).await
        }
        async fn list_images(&self, o: &UserId, a: Option<&PageAfter>, n: u32) -> Result<Vec<ImageRecord>, DbError> {
            self.inner.list_images(o, a, n).await
        }
        async fn delete_image(&self, id: &ImageId) -> Result<bool, DbError> {
            self.inner.delete_image(id).await
        }
        async fn set_image_public(&self, id: &ImageId, public: bool) -> Result<bool, DbError> {
            self.inner.set_image_public(id, public).await
        }
        async fn purge_variants(&self, id: &ImageId) -> Result<Option<u32>, DbError> {
            self.inner.purge_variants(id).await
        }
        async fn charge_quota(&self, u: &UserId, d: NaiveDate, l: u32) -> Result<Option<u32>, DbError> {
            self.inner.charge_quota(u, d, l).await
        }
        async fn refund_quota(&self, u: &UserId, d: NaiveDate) -> Result<(), DbError> {
            self.inner.refund_quota(u, d).await
        }
        async fn image_ids(&self) -> Result<Vec<ImageId>, DbError> {
            self.inner.image_ids().await
        }
        fn pool_state(&self) -> crate::db::PoolState {
            self.inner.pool_state()
        }
        async fn users(&self) -> Result<Vec<crate::db::User>, DbError> {
            self.inner.users().await
        }
        async fn delete_user(&self, id: &UserId) -> Result<bool, DbError> {
            self.inner.delete_user(id).await
        }
        async fn put_preset(&self, p: &crate::db::Preset, max: u32) -> Result<bool, DbError> {
            self.inner.put_preset(p, max).await
        }
        async fn preset(&self, owner: &UserId, name: &str) -> Result<Option<crate::db::Preset>, DbError> {
            self.inner.preset(owner, name).await
        }
        async fn presets(&self, o: &UserId, a: Option<&str>, n: u32) -> Result<Vec<crate::db::Preset>, DbError> {
            self.inner.presets(o, a, n).await
        }
        async fn delete_preset(&self, owner: &UserId, name: &str) -> Result<bool, DbError> {
            self.inner.delete_preset(owner, name).await
        }
        async fn images_to_backfill(&self, limit: u32) -> Result<Vec<ImageRecord>, DbError> {
            self.inner.images_to_backfill(limit).await
        }
        async fn set_inspection(&self, id: &ImageId, i: &crate::db::Inspection) -> Result<bool, DbError> {
            self.inner.set_inspection(id, i).await
        }
        async fn queue_purge(&self, tags: &str, now_ms: i64) -> Result<(), DbError> {
            self.inner.queue_purge(tags, now_ms).await
        }
        async fn take_purges(&self, now: i64, until: i64, n: u32) -> Result<Vec<crate::db::QueuedPurge>, DbError> {
            self.inner.take_purges(now, until, n).await
        }
        async fn purges_done(&self, ids: &[i64]) -> Result<(), DbError> {
            self.inner.purges_done(ids).await
        }
        async fn purges_failed(&self, ids: &[i64], next_ms: i64) -> Result<(), DbError> {
            self.inner.purges_failed(ids, next_ms).await
        }
    }

    #[tokio::test]
    async fn a_read_in_flight_during_a_delete_does_not_put_the_record_back() {
        let dir = tempfile::tempdir().unwrap();
        let inner: Db = Arc::new(crate::db::sqlite::SqliteRepo::open(&dir.path().join("t.db")).await.unwrap());
        let now = crate::db::to_micros(chrono::Utc::now());
        let user = NewUser {
            id: UserId::generate(),
            username: "owner".into(),
            password_hash: "x".into(),
            signing_key: SigningKey::generate(),
            created_at: now,
        };
        inner.create_user(&user).await.unwrap();
        let image = ImageRecord {
            id: ImageId::generate(),
            owner: user.id.clone(),
            format: ImageFormat::Png,
            width: 1,
            height: 1,
            size_bytes: 1,
            content_hash: String::new(),
            has_alpha: false,
            placeholder: None,
            frames: Some(1),
            public: false,
            levels: Some(0),
            copies_bytes: Some(0),
            purges: 0,
            created_at: now,
        };
        inner.insert_image(&image).await.unwrap();
        let held = Arc::new(HeldReads {
            inner: Arc::clone(&inner),
            release: Semaphore::new(0),
            reached: tokio::sync::Notify::new(),
        });
        let lookups = Lookups::new(Arc::clone(&held) as Db, Clock::system(), Duration::from_secs(60), 1 << 20, 1 << 20);
        let in_flight = tokio::spawn({
            let (lookups, id) = (lookups.clone(), image.id.clone());
            async move { lookups.image(&id).await.unwrap().value }
        });
        // The read has its row; now the image is deleted through this replica.
        held.reached.notified().await;
        assert!(inner.delete_image(&image.id).await.unwrap());
        lookups.forget_image(&image.id);
        held.release.add_permits(100);
        assert_eq!(in_flight.await.unwrap(), Some(image.clone()), "the overlapping read answers what it saw");
        assert_eq!(lookups.image(&image.id).await.unwrap().value, None, "but did not keep it");
    }
}
