//! `/i` delivery: who may see an image, how long the answer may be cached, and where its bytes
//! come from.
//!
//! [`Delivery::resolve`] turns a request into a [`Resolved`] answer — authorised, with its ETag,
//! `Cache-Control` and format — without touching any bytes, so a matching `If-None-Match` costs
//! nothing more. [`Delivery::serve`] then finds the bytes: memory → object store → transform.
//! A miss in both caches charges the owner one transform (taken before the work, given back
//! if it fails), runs the pipeline on the worker pool and keeps the result in the store and in
//! memory; concurrent misses for one variant share one transform and one charge.

pub mod access;
mod claims;
pub mod flight;
pub mod hints;
mod produce;

use std::sync::Arc;

use bytes::Bytes;
use http::HeaderValue;

use self::access::{Access, Credentials};
use self::flight::Flights;
use self::hints::{Hints, Vary};
use crate::cache::{Failures, Tier, Variant};
use crate::db::{ImageRecord, OwnerKey};
use crate::error::Error;
use crate::format::ImageFormat;
use crate::ids::ImageId;
use crate::lookups::{accept_class, Remembered};
use crate::shared::Shared;
use crate::storage::{Blob, BlobKey, StorageError};
use crate::transform::geometry::Plan;
use crate::transform::{self, geometry, relative_to_image, resolve_format, Ops, OpsError, VariantKey};

/// Largest variant read from the store into memory (and kept there); larger ones stream.
const MEMORY_LIMIT: u64 = 16 << 20;

/// What a `/i` request asks for, as read off the wire.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The image id of the path.
    pub id: &'a str,
    /// The ops of the path; `None` asks for the original.
    pub ops: Option<&'a str>,
    /// The path exactly as sent (what a signature signs).
    pub path: &'a str,
    /// The query, if any.
    pub query: Option<&'a str>,
    /// The `Accept` header (for `fmt_auto`).
    pub accept: Option<&'a str>,
    /// The bearer token, if any.
    pub bearer: Option<&'a str>,
    /// Client hints (for `w_auto`, `dpr_auto` and `Save-Data`).
    pub hints: Hints,
}

/// An authorised answer whose bytes are not fetched yet.
pub struct Resolved {
    /// Strong ETag.
    pub etag: HeaderValue,
    /// `Cache-Control`, from how the request was authorised.
    pub cache_control: HeaderValue,
    /// The request headers the answer depends on.
    pub vary: Vary,
    /// Format of the bytes.
    pub format: ImageFormat,
    /// The tags a CDN purges the answer by.
    pub tags: Option<crate::purges::Tags>,
    source: Source,
    /// What `fmt_auto` serves if its slow format is not made within the budget.
    fallback: Option<Box<StandIn>>,
}

/// `fmt_auto`'s cheaper answer while its slow format (AVIF, JPEG XL) is made.
struct StandIn {
    /// The variant in the format `fmt_auto` would pick without the slow ones.
    spec: VariantSpec,
    /// Its short `Cache-Control`.
    cache_control: HeaderValue,
}

/// What [`Delivery::serve`] found.
pub struct Served {
    /// The bytes, or their length.
    pub payload: Payload,
    /// The cache tier of a variant.
    pub tier: Option<Tier>,
    /// Set when the answer is not the variant resolved but `fmt_auto`'s cheaper stand-in: its
    /// ETag, its short `Cache-Control` and its format replace the resolved ones.
    pub instead: Option<(HeaderValue, HeaderValue, ImageFormat)>,
}

impl Served {
    fn of(payload: Payload, tier: Option<Tier>) -> Self {
        Self { payload, tier, instead: None }
    }
}

/// Where the bytes of a [`Resolved`] answer come from.
enum Source {
    /// The original as uploaded.
    Original(Box<ImageRecord>),
    /// A variant already in this replica's memory.
    Cached(Arc<Variant>),
    /// A variant from the store or a transform.
    Variant(Box<VariantSpec>),
    /// A remembered variant already read from the store.
    Stored(Payload),
}

