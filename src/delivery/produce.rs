//! A variant not in this replica's memory: read from the store, or made — charge the quota,
//! transform on the worker pool, keep the result in the store and in memory, give the charge
//! back if the work fails.
//!
//! Either runs as one flight per variant, to its end, whoever is still waiting: concurrent
//! requests share one store read (one copy in memory) or one transform (one charge); replicas
//! that share PostgreSQL share one transform through a claim (see [`super::claims`]). A request
//! that waits longer than the transform timeout answers 503, but the work is not thrown away
//! and not started again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::claims::{Claims, Held};
use super::{Delivery, VariantSpec};
use crate::cache::{Tier, Variant};
use crate::error::Error;
use crate::format::ImageFormat;
use crate::metrics::ClaimOutcome;
use crate::quota::Charge;
use crate::storage::{BlobKey, StorageError};
use crate::transform::{levels, pipeline, Job, PipelineError, VariantKey};
use crate::workers::PoolError;

/// What the flight for a variant found or made.
#[derive(Clone)]
pub(super) enum Found {
    /// The variant, and where it came from.
    Variant(Arc<Variant>, Tier),
    /// A stored variant too large to keep in memory: each request streams it.
    TooLargeToKeep,
}

/// What a store had at hand of a variant (see [`Delivery::read_at_hand`]).
pub(super) enum AtHand {
    /// Read, and kept in memory.
    Kept(Arc<Variant>),
    /// The store knows at once that it has no such object.
    Absent,
    /// Not at hand: it takes a read that may wait.
    Elsewhere,
}

/// A variant read back from the store.
#[derive(Clone)]
pub(super) enum Stored {
    /// Kept in memory (when the cache is on) and ready to serve.
    Kept(Arc<Variant>),
    /// Too large to keep: each request streams it from the store.
    TooLarge,
}

/// What a fleet-wide claim came to.
enum Claimed {
    /// This replica makes the variant.
    Held(Held),
    /// Another replica made it.
    Stored(Stored),
}

/// The first pause before a replica that waits for another's transform looks in the store.
const FIRST_POLL: Duration = Duration::from_millis(20);
/// The longest pause between two looks.
const LAST_POLL: Duration = Duration::from_millis(250);

/// Result shared by the requests of one store read.
pub(super) type Read = Result<Option<Stored>, Arc<Error>>;

