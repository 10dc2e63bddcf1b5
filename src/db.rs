//! Metadata: owners, images and the daily quota, behind one [`Repository`] trait with a SQLite
//! and a PostgreSQL implementation chosen at start-up.

pub mod migrate;
pub mod postgres;
pub mod sqlite;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};

use crate::auth::SigningKey;
use crate::config::{DatabaseBackend, DatabaseConfig};
use crate::format::ImageFormat;
use crate::ids::{ImageId, UserId};
use crate::placeholder::Placeholder;
use crate::BoxError;

/// The rows the start-up backfill inspects again: what an upload check records is missing, or
/// the working copies are an earlier set ([`crate::transform::levels::EARLIER_MASKS`]), or their
/// bytes were never counted.
pub(crate) static BACKFILL_WHERE: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let earlier = crate::transform::levels::EARLIER_MASKS.map(|m| m.to_string()).join(", ");
    format!("thumbhash IS NULL OR frames IS NULL OR levels IS NULL OR levels IN ({earlier}) OR copies_bytes IS NULL")
});

/// Shared handle to the configured repository.
pub type Db = Arc<dyn Repository>;

/// A failed database call.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint rejected the write (e.g. a taken username).
    #[error("unique constraint violated")]
    Conflict,
    /// The row a write refers to is gone (an image or preset of a deleted owner).
    #[error("the row this refers to is gone")]
    Orphan,
    /// No pooled connection became free within the checkout timeout.
    #[error("timed out waiting for a database connection")]
    PoolTimeout,
    /// The database cannot be reached.
    #[error("database unreachable")]
    Unavailable(#[source] BoxError),
    /// A stored value does not have the expected shape.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// Any other failure of the driver or the SQL.
    #[error("database error")]
    Backend(#[source] BoxError),
}

impl DbError {
    /// True when retrying later may succeed (pool exhausted, database down).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::PoolTimeout | Self::Unavailable(_))
    }
}

/// An owner as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Id.
    pub id: UserId,
    /// Unique (case-insensitively) login name.
    pub username: String,
    /// Plan name, selecting the daily quota.
    pub plan: String,
    /// When the account was made.
    pub created_at: DateTime<Utc>,
    /// Transforms charged on `transform_date`.
    pub transform_count: u32,
    /// UTC day of `transform_count`; `None` before the first transform.
    pub transform_date: Option<NaiveDate>,
}

impl User {
    /// Transforms used on `today` (a count from an earlier day is zero today).
    pub fn used_on(&self, today: NaiveDate) -> u32 {
        if self.transform_date == Some(today) {
            self.transform_count
        } else {
            0
        }
    }
}

/// An owner's URL signing key and plan, as needed to serve `/i`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerKey {
    /// HMAC key of the owner's URLs.
    pub signing_key: SigningKey,
    /// Plan, selecting the daily quota.
    pub plan: String,
}

/// A user about to be created.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Id.
    pub id: UserId,
    /// Login name.
    pub username: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Initial URL signing key.
    pub signing_key: SigningKey,
    /// Creation time (microsecond precision).
    pub created_at: DateTime<Utc>,
}

/// An uploaded original.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRecord {
    /// Id.
    pub id: ImageId,
    /// Owner.
    pub owner: UserId,
    /// Sniffed format.
    pub format: ImageFormat,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// Size of the original.
    pub size_bytes: u64,
    /// blake3 hex of the original.
    pub content_hash: String,
    /// Whether the original has an alpha channel (decides `fmt_auto` without decoding).
    pub has_alpha: bool,
    /// Placeholders; `None` only for rows uploaded before they existed, until the backfill.
    pub placeholder: Option<Placeholder>,
    /// Frames (1 for a still); `None` only for GIF and WebP rows uploaded before they were
    /// counted, until the backfill.
    pub frames: Option<u32>,
    /// Published by its owner: servable without a signature through a public preset.
    pub public: bool,
    /// Working copies in the store (see [`crate::transform::levels`]): bit `f` for the copy at
    /// 1/f, 0 for none; `None` only for rows from before they existed, until the backfill.
    pub levels: Option<u32>,
    /// Bytes of those working copies in the store; `None` only for rows from before they were
    /// counted, until the backfill.
    pub copies_bytes: Option<u64>,
    /// Times its variants were purged: part of every variant key.
    pub purges: u32,
    /// Upload time (microsecond precision).
    pub created_at: DateTime<Utc>,
}

