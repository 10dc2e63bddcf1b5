//! An owner's images (originals): upload, read, list, publish, delete — keeping the database and the
//! object store consistent.
//!
//! An upload stores the object first and records the row after, so no row ever points at a
//! missing object; a delete removes the row first, then the objects. A crash between the two
//! steps can only leave objects without a row, which `imgedge sweep` removes.

pub mod upload;

use std::time::Duration;

use bytes::Bytes;

pub use self::upload::{Inspected, UploadError};
use crate::db::{to_micros, ImageRecord, Inspection, PageAfter};
use crate::error::Error;
use crate::ids::{ImageId, UserId};
use crate::purges;
use crate::shared::Shared;
use crate::transform::levels::{self, Level};

/// Upload, read and delete originals.
#[derive(Clone)]
pub struct Images {
    shared: Shared,
    check_timeout: Duration,
}

impl Images {
    /// A images over the shared collaborators; an upload waits at most `check_timeout` for its check.
    pub fn new(shared: Shared, check_timeout: Duration) -> Self {
        Self { shared, check_timeout }
    }

    /// Validates and stores an upload for `owner`.
    ///
    /// # Errors
    /// 415 for unsupported content, 422 for corrupt or oversized images, 503 when the worker
    /// pool is full, 5xx when a backend fails. Nothing is stored on any error.
    #[tracing::instrument(skip_all, fields(request_id = %crate::telemetry::request_id(), owner = %owner, bytes = bytes.len()))]
    pub async fn upload(&self, owner: &UserId, bytes: Bytes) -> Result<ImageRecord, Error> {
        if bytes.is_empty() {
            return Err(UploadError::MissingFile("the upload is empty").into());
        }
        // The cheap checks first, so hostile headers never reach a decoder or a worker.
        let p = &self.shared;
        let header = upload::check_header(&bytes, &p.limits)?;
        let (limits, data) = (p.limits.clone(), bytes.clone());
        let check = move || upload::inspect(&data, &limits);
        let inspected = p.workers.run_within(self.check_timeout, header.memory, check).await??;
        let record = ImageRecord {
            id: ImageId::generate(),
            owner: owner.clone(),
            format: inspected.format,
            width: inspected.width,
            height: inspected.height,
            size_bytes: bytes.len() as u64,
            content_hash: inspected.content_hash,
            has_alpha: inspected.has_alpha,
            placeholder: Some(inspected.placeholder),
            frames: Some(inspected.frames),
            public: false,
            levels: Some(levels::mask(&inspected.levels)),
            copies_bytes: Some(levels::bytes(&inspected.levels)),
            purges: 0,
            created_at: to_micros(p.clock.now()),
        };
        let key = p.keys.original(&record.id);
        p.store.put(&key, bytes, record.format.mime()).await?;
        // Objects first, the row after: a row never names a missing object.
        let stored = self.put_levels(&record.id, inspected.levels).await;
        let inserted = match stored {
            Ok(()) => p.db.insert_image(&record).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        if let Err(e) = inserted {
            for key in [key].into_iter().chain(levels::FACTORS.map(|f| p.keys.level(&record.id, f))) {
                if let Err(cleanup) = p.store.delete(&key).await {
                    tracing::warn!(error = ?cleanup, key = key.as_str(), "could not remove an object of a failed upload");
                }
            }
            return Err(e);
        }
        tracing::info!(image_id = %record.id, format = %record.format, width = record.width, height = record.height, "image uploaded");
        Ok(record)
    }

    /// Stores the working copies of `id`.
    async fn put_levels(&self, id: &ImageId, levels: Vec<Level>) -> Result<(), Error> {
        for level in levels {
            let at = self.shared.keys.level(id, level.factor);
            self.shared.store.put(&at, Bytes::from(level.bytes), level.kind.format().mime()).await?;
        }
        Ok(())
    }

    /// The image `id` when `owner` owns it.
    ///
    /// # Errors
    /// 404 when there is no such image, 403 when someone else owns it.
    pub async fn owned(&self, owner: &UserId, id: &str) -> Result<ImageRecord, Error> {
        let id = ImageId::parse(id).ok_or(Error::NotFound("image not found"))?;
        let record = self.shared.db.image(&id).await?.ok_or(Error::NotFound("image not found"))?;
        if &record.owner != owner {
            return Err(Error::Forbidden("this image belongs to another owner"));
        }
        Ok(record)
    }

    /// The image `id`, whoever owns it (for the operator's tools).
    ///
    /// # Errors
    /// 400 for a malformed id, 404 when there is no such image.
    pub async fn image(&self, id: &str) -> Result<ImageRecord, Error> {
        let id = ImageId::parse(id).ok_or_else(|| Error::InvalidRequest(format!("`{id}` is not an image id")))?;
        self.shared.db.image(&id).await?.ok_or(Error::NotFound("image not found"))
    }

    /// A page of `owner`'s images, newest first, and the cursor of the next page.
    ///
    /// # Errors
    /// 400 for a malformed cursor, 5xx when the database fails.
    pub async fn list(
        &self,
        owner: &UserId,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<ImageRecord>, Option<String>), Error> {
        let after = cursor.map(decode_cursor).transpose()?;
        // One extra row tells whether another page exists.
        let mut rows = self.shared.db.list_images(owner, after.as_ref(), limit + 1).await?;
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = if more { rows.last().map(encode_cursor) } else { None };
        Ok((rows, next))
    }

    /// Publishes (or un-publishes) an image the caller owns: a public image is served without a
    /// signature through its owner's public presets. Un-publishing holds on this replica at
    /// once and on every replica within the lookup bound.
    ///
    /// # Errors
    /// 404/403 as [`Images::owned`]; 5xx when the database fails.
    pub async fn set_public(&self, owner: &UserId, id: &str, public: bool) -> Result<ImageRecord, Error> {
        let record = self.owned(owner, id).await?;
        if !self.shared.db.set_image_public(&record.id, public).await? {
            return Err(Error::NotFound("image not found"));
        }
        self.shared.lookups.forget_image(&record.id);
        if !public {
            // Shared caches may keep unsigned answers through its public presets.
            self.shared.purges.queue(&[purges::image_tag(&record.id)]).await;
        }
        tracing::info!(image_id = %record.id, public, "image visibility changed");
        Ok(ImageRecord { public, ..record })
    }

    /// Purges every cached variant of an image the caller owns; the original and its working
    /// copies stay. The purge count is part of every variant key, so the next request for any
    /// variant is a miss (and a charge) on this replica at once and on every replica within
    /// the lookup bound, whatever their memory holds; the old variants are deleted from the
    /// store now (a failure there is logged: they are unreachable anyway, and `imgedge sweep`
    /// does not need them).
    ///
    /// # Errors
    /// 404/403 as [`Images::owned`]; 5xx when the database fails.
    #[tracing::instrument(skip_all, fields(request_id = %crate::telemetry::request_id(), owner = %owner, image_id = id))]
    pub async fn purge_variants(&self, owner: &UserId, id: &str) -> Result<(), Error> {
        let record = self.owned(owner, id).await?;
        let Some(purges) = self.shared.db.purge_variants(&record.id).await? else {
            return Err(Error::NotFound("image not found"));
        };
        self.shared.lookups.forget_image(&record.id);
        self.shared.purges.queue(&[purges::image_tag(&record.id)]).await;
        let p = &self.shared;
        let level = |key: &str| key.rsplit('/').next().is_some_and(|name| name.starts_with("level-"));
        match p.store.list(&p.keys.variants_of(&record.id)).await {
            Ok(objects) => {
                for object in objects.into_iter().filter(|o| !level(o.key.as_str())) {
                    if let Err(e) = p.store.delete(&object.key).await {
                        tracing::warn!(error = ?e, key = object.key.as_str(), "could not delete a purged variant");
                    }
                }
            }
            Err(e) => tracing::warn!(error = ?e, "could not list the variants to delete them"),
        }
        tracing::info!(purges, "variants purged");
        Ok(())
    }

    /// Deletes an image the caller owns: the row, then the original and every variant.
    ///
    /// # Errors
    /// 404/403 as [`Images::owned`]; 5xx when the database fails. Object-store failures after
    /// the row is gone are logged and left to `imgedge sweep`.
    #[tracing::instrument(skip_all, fields(request_id = %crate::telemetry::request_id(), owner = %owner, image_id = id))]
    pub async fn delete(&self, owner: &UserId, id: &str) -> Result<(), Error> {
        let record = self.owned(owner, id).await?;
        self.shared.db.delete_image(&record.id).await?;
        self.shared.lookups.forget_image(&record.id);
        self.shared.purges.queue(&[purges::image_tag(&record.id)]).await;
        self.remove_objects(&record.id).await;
        tracing::info!("image deleted");
        Ok(())
    }

    /// Removes the original and every variant of `id`, logging (not failing) on errors.
    pub async fn remove_objects(&self, id: &ImageId) {
        let p = &self.shared;
        if let Err(e) = p.store.delete(&p.keys.original(id)).await {
            tracing::warn!(error = ?e, image_id = %id, "could not delete the original; `imgedge sweep` will");
        }
        if let Err(e) = p.store.delete_prefix(&p.keys.variants_of(id)).await {
            tracing::warn!(error = ?e, image_id = %id, "could not delete the variants; `imgedge sweep` will");
        }
    }
}

impl Images {
    /// Computes the placeholders, frame counts and working copies of rows uploaded before they
    /// existed, or with an earlier set of copies ([`levels::EARLIER_MASKS`]), a batch at a
    /// time, each from its original on the worker pool (the whole upload check again, so at the
    /// same cost and within the same budget). A row that lacks only the bytes of its copies has
    /// them measured in the store instead. Returns how many rows it filled. An image that
    /// fails (its original missing or unreadable) is logged and skipped until the next start.
    pub async fn backfill(&self) -> usize {
        const BATCH: u32 = 32;
        let p = &self.shared;
        let (mut filled, mut skipped) = (0, std::collections::HashSet::new());
        loop {
            let rows = match p
                .db
                .images_to_backfill(BATCH.saturating_add(u32::try_from(skipped.len()).unwrap_or(u32::MAX)))
                .await
            {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = ?e, "backfill stopped: the database failed");
                    return filled;
                }
            };
            let todo: Vec<ImageRecord> = rows.into_iter().filter(|r| !skipped.contains(&r.id)).collect();
            if todo.is_empty() {
                if filled > 0 || !skipped.is_empty() {
                    tracing::info!(
                        filled,
                        skipped = skipped.len(),
                        "backfill of placeholders, frames and working copies done"
                    );
                }
                return filled;
            }
            for record in todo {
                let inspected = match self.measure(&record).await {
                    Ok(Some(measured)) => Ok(measured),
                    Ok(None) => self.reinspect(&record).await,
                    Err(e) => Err(e),
                };
                match inspected {
                    Ok(inspection) => {
                        match p.db.set_inspection(&record.id, &inspection).await {
                            Ok(_) => {
                                // Its working copies are used here at once.
                                p.lookups.forget_image(&record.id);
                                filled += 1;
                            }
                            Err(e) => {
                                tracing::warn!(error = ?e, "backfill stopped: the database failed");
                                return filled;
                            }
                        }
                    }
                    // Serving comes first: a busy pool means try again shortly.
                    Err(Error::Overloaded { retry_after, .. }) => {
                        tokio::time::sleep(Duration::from_secs(retry_after)).await;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, image_id = %record.id, "no placeholder or frame count for this image");
                        skipped.insert(record.id);
                    }
                }
            }
        }
    }

    /// The upload check again, on a stored original; its working copies are stored on the way.
    async fn reinspect(&self, record: &ImageRecord) -> Result<Inspection, Error> {
        let p = &self.shared;
        let bytes = p.store.get_bytes(&p.keys.original(&record.id)).await?;
        let header = upload::check_header(&bytes, &p.limits)?;
        let limits = p.limits.clone();
        let check = move || upload::inspect(&bytes, &limits);
        let inspected = p.workers.run_within(self.check_timeout, header.memory, check).await??;
        let (levels, copies_bytes) = (levels::mask(&inspected.levels), levels::bytes(&inspected.levels));
        self.put_levels(&record.id, inspected.levels).await?;
        Ok(Inspection { placeholder: inspected.placeholder, frames: inspected.frames, levels, copies_bytes })
    }

    /// A row complete but for the bytes of its working copies: those copies' sizes in the
    /// store, without decoding the original again. `None` when the row lacks more than that
    /// or a copy is missing from the store; the whole check runs again then.
    async fn measure(&self, record: &ImageRecord) -> Result<Option<Inspection>, Error> {
        let (Some(placeholder), Some(frames), Some(mask)) = (&record.placeholder, record.frames, record.levels) else {
            return Ok(None);
        };
        if levels::EARLIER_MASKS.contains(&mask) {
            return Ok(None);
        }
        let mut copies_bytes = 0;
        for factor in levels::factors(mask) {
            match self.shared.store.size(&self.shared.keys.level(&record.id, factor)).await {
                Ok(n) => copies_bytes += n,
                Err(e) if e.is_not_found() => return Ok(None),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Some(Inspection { placeholder: placeholder.clone(), frames, levels: mask, copies_bytes }))
    }
}

fn encode_cursor(last: &ImageRecord) -> String {
    use base64::Engine;
    let raw = format!("{}.{}", last.created_at.timestamp_micros(), last.id);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(cursor: &str) -> Result<PageAfter, Error> {
    use base64::Engine;
    let bad = || Error::InvalidRequest("invalid cursor".into());
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(cursor).map_err(|_| bad())?;
    let raw = String::from_utf8(raw).map_err(|_| bad())?;
    let (micros, id) = raw.split_once('.').ok_or_else(bad)?;
    let created_at = micros.parse::<i64>().ok().and_then(chrono::DateTime::from_timestamp_micros).ok_or_else(bad)?;
    Ok(PageAfter { created_at, id: ImageId::parse(id).ok_or_else(bad)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let record = ImageRecord {
            id: ImageId::generate(),
            owner: UserId::generate(),
            format: crate::format::ImageFormat::Png,
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
            created_at: to_micros(chrono::Utc::now()),
        };
        let after = decode_cursor(&encode_cursor(&record)).unwrap();
        assert_eq!((after.created_at, after.id), (record.created_at, record.id));
        assert!(decode_cursor("!!").is_err());
        assert!(decode_cursor("bm9wZQ").is_err());
    }
}