impl Delivery {
    /// The bytes a transform decodes: the smallest working copy that holds every pixel the
    /// original's own decode would give (see [`levels::choose`]), else the original; with the
    /// copy's factor (1 for the original).
    async fn source(&self, spec: &VariantSpec) -> Result<(Bytes, u32), Error> {
        let p = &self.shared;
        // Only stills have copies, so an animation always reads its original.
        let level = spec.image.levels.map_or(1, |mask| levels::choose(mask, spec.plan.shrink()));
        if level > 1 {
            match p.store.get_bytes(&p.keys.level(&spec.image.id, level)).await {
                Ok(bytes) => return Ok((bytes, level)),
                Err(StorageError::NotFound) => {
                    tracing::warn!(level, "a working copy is missing; decoding the original");
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok((p.store.get_bytes(&p.keys.original(&spec.image.id)).await?, 1))
    }

    /// The variant stored at `at`, kept in memory as `key` when it fits; `None` when the store
    /// does not have it. Concurrent reads of one variant — from the transform flight or from
    /// remembered URLs — share one read of the object and one copy in memory, unless the store
    /// has it at hand (a page-cached file), which each reads on the spot.
    pub(super) async fn read_stored(
        &self,
        at: &BlobKey,
        key: VariantKey,
        format: ImageFormat,
    ) -> Result<Option<Stored>, Error> {
        match self.read_at_hand(at, key, format) {
            AtHand::Kept(variant) => Ok(Some(Stored::Kept(variant))),
            AtHand::Absent => Ok(None),
            AtHand::Elsewhere => self.read_shared(at, key, format).await,
        }
    }

    /// The variant stored at `at` when the store has it at hand (a local file in the page
    /// cache), read on the spot and kept in memory as `key`: no flight, no task, nothing to
    /// merge, as they cost more than such a read.
    pub(super) fn read_at_hand(&self, at: &BlobKey, key: VariantKey, format: ImageFormat) -> AtHand {
        match self.shared.store.get_at_hand(at) {
            Ok(Some(bytes)) if bytes.len() as u64 <= super::MEMORY_LIMIT => {
                self.shared.metrics.store_read();
                let variant = describe(bytes, format);
                AtHand::Kept(self.shared.memory.keep(key, variant))
            }
            Err(StorageError::NotFound) => AtHand::Absent,
            _ => AtHand::Elsewhere,
        }
    }

    /// [`Delivery::read_stored`] past the store's hand: one read however many ask at once.
    pub(super) async fn read_shared(
        &self,
        at: &BlobKey,
        key: VariantKey,
        format: ImageFormat,
    ) -> Result<Option<Stored>, Error> {
        let (this, at) = (self.clone(), at.clone());
        let read = move || async move { this.read_once(&at, key, format).await.map_err(Arc::new) };
        // Boxed: the flight's future is large, and a read at hand (above) should not carry it.
        match Box::pin(self.reads.run(key, read)).await.0 {
            Some(Ok(stored)) => Ok(stored),
            Some(Err(e)) => Err(Error::Shared(e)),
            None => Err(Error::internal("store read task failed")),
        }
    }

    async fn read_once(&self, at: &BlobKey, key: VariantKey, format: ImageFormat) -> Result<Option<Stored>, Error> {
        // A read that ended just before this one began has kept the variant already.
        if let Some(kept) = self.shared.memory.get(&key) {
            return Ok(Some(Stored::Kept(kept)));
        }
        let blob = match self.shared.store.get(at).await {
            Ok(blob) => blob,
            Err(StorageError::NotFound) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        self.shared.metrics.store_read();
        if blob.len > super::MEMORY_LIMIT {
            return Ok(Some(Stored::TooLarge));
        }
        let variant = describe(blob.into_bytes().await?, format);
        Ok(Some(Stored::Kept(self.shared.memory.keep(key, variant))))
    }

    /// Runs (or joins) the flight for `spec`: memory, the store, else a transform. Waits at
    /// most the transform timeout for it.
    pub(super) async fn fetch_or_make(&self, spec: &VariantSpec) -> Result<Found, Error> {
        // Admission before cost: a miss that would start a transform the pool cannot queue is
        // refused now — no store read, no charge and refund, no flight. Joining a flight that
        // runs already costs nothing more, so it is never refused here.
        if !self.flights.contains(&spec.key) && !self.shared.workers.has_room() {
            self.shared.metrics.cache(Tier::Miss);
            self.shared.metrics.overloaded();
            return Err(PoolError::QueueFull.into());
        }
        let this = self.clone();
        let job = spec.clone();
        // The flight outlives the request; its log lines keep the id of the request that began it.
        let request_id = crate::telemetry::request_id();
        let work = move || async move {
            crate::telemetry::with_request_id(
                request_id,
                async move { this.find_or_make(&job).await.map_err(Arc::new) },
            )
            .await
        };
        let flight = self.flights.run(spec.key, work);
        let Ok((result, _leader)) = tokio::time::timeout(self.settings.timeout, flight).await else {
            self.shared.metrics.cache(Tier::Miss);
            self.shared.metrics.overloaded();
            return Err(Error::Overloaded { reason: "the image is still being made; retry shortly", retry_after: 5 });
        };
        let found = match result {
            Some(Ok(found)) => found,
            Some(Err(e)) => return Err(Error::Shared(e)),
            None => return Err(Error::internal("transform task failed")),
        };
        self.shared.metrics.cache(match &found {
            Found::Variant(_, tier) => *tier,
            Found::TooLargeToKeep => Tier::Store,
        });
        Ok(found)
    }

    /// The flight's work: memory (a flight that just ended may have filled it), the store, else
    /// charge, transform, store, cache; refund on failure.
    #[tracing::instrument(skip_all, fields(request_id = %crate::telemetry::request_id(), image_id = %spec.image.id, ops = %spec.ops, format = %spec.format))]
    async fn find_or_make(&self, spec: &VariantSpec) -> Result<Found, Error> {
        let p = &self.shared;
        if let Some(hit) = p.memory.get(&spec.key) {
            return Ok(Found::Variant(hit, Tier::Memory));
        }
        match self.read_stored(&self.stored_at(spec), spec.key, spec.format).await? {
            Some(Stored::Kept(variant)) => return Ok(Found::Variant(variant, Tier::Store)),
            // A flight's result is shared, a stream is not: each request opens its own.
            Some(Stored::TooLarge) => return Ok(Found::TooLargeToKeep),
            None => {}
        }
        // Other replicas may be making it too: claim it fleet-wide, or wait for theirs. The
        // claim is held until this function returns — after the store has the variant.
        let held = match &self.claims {
            Some(claims) => match self.claim_or_wait(claims, spec).await? {
                Claimed::Held(held) => Some(held),
                Claimed::Stored(Stored::Kept(variant)) => return Ok(Found::Variant(variant, Tier::Store)),
                Claimed::Stored(Stored::TooLarge) => return Ok(Found::TooLargeToKeep),
            },
            None => None,
        };
        let charge = match held.as_ref().and_then(|held| held.charged_on) {
            // `fmt_auto`'s stand-in rides on the charge of the format it stands in for.
            _ if !spec.charged => None,
            // A replica that died making it had charged the owner already.
            Some(day) => Some(Charge { user: spec.image.owner.clone(), day, used: 0 }),
            None => Some(match p.quota.charge(&spec.image.owner, &spec.owner_plan).await? {
                Ok(charge) => {
                    p.metrics.quota_charged();
                    if let Some(held) = &held {
                        if let Err(e) = held.charged(charge.day).await {
                            tracing::warn!(error = ?e, "could not record the charge on the claim");
                        }
                    }
                    charge
                }
                Err(exceeded) => {
                    p.metrics.quota_rejected();
                    return Err(exceeded.into());
                }
            }),
        };
        let started = Instant::now();
        let result = self.transform(spec).await;
        p.metrics.transform(result.is_ok(), started.elapsed());
        let variant = match result {
            Ok(variant) => p.memory.keep(spec.key, variant),
            Err(e) => {
                if let Some(charge) = &charge {
                    match p.quota.refund(charge).await {
                        Ok(()) => p.metrics.quota_refunded(),
                        Err(refund) => {
                            tracing::error!(error = ?refund, "could not refund the quota of a failed transform")
                        }
                    }
                }
                if let Error::Pipeline(failure) = &e {
                    self.failures.remember(spec.key, failure.clone());
                }
                return Err(e);
            }
        };
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            bytes = variant.bytes.len(),
            used_today = charge.as_ref().map_or(0, |c| c.used),
            "transformed"
        );
        if self.settings.store_variants {
            if let Err(e) = p.store.put(&self.stored_at(spec), variant.bytes.clone(), spec.format.mime()).await {
                tracing::warn!(error = ?e, "could not write the variant to the store; serving it anyway");
            }
        }
        Ok(Found::Variant(variant, Tier::Miss))
    }

    /// Claims `spec`'s variant fleet-wide; while another replica holds it, waits for the result
    /// in the store, asking again with growing pauses until the claim is free (the holder let
    /// go after a failure) or its lease ran out (the holder died).
    async fn claim_or_wait(&self, claims: &Claims, spec: &VariantSpec) -> Result<Claimed, Error> {
        let at = self.stored_at(spec);
        let mut pause = FIRST_POLL;
        let mut waited = false;
        loop {
            if let Some(held) = claims.claim(&spec.key).await? {
                // A holder that finished after this replica's store read has let go with the
                // variant stored: look once more before making it again.
                return Ok(match self.read_stored(&at, spec.key, spec.format).await? {
                    Some(stored) => Claimed::Stored(stored),
                    None => Claimed::Held(held),
                });
            }
            if !waited {
                waited = true;
                self.shared.metrics.claim(ClaimOutcome::Waited);
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(LAST_POLL);
            if let Some(stored) = self.read_stored(&at, spec.key, spec.format).await? {
                return Ok(Claimed::Stored(stored));
            }
        }
    }

    async fn transform(&self, spec: &VariantSpec) -> Result<Variant, Error> {
        let p = &self.shared;
        let (original, level) = self.source(spec).await?;
        let watermark = match &spec.watermark {
            Some(wm) => Some((p.store.get_bytes(&p.keys.original(&wm.id)).await?, wm.format)),
            None => None,
        };
        let work = Work {
            original,
            watermark,
            spec: spec.clone(),
            limits: p.limits.clone(),
            avif_speed: self.settings.avif_speed,
            level,
        };
        // Refused from the headers when one decode would hold too much; else the pixel memory
        // is reserved from the process budget before a worker starts.
        let needed = pipeline::memory_needed(&work.job())?;
        if needed > p.limits.max_decode_bytes {
            return Err(PipelineError::TooLarge { needed, limit: p.limits.max_decode_bytes }.into());
        }
        let output = p.workers.run_holding(needed, move || pipeline::run(&work.job())).await.map_err(|e| {
            if e != PoolError::Panicked {
                p.metrics.overloaded();
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
}

/// What a transform owns while it waits for and runs on a worker.
struct Work {
    /// The original, or the working copy at 1/`level` of it.
    original: Bytes,
    watermark: Option<(Bytes, ImageFormat)>,
    spec: VariantSpec,
    limits: crate::config::Limits,
    avif_speed: u8,
    level: u32,
}

impl Work {
    fn job(&self) -> Job<'_> {
        Job {
            original: &self.original,
            // A copy is a JPEG or a PNG, whatever the original is.
            source_format: if self.level > 1 {
                levels::Kind::of(&self.original).format()
            } else {
                self.spec.image.format
            },
            source_size: (self.spec.image.width, self.spec.image.height),
            source_frames: self.spec.image.frames,
            ops: &self.spec.ops,
            format: self.spec.format,
            watermark: self.watermark.as_ref().map(|(bytes, format)| (bytes.as_ref(), *format)),
            max_pixels: self.limits.max_pixels,
            max_dimension: self.limits.max_dimension,
            avif_speed: self.avif_speed,
            level: self.level,
        }
    }
}

/// A variant read back from the store: its size comes from the header.
pub(super) fn describe(bytes: Bytes, format: ImageFormat) -> Variant {
    let (width, height) = imagesize::blob_size(&bytes)
        .map(|s| (u32::try_from(s.width).unwrap_or(0), u32::try_from(s.height).unwrap_or(0)))
        .unwrap_or((0, 0));
    Variant { bytes, format, width, height }
}