/// A variant request that passed authorisation and validation.
#[derive(Debug, Clone)]
pub struct VariantSpec {
    /// The original.
    pub image: ImageRecord,
    /// Its owner's plan (for the quota).
    pub owner_plan: String,
    /// The normalised ops.
    pub ops: Ops,
    /// Their geometry on this image.
    pub plan: Plan,
    /// The resolved output format.
    pub format: ImageFormat,
    /// The variant key.
    pub key: VariantKey,
    /// The watermark original, when `wm_` is given.
    pub watermark: Option<ImageRecord>,
    /// Whether making it charges the owner: not for `fmt_auto`'s cheaper stand-in, which rides
    /// on the charge of the slow format it stands in for.
    pub charged: bool,
}

/// Bytes of a response: in memory, streaming from the store, or (for `HEAD`) only their length.
pub enum Payload {
    /// Whole bytes.
    Bytes(Bytes),
    /// A streamed object of known length.
    Stream(Blob),
    /// The length of bytes not fetched.
    Length(u64),
}

impl Payload {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::Stream(blob) => blob.len,
            Self::Length(len) => *len,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Result shared by the requests of one flight.
type Flight = Result<produce::Found, Arc<Error>>;

/// Settings of [`Delivery`].
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// rav1e speed.
    pub avif_speed: u8,
    /// Whether variants are written to the store.
    pub store_variants: bool,
    /// Longest a request waits for a transform (which itself runs to its end).
    pub timeout: std::time::Duration,
    /// Widths `w_auto` rounds a hint up to, ascending.
    pub width_ladder: Vec<u32>,
    /// How long a failed transform's error is answered again without a decode.
    pub failure_ttl: std::time::Duration,
    /// Bytes of remembered failures.
    pub failure_memo_bytes: u64,
    /// `max-age` of unsigned answers through a public preset (how long a shared cache may keep
    /// an image after it is un-published).
    pub public_max_age: i64,
    /// Longest `fmt_auto` waits for an AVIF or JPEG XL before it serves a cheaper format (zero:
    /// no limit).
    pub auto_format_budget: std::time::Duration,
    /// `max-age` of that cheaper answer.
    pub auto_format_max_age: u32,
}

/// Authorisation, cache policy and variant production for `/i`.
#[derive(Clone)]
pub struct Delivery {
    shared: Shared,
    flights: Flights<VariantKey, Flight>,
    reads: Flights<VariantKey, produce::Read>,
    failures: Failures,
    /// Fleet-wide claims, when replicas share the database and the store keeps variants.
    claims: Option<claims::Claims>,
    settings: DeliverySettings,
}

impl Delivery {
    /// Delivery over the shared collaborators.
    pub fn new(shared: Shared, settings: DeliverySettings) -> Self {
        let failures = Failures::new(settings.failure_ttl, settings.failure_memo_bytes);
        // A replica that waits for another's variant finds it in the store: without variants
        // there, each replica makes its own. A holder silent for twice the transform timeout
        // is taken to be dead.
        let claims = settings
            .store_variants
            .then(|| claims::Claims::new(shared.db.clone(), Arc::clone(&shared.metrics), settings.timeout * 2))
            .flatten();
        Self { shared, flights: Flights::default(), reads: Flights::default(), failures, claims, settings }
    }

    /// Requests waiting on a transform now, the one that leads each included.
    pub fn waiting_on_transforms(&self) -> usize {
        self.flights.waiting()
    }

