//! Variants: memory → object store → transform, with single flight and the daily quota.
//!
//! A miss in both caches charges the owner one transform (taken before the work, given back if
//! it fails), runs the pipeline on the worker pool, writes the result to the store under
//! `derived/<image>/<variant key>` and to memory. Concurrent misses for one variant share one
//! transform and one charge.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;

use crate::cache::{Flights, Lookups, MemoryCache, Tier, Variant};
use crate::config::Limits;
use crate::db::{ImageRecord, OwnerKey};
use crate::error::Error;
use crate::images::ImageFormat;
use crate::metrics::Metrics;
use crate::quota::Quota;
use crate::storage::{Blob, BlobKey, BlobKeys, ByteStream, StorageError, Store};
use crate::transform::pool::PoolError;
use crate::transform::{
    geometry, pipeline, resolve_format, FormatChoice, Job, Ops, OpsError, TransformPool, VariantKey,
};

/// Largest variant read from the store that is also copied into memory while it streams.
const TEE_LIMIT: u64 = 16 << 20;

/// Result shared by the requests of one flight.
type Shared = Result<Arc<Variant>, Arc<Error>>;

/// A variant request that passed authorisation and validation.
#[derive(Debug, Clone)]
pub struct Target {
    /// The original.
    pub image: ImageRecord,
    /// Its owner's plan (for the quota).
    pub plan: String,
    /// The normalised ops.
    pub ops: Ops,
    /// The resolved output format.
    pub format: ImageFormat,
    /// The variant key.
    pub key: VariantKey,
    /// The watermark original, when `wm_` is given.
    pub watermark: Option<ImageRecord>,
}

/// Bytes of a response: in memory, or streaming from the store.
pub enum Payload {
    /// Whole bytes.
    Bytes(Bytes),
    /// A streamed object of known length.
    Stream(Blob),
}

impl Payload {
    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Self::Bytes(b) => b.len() as u64,
            Self::Stream(blob) => blob.len,
        }
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Variant production and the cache tiers.
#[derive(Clone)]
pub struct Delivery {
    store: Store,
    keys: BlobKeys,
    lookups: Lookups,
    memory: MemoryCache,
    flights: Flights<VariantKey, Shared>,
    pool: TransformPool,
    quota: Quota,
    metrics: Arc<Metrics>,
    limits: Limits,
    avif_speed: u8,
    store_variants: bool,
}

/// Settings of [`Delivery`].
#[derive(Debug, Clone)]
pub struct DeliverySettings {
    /// Upload and ops limits.
    pub limits: Limits,
    /// rav1e speed.
    pub avif_speed: u8,
    /// Whether variants are written to the store.
    pub store_variants: bool,
}

impl Delivery {
    /// Variant production over the given parts.
    #[allow(clippy::too_many_arguments)] // one value per collaborator; a builder would only rename them
    pub fn new(
        store: Store,
        keys: BlobKeys,
        lookups: Lookups,
        memory: MemoryCache,
        pool: TransformPool,
        quota: Quota,
        metrics: Arc<Metrics>,
        settings: DeliverySettings,
    ) -> Self {
        Self {
            store,
            keys,
            lookups,
            memory,
            flights: Flights::default(),
            pool,
            quota,
            metrics,
            limits: settings.limits,
            avif_speed: settings.avif_speed,
            store_variants: settings.store_variants,
        }
    }

    /// Checks `ops` against `image` and resolves the output: crop inside the image, watermark
    /// owned by the same owner, format from `fmt_` and `Accept`.
    ///
    /// # Errors
    /// 400 `invalid_transform` naming the token; 5xx when a lookup fails.
    pub async fn target(
        &self,
        image: ImageRecord,
        owner: &OwnerKey,
        ops: Ops,
        accept: Option<&str>,
    ) -> Result<Target, Error> {
        geometry::plan((image.width, image.height), &ops, self.limits.max_dimension)
            .map_err(Error::InvalidTransform)?;
        let watermark = match &ops.watermark {
            None => None,
            Some(id) => {
                let unknown = || Error::InvalidTransform(OpsError::UnknownWatermark(id.to_string()));
                let wm = self.lookups.image(id).await?.ok_or_else(unknown)?;
                if wm.owner != image.owner {
                    return Err(unknown());
                }
                Some(wm)
            }
        };
        let format = resolve_format(ops.format, image.format, image.has_alpha, accept);
        let key = VariantKey::new(&image.id, &ops, format);
        Ok(Target { image, plan: owner.plan.clone(), ops, format, key, watermark })
    }