impl ImageRecord {
    /// True when the image has several frames; a GIF or WebP not counted yet may.
    pub fn is_animated(&self) -> bool {
        self.frames.map_or(self.format.can_animate(), |n| n > 1)
    }
}

/// What the upload check computes for a row (the backfill stores it for older rows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspection {
    /// ThumbHash, BlurHash and average colour.
    pub placeholder: Placeholder,
    /// Frames.
    pub frames: u32,
    /// Working copies stored, as [`ImageRecord::levels`].
    pub levels: u32,
    /// Their bytes, as [`ImageRecord::copies_bytes`].
    pub copies_bytes: u64,
}

/// What an owner keeps in the object store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Storage {
    /// Images (originals).
    pub images: u64,
    /// Bytes of the originals.
    pub original_bytes: u64,
    /// Bytes of their working copies (those counted so far: an older row's are once the
    /// start-up backfill reaches it).
    pub copies_bytes: u64,
}

/// Named ops an owner reuses as `p_NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preset {
    /// Owner.
    pub owner: UserId,
    /// `[a-z0-9_-]{1,32}`.
    pub name: String,
    /// The ops, in canonical form.
    pub ops: String,
    /// Usable without a signature, as the bare `/i/{id}/p_NAME` on the owner's images.
    pub public: bool,
    /// Last change (microsecond precision).
    pub updated_at: DateTime<Utc>,
}

/// Position in a newest-first list: the last item of the previous page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageAfter {
    /// `created_at` of the last item shown.
    pub created_at: DateTime<Utc>,
    /// `id` of the last item shown (tie-breaker).
    pub id: ImageId,
}

/// Everything the server stores in its database.
/// How busy the database's connections are, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolState {
    /// Connections open.
    pub open: u32,
    /// Connections in use, and on SQLite the calls waiting for its one connection.
    pub in_use: u32,
}