    /// Authorises `ask` and works out the answer: the original, or the variant its ops make.
    /// (Ask [`Delivery::remembered`] first: a URL checked moments ago needs none of this.)
    ///
    /// # Errors
    /// 400 for a malformed query or ops, 401/403 for missing or bad credentials, 404 for an
    /// unknown image, 5xx when a lookup fails.
    pub async fn resolve(&self, ask: &Ask<'_>) -> Result<Resolved, Error> {
        let accept = accept_class(ask.accept);
        let p = &self.shared;
        // Taken before the checks, so a local delete or rotation racing with them voids the memo.
        let generation = p.lookups.generation();
        let not_found = || Error::NotFound("image not found");
        let id = ImageId::parse(ask.id).ok_or_else(not_found)?;
        let (exp, sig) = access::signature_params(ask.query)?;
        let image = p.lookups.image(&id).await?;
        let (checked_at, image) = (image.at, image.value.ok_or_else(not_found)?);
        let owner = p.lookups.owner(&image.owner).await?;
        let (checked_at, owner) = (checked_at.min(owner.at), owner.value.ok_or_else(not_found)?);
        let credentials = Credentials { path: ask.path, exp, sig, bearer: ask.bearer };
        let (access, ops) = self.authorise(ask, &credentials, &image, &owner).await?;
        // Made only for a request that may have the answer.
        let tags = crate::purges::Tags::of(ask.id, image.owner.as_str(), ask.ops);
        let (ops, mut vary) = hints::fill(ops, &ask.hints, &self.settings.width_ladder, image.width);
        let mut spec = self.spec(image, &owner, ops, ask.accept).await?;
        if !spec.ops.is_identity() {
            if let Some(quality) = hints::save_data_quality(&spec.ops, spec.format) {
                // The answer depends on Save-Data whether or not this request sent it.
                vary.save_data = true;
                if ask.hints.save_data {
                    spec.ops.quality = Some(crate::transform::quality::Quality::Fixed(quality));
                    spec.key = variant_key(&spec.image, &spec.ops, &spec.plan, spec.format);
                }
            }
        }
        if spec.ops.is_identity() {
            // Nothing to do (no ops, `dpr_2` alone, a `bg_` with nothing to fill): the original,
            // at no cost.
            let hash = spec.image.content_hash.get(..32).unwrap_or(&spec.image.content_hash);
            return Ok(Resolved {
                etag: header(&format!("\"{hash}\""))?,
                cache_control: access.cache_control(),
                // A hint may have led here (`w_auto` at the source's width).
                vary: Vary { accept: false, ..vary },
                format: spec.image.format,
                tags,
                source: Source::Original(Box::new(spec.image)),
                fallback: None,
            });
        }
        let fallback = self.fallback(&spec, ask.accept, access);
        let resolved = Resolved {
            etag: header(&spec.key.etag())?,
            cache_control: access.cache_control(),
            vary,
            format: spec.format,
            tags,
            source: Source::Variant(Box::new(spec)),
            fallback,
        };
        let query = ask.query.filter(|_| rememberable(ask));
        if let (Access::Signed { .. }, Source::Variant(spec), Some(query)) = (access, &resolved.source, query) {
            let remembered = Remembered {
                exp,
                image: spec.image.id.clone(),
                tags: resolved.tags.clone(),
                key: spec.key,
                etag: resolved.etag.clone(),
                format: resolved.format,
                vary: resolved.vary,
            };
            p.lookups.remember((ask.path, query, accept), generation, checked_at, remembered);
        }
        Ok(resolved)
    }

    /// How `ask` is authorised, and its ops with its preset expanded. The bare path of a public
    /// preset (`/i/{id}/p_NAME`, exactly that spelling) needs no credentials on a published
    /// image; any other use of a preset does, and an unknown preset is then a 400 naming it.
    async fn authorise(
        &self,
        ask: &Ask<'_>,
        credentials: &Credentials<'_>,
        image: &ImageRecord,
        owner: &OwnerKey,
    ) -> Result<(Access, Ops), Error> {
        let p = &self.shared;
        let authorised = access::authorise(credentials, image, owner, &p.jwt, p.clock.unix());
        let (name, rest) = transform::grammar::split_preset(ask.ops.unwrap_or_default())?;
        let Some(name) = name else { return Ok((authorised?, transform::parse(&rest, p.limits.max_dimension)?)) };
        let preset = p.lookups.preset(&image.owner, name).await?.value;
        let access = match authorised {
            Ok(access) => access.with_preset(),
            Err(refused) => {
                let bare = ask.ops.and_then(|o| o.strip_prefix("p_")) == Some(name)
                    && credentials.sig.is_none()
                    && credentials.bearer.is_none();
                match &preset {
                    Some(preset) if preset.public && image.public && bare => {
                        Access::Signed { max_age: self.settings.public_max_age.min(access::PRESET_MAX_AGE) }
                    }
                    _ => return Err(refused),
                }
            }
        };
        let preset = preset.ok_or_else(|| Error::InvalidTransform(OpsError::UnknownPreset(name.to_owned())))?;
        let ops = transform::grammar::parse_with_preset(&rest, &preset.ops, p.limits.max_dimension)?;
        Ok((access, ops))
    }