    /// Whether the response for `target` varies with `Accept`.
    pub fn varies_by_accept(target: &Target) -> bool {
        target.ops.format == Some(FormatChoice::Auto)
    }

    /// The variant from this replica's memory, counted as a memory hit.
    pub fn cached(&self, key: &VariantKey) -> Option<Arc<Variant>> {
        let hit = self.memory.get(key)?;
        self.metrics.cache(Tier::Memory);
        Some(hit)
    }

    /// Serves a variant for `/i`: memory, else a streamed store object, else a transform.
    ///
    /// # Errors
    /// 429 when a transform is needed and the quota is spent, 503 when the pool is full or
    /// the transform times out, 422 when the original cannot be decoded, 5xx for backends.
    pub async fn serve(&self, target: &Target) -> Result<(Payload, Tier), Error> {
        if let Some(hit) = self.cached(&target.key) {
            return Ok((Payload::Bytes(hit.bytes.clone()), Tier::Memory));
        }
        let key = self.variant_key(target);
        match self.store.get(&key).await {
            Ok(blob) => {
                self.metrics.cache(Tier::Store);
                Ok((Payload::Stream(self.tee(blob, target)), Tier::Store))
            }
            Err(StorageError::NotFound) => {
                let variant = self.produce(target).await?;
                Ok((Payload::Bytes(variant.bytes.clone()), Tier::Miss))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The whole variant with its size, for the JSON transform API.
    ///
    /// # Errors
    /// As [`Delivery::serve`].
    pub async fn variant(&self, target: &Target) -> Result<(Arc<Variant>, Tier), Error> {
        if let Some(hit) = self.cached(&target.key) {
            return Ok((hit, Tier::Memory));
        }
        match self.store.get(&self.variant_key(target)).await {
            Ok(blob) => {
                let bytes = blob.into_bytes().await?;
                let variant = Arc::new(describe(bytes, target.format));
                self.memory.insert(target.key, Arc::clone(&variant));
                self.metrics.cache(Tier::Store);
                Ok((variant, Tier::Store))
            }
            Err(StorageError::NotFound) => Ok((self.produce(target).await?, Tier::Miss)),
            Err(e) => Err(e.into()),
        }
    }

    /// Streams the original of `image`.
    ///
    /// # Errors
    /// 404 when its object is gone, 5xx for the store.
    pub async fn original(&self, image: &ImageRecord) -> Result<Blob, Error> {
        Ok(self.store.get(&self.keys.original(&image.id)).await?)
    }

    fn variant_key(&self, target: &Target) -> BlobKey {
        self.keys.variant(&target.image.id, &target.key.hex(), target.format.extension())
    }

    /// Runs (or joins) the transform for `target`.
    async fn produce(&self, target: &Target) -> Result<Arc<Variant>, Error> {
        let this = self.clone();
        let job = target.clone();
        let (result, _leader) =
            self.flights.run(target.key, move || async move { this.make(&job).await.map_err(Arc::new) }).await;
        self.metrics.cache(Tier::Miss);
        match result {
            Some(Ok(variant)) => Ok(variant),
            Some(Err(e)) => Err(Error::Shared(e)),
            None => Err(Error::internal("transform task failed")),
        }
    }

    /// The leader's work: charge, transform, store, cache; refund on failure.
    #[tracing::instrument(skip_all, fields(request_id = %crate::telemetry::request_id(), image_id = %target.image.id, ops = %target.ops, format = %target.format))]
    async fn make(&self, target: &Target) -> Result<Arc<Variant>, Error> {
        // A flight that just ended may have filled memory between our lookup and this one.
        if let Some(hit) = self.memory.get(&target.key) {
            return Ok(hit);
        }
        let charge = match self.quota.charge(&target.image.owner, &target.plan).await? {
            Ok(charge) => charge,
            Err(exceeded) => {
                self.metrics.quota_rejected();
                return Err(exceeded.into());
            }
        };
        let started = Instant::now();
        let result = self.transform(target).await;
        self.metrics.transform(result.is_ok(), started.elapsed());
        let variant = match result {
            Ok(variant) => Arc::new(variant),
            Err(e) => {
                if let Err(refund) = self.quota.refund(&charge).await {
                    tracing::error!(error = ?refund, "could not refund the quota of a failed transform");
                }
                return Err(e);
            }
        };
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            bytes = variant.bytes.len(),
            used_today = charge.used,
            "transformed"
        );
        if self.store_variants {
            if let Err(e) = self.store.put(&self.variant_key(target), variant.bytes.clone(), target.format.mime()).await
            {
                tracing::warn!(error = ?e, "could not write the variant to the store; serving it anyway");
            }
        }
        self.memory.insert(target.key, Arc::clone(&variant));
        Ok(variant)
    }

    async fn transform(&self, target: &Target) -> Result<Variant, Error> {
        let original = self.store.get_bytes(&self.keys.original(&target.image.id)).await?;
        let watermark = match &target.watermark {
            Some(wm) => Some((self.store.get_bytes(&self.keys.original(&wm.id)).await?, wm.format)),
            None => None,
        };
        let (target, limits, avif_speed) = (target.clone(), self.limits.clone(), self.avif_speed);
        let output = self
            .pool
            .run(move || {
                pipeline::run(&Job {
                    original: &original,
                    source_format: target.image.format,
                    source_size: (target.image.width, target.image.height),
                    ops: &target.ops,
                    format: target.format,
                    watermark: watermark.as_ref().map(|(bytes, format)| (bytes.as_ref(), *format)),
                    max_pixels: limits.max_pixels,
                    max_dimension: limits.max_dimension,
                    avif_speed,
                })
            })
            .await
            .map_err(|e| {
                if e != PoolError::Panicked {
                    self.metrics.overloaded();
                }
                Error::from(e)
            })??;
        Ok(Variant {
            bytes: Bytes::from(output.bytes),
            format: output.format,
            width: output.width,
            height: output.height,
        })
    }

    /// Streams `blob` and, when it is small enough, keeps a copy in memory once it is complete.
    fn tee(&self, blob: Blob, target: &Target) -> Blob {
        if blob.len > TEE_LIMIT {
            return blob;
        }
        let (memory, key, format) = (self.memory.clone(), target.key, target.format);
        let stream = Tee {
            inner: blob.stream,
            buf: BytesMut::with_capacity(usize::try_from(blob.len).unwrap_or(0)),
            expected: blob.len,
            done: Some(Box::new(move |bytes| memory.insert(key, Arc::new(describe(bytes, format))))),
        };
        Blob { len: blob.len, stream: Box::pin(stream) }
    }
}

/// A variant read back from the store: its size comes from the header.
fn describe(bytes: Bytes, format: ImageFormat) -> Variant {
    let (width, height) = imagesize::blob_size(&bytes)
        .map(|s| (u32::try_from(s.width).unwrap_or(0), u32::try_from(s.height).unwrap_or(0)))
        .unwrap_or((0, 0));
    Variant { bytes, format, width, height }
}

/// Passes a stream through while copying it; hands the copy over when the stream completes
/// with exactly the expected length.
struct Tee {
    inner: ByteStream,
    buf: BytesMut,
    expected: u64,
    done: Option<Box<dyn FnOnce(Bytes) + Send>>,
}

impl Stream for Tee {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let next = this.inner.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(Ok(chunk))) => {
                if (this.buf.len() + chunk.len()) as u64 <= this.expected {
                    this.buf.extend_from_slice(chunk);
                } else {
                    this.done = None;
                }
                // Hand over on the last byte: with a known length, hyper stops polling once
                // it has them all and never asks for the end of the stream.
                if this.buf.len() as u64 == this.expected {
                    if let Some(done) = this.done.take() {
                        done(std::mem::take(&mut this.buf).freeze());
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => this.done = None,
            Poll::Ready(None) | Poll::Pending => {}
        }
        next
    }
}