#[async_trait]
pub trait Repository: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<(), DbError>;

    /// Connections open and in use now.
    fn pool_state(&self) -> PoolState;

    /// Creates a user; [`DbError::Conflict`] when the username is taken (in any case).
    async fn create_user(&self, user: &NewUser) -> Result<User, DbError>;

    /// The user and password hash for a login name (case-insensitive).
    async fn user_by_username(&self, username: &str) -> Result<Option<(User, String)>, DbError>;

    /// A user by id.
    async fn user(&self, id: &UserId) -> Result<Option<User>, DbError>;

    /// Every user, oldest first (for the command line).
    async fn users(&self) -> Result<Vec<User>, DbError>;

    /// Deletes a user with their image rows and presets; false when there was none.
    async fn delete_user(&self, id: &UserId) -> Result<bool, DbError>;

    /// A user's URL signing key and plan.
    async fn owner_key(&self, id: &UserId) -> Result<Option<OwnerKey>, DbError>;

    /// Replaces a user's signing key; false when the user does not exist.
    async fn set_signing_key(&self, id: &UserId, key: &SigningKey) -> Result<bool, DbError>;

    /// Moves a user to another plan (which selects the daily quota); false when the user does
    /// not exist.
    async fn set_plan(&self, id: &UserId, plan: &str) -> Result<bool, DbError>;

    /// Records an uploaded image (its object is already stored).
    async fn insert_image(&self, image: &ImageRecord) -> Result<(), DbError>;

    /// An image by id.
    async fn image(&self, id: &ImageId) -> Result<Option<ImageRecord>, DbError>;

    /// How many images `owner` has and the bytes they hold in the object store.
    async fn storage(&self, owner: &UserId) -> Result<Storage, DbError>;

    /// Up to `limit` of `owner`'s images, newest first, strictly after `after`.
    async fn list_images(
        &self,
        owner: &UserId,
        after: Option<&PageAfter>,
        limit: u32,
    ) -> Result<Vec<ImageRecord>, DbError>;

    /// Deletes an image row; false when it was not there.
    async fn delete_image(&self, id: &ImageId) -> Result<bool, DbError>;

    /// Publishes or un-publishes an image; false when it is not there.
    async fn set_image_public(&self, id: &ImageId, public: bool) -> Result<bool, DbError>;

    /// Counts a purge of an image's variants; the new count, or `None` when it is not there.
    async fn purge_variants(&self, id: &ImageId) -> Result<Option<u32>, DbError>;

    /// Takes one transform from `user`'s budget for `day` in one conditional UPDATE.
    /// Returns the count used today after the charge, or `None` when the budget is spent
    /// (or the user is gone).
    async fn charge_quota(&self, user: &UserId, day: NaiveDate, limit: u32) -> Result<Option<u32>, DbError>;

    /// Gives back one transform charged on `day` (a failed transform); no-op on another day.
    async fn refund_quota(&self, user: &UserId, day: NaiveDate) -> Result<(), DbError>;

    /// Ids of every image, for sweeping orphaned objects.
    async fn image_ids(&self) -> Result<Vec<ImageId>, DbError>;

    /// Up to `limit` images uploaded before their placeholders, frames or working copies were
    /// made, or with an earlier set of copies ([`crate::transform::levels::EARLIER_MASKS`]).
    async fn images_to_backfill(&self, limit: u32) -> Result<Vec<ImageRecord>, DbError>;

    /// Stores what the upload check computes (placeholders, frames, which working copies are
    /// stored); false when the row is gone.
    async fn set_inspection(&self, id: &ImageId, inspection: &Inspection) -> Result<bool, DbError>;

    /// Replaces a preset, or creates it while its owner has fewer than `max` presets (atomically,
    /// however many replicas write); false when the limit kept a new name out.
    async fn put_preset(&self, preset: &Preset, max: u32) -> Result<bool, DbError>;

    /// One of `owner`'s presets.
    async fn preset(&self, owner: &UserId, name: &str) -> Result<Option<Preset>, DbError>;

    /// Up to `limit` of `owner`'s presets by name, strictly after the name `after`.
    async fn presets(&self, owner: &UserId, after: Option<&str>, limit: u32) -> Result<Vec<Preset>, DbError>;

    /// Deletes a preset; false when there was none.
    async fn delete_preset(&self, owner: &UserId, name: &str) -> Result<bool, DbError>;

    /// Queues a purge of `tags` (space-separated) for the webhook, due at once.
    async fn queue_purge(&self, tags: &str, now_ms: i64) -> Result<(), DbError>;

    /// Takes up to `limit` purges due at `now_ms`, oldest first, and hides them from other
    /// senders until `until_ms` (a sender that dies lets them come back then).
    async fn take_purges(&self, now_ms: i64, until_ms: i64, limit: u32) -> Result<Vec<QueuedPurge>, DbError>;

    /// Deletes purges the webhook took (or that were given up).
    async fn purges_done(&self, ids: &[i64]) -> Result<(), DbError>;

    /// Counts a failed attempt at each of `ids` and makes them due again at `next_ms`.
    async fn purges_failed(&self, ids: &[i64], next_ms: i64) -> Result<(), DbError>;

    /// True when other processes share this database, so that making a variant once takes a
    /// claim held in it ([`Repository::claim_variant`]). A SQLite file has one server process:
    /// its in-process single flight is enough, and the claim calls below are never made.
    fn shared_by_replicas(&self) -> bool {
        false
    }

    /// Claims the variant `key` for `holder` until `lease` from now, in one statement: won when
    /// nobody holds it or the holder's lease ran out (a take-over), else [`Claim::Held`].
    async fn claim_variant(&self, _key: &str, _holder: &str, _lease: Duration) -> Result<Claim, DbError> {
        Ok(Claim::Won { taken_over: false, charged_on: None })
    }

    /// Extends `holder`'s claim on `key` to `lease` from now; false when it no longer holds it.
    async fn renew_claim(&self, _key: &str, _holder: &str, _lease: Duration) -> Result<bool, DbError> {
        Ok(true)
    }

    /// Records on `holder`'s claim that the owner paid for the variant on `day`.
    async fn claim_charged(&self, _key: &str, _holder: &str, _day: NaiveDate) -> Result<(), DbError> {
        Ok(())
    }

    /// Ends `holder`'s claim on `key` (the variant is in the store, or making it failed).
    async fn release_claim(&self, _key: &str, _holder: &str) -> Result<(), DbError> {
        Ok(())
    }

    /// Deletes claims whose lease ran out before `before` (left by killed replicas on variants
    /// nobody asked for again); how many.
    async fn forget_expired_claims(&self, _before: DateTime<Utc>) -> Result<u64, DbError> {
        Ok(0)
    }
}