    /// The bytes of a resolved answer and, for variants, the cache tier they came from.
    ///
    /// # Errors
    /// 429 when a transform is needed and the quota is spent, 503 when the pool is full or the
    /// transform times out, 422 when the original cannot be decoded, 404 when the original's
    /// object is gone, 5xx for backends.
    ///
    /// The paths that may wait on a store or a transform are boxed: an `async fn`'s future is
    /// as large as its largest path (a transform's flight makes this one 7 KB), and the whole
    /// of it is allocated and moved for every request, the memory hits included, whose own
    /// path needs a few bytes.
    pub async fn serve(&self, resolved: Resolved, head: bool) -> Result<Served, Error> {
        let original = |image: &ImageRecord| self.shared.keys.original(&image.id);
        match resolved.source {
            Source::Original(image) if head => {
                Ok(Served::of(Payload::Length(self.shared.store.size(&original(&image)).await?), None))
            }
            Source::Original(image) => {
                Ok(Served::of(Payload::Stream(self.shared.store.get(&original(&image)).await?), None))
            }
            Source::Variant(spec) => match resolved.fallback {
                Some(fallback) => Box::pin(self.within_budget(&spec, *fallback, head)).await,
                None => {
                    let (payload, tier) = Box::pin(self.variant_payload(&spec, head)).await?;
                    Ok(Served::of(payload, Some(tier)))
                }
            },
            Source::Cached(variant) => Ok(self.memory_hit(&variant)),
            Source::Stored(payload) => Ok(self.store_hit(payload)),
        }
    }

    /// The bytes of `resolved` when they are in hand (a memory hit, or a remembered variant
    /// read already), as [`Delivery::serve`] gives them; `None` when they take a wait.
    pub fn serve_now(&self, resolved: Resolved) -> Option<Served> {
        match resolved.source {
            Source::Cached(variant) => Some(self.memory_hit(&variant)),
            Source::Stored(payload) => Some(self.store_hit(payload)),
            Source::Original(_) | Source::Variant(_) => None,
        }
    }

    fn memory_hit(&self, variant: &Variant) -> Served {
        self.shared.metrics.cache(Tier::Memory);
        Served::of(Payload::Bytes(variant.bytes.clone()), Some(Tier::Memory))
    }

    fn store_hit(&self, payload: Payload) -> Served {
        self.shared.metrics.cache(Tier::Store);
        Served::of(payload, Some(Tier::Store))
    }

    /// `fmt_auto`'s stand-in for `spec` (an AVIF or JPEG XL): the format it would pick without
    /// the slow ones, when the browser takes it and a budget is set.
    fn fallback(&self, spec: &VariantSpec, accept: Option<&str>, access: Access) -> Option<Box<StandIn>> {
        let auto = spec.ops.format == Some(transform::FormatChoice::Auto);
        if !auto || !spec.format.is_slow() || self.settings.auto_format_budget.is_zero() {
            return None;
        }
        let format = transform::canonical::cheaper_auto_format(accept, spec.image.has_alpha, spec.plan.output);
        let key = variant_key(&spec.image, &spec.ops, &spec.plan, format);
        let spec = VariantSpec { format, key, charged: false, ..spec.clone() };
        let cache_control = access.stand_in_cache_control(self.settings.auto_format_max_age);
        Some(Box::new(StandIn { spec, cache_control }))
    }

