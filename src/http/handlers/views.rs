//! JSON shapes of the API.

use serde::Serialize;

use crate::auth::SigningKey;
use crate::clock::rfc3339;
use crate::db::{ImageRecord, Preset, Storage, User};
use crate::placeholder::Placeholder;
use crate::quota;

/// `User`.
#[derive(Debug, Serialize)]
pub struct UserView {
    /// Id.
    pub id: String,
    /// Login name.
    pub username: String,
    /// Plan.
    pub plan: String,
    /// RFC 3339 creation time.
    pub created_at: String,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.clone(),
            plan: u.plan.clone(),
            created_at: rfc3339(u.created_at),
        }
    }
}

/// `{"user", "token"}` of register and login.
#[derive(Debug, Serialize)]
pub struct Session {
    /// The user.
    pub user: UserView,
    /// A JWT for the `Authorization: Bearer` header.
    pub token: String,
}

/// `GET /v1/me`: the user, today's quota and their storage.
#[derive(Debug, Serialize)]
pub struct Me {
    /// The user fields.
    #[serde(flatten)]
    pub user: UserView,
    /// Today's quota.
    pub quota: quota::Status,
    /// What the owner keeps in the object store.
    pub storage: StorageView,
}

/// `Storage`: an owner's images and the bytes they take in the object store. Cached variants
/// are not counted: they are derived, evicted and made again on demand.
#[derive(Debug, Serialize)]
pub struct StorageView {
    /// Images.
    pub images: u64,
    /// Originals and working copies together.
    pub bytes: u64,
    /// The originals, as uploaded.
    pub original_bytes: u64,
    /// The working copies kept beside large originals to serve their variants faster.
    pub copies_bytes: u64,
}

impl From<Storage> for StorageView {
    fn from(s: Storage) -> Self {
        Self {
            images: s.images,
            bytes: s.original_bytes.saturating_add(s.copies_bytes),
            original_bytes: s.original_bytes,
            copies_bytes: s.copies_bytes,
        }
    }
}

/// `Image`.
#[derive(Debug, Serialize)]
pub struct ImageView {
    /// Id.
    pub id: String,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// jpeg, png, webp or gif.
    pub format: &'static str,
    /// Size of the original.
    pub size_bytes: u64,
    /// blake3 hex of the original.
    pub content_hash: String,
    /// RFC 3339 upload time.
    pub created_at: String,
    /// A signed path to the original.
    pub url: String,
    /// ThumbHash, BlurHash and average colour; `null` only for an image uploaded before
    /// placeholders existed, until the start-up backfill reaches it.
    pub placeholder: Option<Placeholder>,
    /// Frames: 1 for a still, more for an animated GIF or WebP; `null` only for a GIF or WebP
    /// uploaded before frames were counted, until the start-up backfill reaches it.
    pub frames: Option<u32>,
    /// Published: served without a signature through the owner's public presets.
    pub public: bool,
}

impl ImageView {
    /// The view of `image`, with its original's URL signed by `key`.
    pub fn new(image: &ImageRecord, key: &SigningKey) -> Self {
        Self {
            id: image.id.to_string(),
            width: image.width,
            height: image.height,
            format: image.format.as_str(),
            size_bytes: image.size_bytes,
            content_hash: image.content_hash.clone(),
            created_at: rfc3339(image.created_at),
            url: key.signed_url(&format!("/i/{}", image.id), None),
            placeholder: image.placeholder.clone(),
            frames: image.frames,
            public: image.public,
        }
    }
}

/// `GET /v1/images`.
#[derive(Debug, Serialize)]
pub struct ImagePage {
    /// Newest first.
    pub items: Vec<ImageView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// `{"key"}` of the signing-key routes.
#[derive(Debug, Serialize)]
pub struct KeyView {
    /// 64 hex characters.
    pub key: String,
}

/// `POST /v1/images/{id}/url`.
#[derive(Debug, Serialize)]
pub struct SignedUrl {
    /// Signed path and query.
    pub url: String,
    /// RFC 3339 expiry, `null` when the URL does not expire.
    pub expires_at: Option<String>,
}

/// A preset.
#[derive(Debug, Serialize)]
pub struct PresetView {
    /// Name, used as `p_NAME`.
    pub name: String,
    /// Ops in canonical form.
    pub ops: String,
    /// Usable without a signature as the bare `/i/{id}/p_NAME`.
    pub public: bool,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl PresetView {
    /// The view of `preset`.
    pub fn new(preset: &Preset) -> Self {
        Self {
            name: preset.name.clone(),
            ops: preset.ops.clone(),
            public: preset.public,
            updated_at: rfc3339(preset.updated_at),
        }
    }
}

/// `GET /v1/presets`.
#[derive(Debug, Serialize)]
pub struct PresetList {
    /// By name.
    pub items: Vec<PresetView>,
    /// Cursor of the next page, `null` on the last.
    pub next_cursor: Option<String>,
}

/// `POST /v1/images/{id}/srcset`.
#[derive(Debug, Serialize)]
pub struct Srcset {
    /// The `srcset` attribute: `<url> <width>w`, comma-separated, narrowest first.
    pub srcset: String,
    /// The same URLs one by one.
    pub urls: Vec<SrcsetUrl>,
}

/// One width of a [`Srcset`].
#[derive(Debug, Serialize)]
pub struct SrcsetUrl {
    /// Output width in pixels (the `w` descriptor).
    pub width: u32,
    /// Signed path and query.
    pub url: String,
}

/// `POST /v1/images/{id}/transform`.
#[derive(Debug, Serialize)]
pub struct Transformed {
    /// Signed path of the variant.
    pub url: String,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output format.
    pub format: &'static str,
    /// Output size.
    pub size_bytes: u64,
}