/// A purge waiting for the webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedPurge {
    /// Queue position.
    pub id: i64,
    /// Space-separated cache tags.
    pub tags: String,
    /// When it was queued, Unix milliseconds.
    pub created_ms: i64,
    /// Failed attempts so far.
    pub attempts: u32,
}

/// The answer to [`Repository::claim_variant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// This holder makes the variant.
    Won {
        /// The claim was another holder's whose lease ran out.
        taken_over: bool,
        /// The day a previous holder charged the owner for this variant, if it did.
        charged_on: Option<NaiveDate>,
    },
    /// Another holder's lease is running.
    Held,
}

/// Connects to the configured database and applies pending migrations.
///
/// # Errors
/// The database cannot be opened or reached, or a migration fails.
pub async fn connect(config: &DatabaseConfig) -> Result<Db, DbError> {
    match &config.backend {
        DatabaseBackend::Sqlite(path) => Ok(Arc::new(sqlite::SqliteRepo::open(path).await?)),
        DatabaseBackend::Postgres(url) => {
            let repo = postgres::PgRepo::connect(url, &config.sslrootcert, config.pool_size, config.pool_timeout);
            Ok(Arc::new(repo.await?))
        }
    }
}

/// Truncates a time to whole microseconds, the precision both databases store.
pub fn to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(t.timestamp_micros()).unwrap_or(t)
}

fn corrupt(what: impl Into<String>) -> DbError {
    DbError::Corrupt(what.into())
}

fn parse_user_id(s: &str) -> Result<UserId, DbError> {
    UserId::parse(s).ok_or_else(|| corrupt(format!("user id {s:?}")))
}

fn parse_image_id(s: &str) -> Result<ImageId, DbError> {
    ImageId::parse(s).ok_or_else(|| corrupt(format!("image id {s:?}")))
}

fn parse_format(s: &str) -> Result<ImageFormat, DbError> {
    s.parse().map_err(|_| corrupt(format!("image format {s:?}")))
}

/// The placeholder columns (thumbhash, blurhash, color): all set or none.
fn placeholder_from(columns: (Option<String>, Option<String>, Option<String>)) -> Option<Placeholder> {
    match columns {
        (Some(thumbhash), Some(blurhash), Some(color)) => Some(Placeholder { thumbhash, blurhash, color }),
        _ => None,
    }
}

/// The placeholder columns of a row to write.
fn placeholder_columns(p: Option<&Placeholder>) -> (Option<&str>, Option<&str>, Option<&str>) {
    (p.map(|p| p.thumbhash.as_str()), p.map(|p| p.blurhash.as_str()), p.map(|p| p.color.as_str()))
}

fn to_u32(v: i64, what: &str) -> Result<u32, DbError> {
    u32::try_from(v).map_err(|_| corrupt(format!("{what} {v}")))
}

fn to_u64(v: i64, what: &str) -> Result<u64, DbError> {
    u64::try_from(v).map_err(|_| corrupt(format!("{what} {v}")))
}