    /// `spec` if it is made within the budget (or is made already); else `fallback`, marked to
    /// be answered with its own ETag and a short `max-age`, while `spec` goes on being made in
    /// its flight — once, charged once — for the requests after.
    async fn within_budget(&self, spec: &VariantSpec, fallback: StandIn, head: bool) -> Result<Served, Error> {
        let budget = self.settings.auto_format_budget;
        if let Ok(made) = tokio::time::timeout(budget, self.variant_payload(spec, head)).await {
            let (payload, tier) = made?;
            return Ok(Served::of(payload, Some(tier)));
        }
        self.shared.metrics.auto_format_fallback();
        let StandIn { spec: fallback, cache_control } = fallback;
        let (payload, tier) = self.variant_payload(&fallback, head).await?;
        let instead = (header(&fallback.key.etag())?, cache_control, fallback.format);
        Ok(Served { payload, tier: Some(tier), instead: Some(instead) })
    }

    /// Checks `ops` against `image` and resolves the output: crop inside the image, watermark
    /// owned by the same owner, format from `fmt_` and `Accept`.
    ///
    /// # Errors
    /// 400 `invalid_transform` naming the token; 5xx when a lookup fails.
    pub async fn spec(
        &self,
        image: ImageRecord,
        owner: &OwnerKey,
        ops: Ops,
        accept: Option<&str>,
    ) -> Result<VariantSpec, Error> {
        let plan = geometry::plan((image.width, image.height), &ops, self.shared.limits.max_dimension)
            .map_err(Error::InvalidTransform)?;
        let watermark = match &ops.watermark {
            None => None,
            Some(id) => {
                let unknown = || Error::InvalidTransform(OpsError::UnknownWatermark(id.to_string()));
                let wm = self.shared.lookups.image(id).await?.value.ok_or_else(unknown)?;
                if wm.owner != image.owner {
                    return Err(unknown());
                }
                Some(wm)
            }
        };
        let animated = image.is_animated() && !ops.still;
        let format = resolve_format(ops.format, image.format, image.has_alpha, animated, accept, plan.output);
        if let Some(feature) = format.missing_encoder() {
            return Err(OpsError::FormatNotBuilt { format: format.as_str(), feature }.into());
        }
        if !format.holds(plan.output) {
            let (width, height) = plan.output;
            let max = format.max_side();
            return Err(OpsError::TooLargeForFormat { width, height, format: format.as_str(), max }.into());
        }
        let ops = relative_to_image(ops, &plan, image.has_alpha, image.is_animated(), format);
        let key = variant_key(&image, &ops, &plan, format);
        Ok(VariantSpec { image, owner_plan: owner.plan.clone(), ops, plan, format, key, watermark, charged: true })
    }

    /// The whole variant with its size, for the JSON transform API.
    ///
    /// # Errors
    /// As [`Delivery::serve`].
    pub async fn variant(&self, spec: &VariantSpec) -> Result<(Arc<Variant>, Tier), Error> {
        if let Some(hit) = self.cached(&spec.key) {
            return Ok((hit, Tier::Memory));
        }
        if let Some(failure) = self.failed(&spec.key) {
            return Err(failure.into());
        }
        match self.fetch_or_make(spec).await? {
            produce::Found::Variant(variant, tier) => Ok((variant, tier)),
            produce::Found::TooLargeToKeep => {
                let bytes = self.shared.store.get_bytes(&self.stored_at(spec)).await?;
                Ok((Arc::new(produce::describe(bytes, spec.format)), Tier::Store))
            }
        }
    }

    /// What this replica knows of a signed variant URL it checked within the lookup bound,
    /// without waiting for anything: the answer when its bytes are in memory or at the store's
    /// hand, no lookups, HMAC or parsing (a cache hit is answered from here, by the calling
    /// thread); or the remembered URL whose bytes need a store read; or nothing.
    ///
    /// # Errors
    /// 403 when the remembered URL has expired since; the remembered error of a variant whose
    /// transform failed.
    pub fn recall(&self, ask: &Ask<'_>) -> Result<Recall, Error> {
        let (Some(_), Some(query)) = (ask.ops, ask.query) else { return Ok(Recall::Unknown) };
        if !rememberable(ask) {
            return Ok(Recall::Unknown);
        }
        let (accept, now) = (accept_class(ask.accept), self.shared.clock.now());
        let Some(entry) = self.shared.lookups.authorised(ask.path, query, accept, now) else {
            return Ok(Recall::Unknown);
        };
        let access = match entry.exp {
            Some(exp) if exp < now.timestamp() => return Err(crate::auth::AuthError::SignatureExpired.into()),
            exp => Access::signed(exp, now.timestamp()),
        };
        if let Some(variant) = self.shared.memory.get(&entry.key) {
            return Ok(Recall::Ready(recalled(&entry, access, Source::Cached(variant))));
        }
        if let Some(failure) = self.failed(&entry.key) {
            return Err(failure.into());
        }
        if !self.settings.store_variants {
            return Ok(Recall::Unknown);
        }
        Ok(match self.read_at_hand(&self.remembered_at(&entry), entry.key, entry.format) {
            produce::AtHand::Kept(variant) => {
                let source = Source::Stored(Payload::Bytes(variant.bytes.clone()));
                Recall::Ready(recalled(&entry, access, source))
            }
            produce::AtHand::Absent => Recall::Unknown,
            produce::AtHand::Elsewhere => Recall::Read(entry, access),
        })
    }

    /// The answer to a signed variant URL this replica remembers (see [`Delivery::recall`]),
    /// reading its bytes from the store when they were not at hand (one read however many ask
    /// at once). `None` sends the request to [`Delivery::resolve`].
    ///
    /// # Errors
    /// 5xx when the store fails.
    pub async fn remembered(&self, recall: Recall) -> Result<Option<Resolved>, Error> {
        let (entry, access) = match recall {
            Recall::Ready(resolved) => return Ok(Some(resolved)),
            Recall::Unknown => return Ok(None),
            Recall::Read(entry, access) => (entry, access),
        };
        let at = self.remembered_at(&entry);
        let payload = match self.read_shared(&at, entry.key, entry.format).await? {
            Some(produce::Stored::Kept(variant)) => Payload::Bytes(variant.bytes.clone()),
            Some(produce::Stored::TooLarge) => Payload::Stream(self.shared.store.get(&at).await?),
            None => return Ok(None),
        };
        Ok(Some(recalled(&entry, access, Source::Stored(payload))))
    }

    /// Where a remembered variant is kept in the object store.
    fn remembered_at(&self, entry: &Remembered) -> BlobKey {
        self.variant_at(&entry.image, &entry.key, entry.format)
    }

    /// Memory, else the store, else a transform; a `head` request learns a stored variant's
    /// length without reading it.
    async fn variant_payload(&self, spec: &VariantSpec, head: bool) -> Result<(Payload, Tier), Error> {
        if let Some(hit) = self.cached(&spec.key) {
            return Ok((Payload::Bytes(hit.bytes.clone()), Tier::Memory));
        }
        if let Some(failure) = self.failed(&spec.key) {
            return Err(failure.into());
        }
        if head {
            match self.shared.store.size(&self.stored_at(spec)).await {
                Ok(len) => {
                    self.shared.metrics.cache(Tier::Store);
                    return Ok((Payload::Length(len), Tier::Store));
                }
                Err(StorageError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        match self.fetch_or_make(spec).await? {
            produce::Found::Variant(variant, tier) => Ok((Payload::Bytes(variant.bytes.clone()), tier)),
            produce::Found::TooLargeToKeep => {
                Ok((Payload::Stream(self.shared.store.get(&self.stored_at(spec)).await?), Tier::Store))
            }
        }
    }

    /// The error `key`'s transform failed with, while it is remembered: asking again costs
    /// this lookup, not a store read, a charge or a worker.
    fn failed(&self, key: &VariantKey) -> Option<transform::PipelineError> {
        let failure = self.failures.get(key)?;
        self.shared.metrics.failure_remembered();
        Some(failure)
    }

    /// The variant from this replica's memory, counted as a memory hit.
    fn cached(&self, key: &VariantKey) -> Option<Arc<Variant>> {
        let hit = self.shared.memory.get(key)?;
        self.shared.metrics.cache(Tier::Memory);
        Some(hit)
    }

    /// Where `spec` is kept in the object store.
    fn stored_at(&self, spec: &VariantSpec) -> BlobKey {
        self.variant_at(&spec.image.id, &spec.key, spec.format)
    }

    /// Where the variant `key` of image `id`, in `format`, is kept in the object store.
    fn variant_at(&self, id: &ImageId, key: &VariantKey, format: ImageFormat) -> BlobKey {
        self.shared.keys.variant(id, &key.hex(), format.extension())
    }
}

/// What [`Delivery::recall`] knows of a request.
#[allow(clippy::large_enum_variant)] // `Ready` is a cache hit's answer: boxing it would cost each hit an allocation
pub enum Recall {
    /// The answer, its bytes in hand.
    Ready(Resolved),
    /// A remembered URL whose bytes take a store read.
    Read(Arc<Remembered>, Access),
    /// Nothing: the request is resolved in full.
    Unknown,
}

/// The answer to a remembered URL, as `access` allows, with its bytes from `source`.
fn recalled(entry: &Remembered, access: Access, source: Source) -> Resolved {
    Resolved {
        etag: entry.etag.clone(),
        cache_control: access.cache_control(),
        vary: entry.vary,
        format: entry.format,
        tags: entry.tags.clone(),
        source,
        fallback: None,
    }
}

/// Whether the answer to `ask` may be remembered by URL: not when it depends on hints or on a
/// preset (which may change).
fn rememberable(ask: &Ask<'_>) -> bool {
    !ask.hints.save_data && !ask.ops.is_some_and(hinted_or_preset)
}

/// Whether `ops` has a `w_auto`, `dpr_auto` or `p_` token. One pass over the bytes: three
/// substring searches were 5 % of a memory hit's instructions, splitting on `,` 2 %.
fn hinted_or_preset(ops: &str) -> bool {
    let ops = ops.as_bytes();
    (0..ops.len()).filter(|&i| i == 0 || ops[i - 1] == b',').any(|i| {
        let token = &ops[i..];
        token.starts_with(b"w_auto") || token.starts_with(b"dpr_auto") || token.starts_with(b"p_")
    })
}

fn header(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(Error::internal)
}

/// The variant's key; an output that keeps the source's animation has its own.
fn variant_key(image: &ImageRecord, ops: &Ops, plan: &Plan, format: ImageFormat) -> VariantKey {
    let key = VariantKey::new(&image.id, ops, plan, format);
    let key = if image.is_animated() && !ops.still && format.can_animate() { key.animated() } else { key };
    key.purged(image.purges)
}

#[cfg(test)]
mod tests {
    use super::hinted_or_preset;

    /// A URL whose answer depends on the client's hints or on a preset is never remembered by
    /// URL, wherever the token stands.
    #[test]
    fn hinted_and_preset_ops_are_found_in_any_token() {
        for ops in ["w_auto", "w_auto:640,fmt_webp", "fmt_webp,dpr_auto", "p_thumb", "w_300,p_hero-2,q_50"] {
            assert!(hinted_or_preset(ops), "{ops}");
        }
        for ops in ["", "w_300,q_80,fmt_webp", "fmt_auto,q_auto", "w_300,dpr_2", "q_auto:eco"] {
            assert!(!hinted_or_preset(ops), "{ops}");
        }
    }
}
