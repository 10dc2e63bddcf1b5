//! Signing `/i` URLs for owners: the API's `url`, `srcset` and `transform` answers and the
//! command line's `imgedge url` all come here, so one set of ops signs one path whichever door
//! it came through, and what is signed is what delivery serves.
//!
//! The path carries the canonical ops (token order and defaults do not matter, tokens that
//! change nothing on this image drop out), a preset by its name (so the URL follows later
//! changes to it) with every token given beside it kept, and nothing delivery would refuse:
//! the ops are checked against the image exactly as a request for the URL will be.

use crate::auth::signature::MAX_EXPIRES_IN;
use crate::db::{ImageRecord, OwnerKey};
use crate::delivery::{Delivery, VariantSpec};
use crate::error::Error;
use crate::shared::Shared;
use crate::transform::{self, geometry, grammar, Ops, OpsError};

/// Most widths one srcset may list.
pub const MAX_SRCSET_WIDTHS: usize = 32;

/// Signs URLs over the shared collaborators, checking them as `delivery` will.
#[derive(Clone)]
pub struct Signing {
    shared: Shared,
    delivery: Delivery,
}

/// A signed URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// Path and query.
    pub url: String,
    /// Unix expiry, `None` when it never expires.
    pub exp: Option<i64>,
}

impl Signing {
    /// Signing over `shared`, checking ops as `delivery` does.
    pub fn new(shared: Shared, delivery: Delivery) -> Self {
        Self { shared, delivery }
    }

    /// The unix time a URL living `expires_in` seconds expires at; `None` never expires.
    ///
    /// # Errors
    /// 400 unless 1 ≤ `expires_in` ≤ [`MAX_EXPIRES_IN`].
    pub fn expiry(&self, expires_in: Option<u64>) -> Result<Option<i64>, Error> {
        match expires_in {
            None => Ok(None),
            Some(secs @ 1..=MAX_EXPIRES_IN) => Ok(Some(self.shared.clock.unix() + i64::try_from(secs).unwrap_or(0))),
            Some(_) => Err(Error::InvalidRequest(format!("expires_in must be an integer from 1 to {MAX_EXPIRES_IN}"))),
        }
    }

    /// The signed URL of `ops` on `image`, expiring after `expires_in` seconds.
    ///
    /// # Errors
    /// 400 for ops delivery would refuse on this image (bad tokens, an unknown preset, a crop
    /// outside it, an output its format cannot hold) or a bad expiry; 5xx when a lookup fails.
    pub async fn url(&self, image: &ImageRecord, ops: &str, expires_in: Option<u64>) -> Result<Signed, Error> {
        let exp = self.expiry(expires_in)?;
        let owner = self.owner_key(image).await?;
        let path = self.path(image, &owner, ops).await?;
        Ok(Signed { url: owner.signing_key.signed_url(&path, exp), exp })
    }

    /// One signed URL per width of a `srcset`: the widths capped at the image's (after crop
    /// and rotation), deduplicated, ascending, each with the other ops.
    ///
    /// # Errors
    /// 400 for 0 or more than [`MAX_SRCSET_WIDTHS`] widths, a width outside 1 to the max
    /// dimension, `dpr_`, `w_auto` or a preset in `ops`, or ops delivery would refuse.
    pub async fn srcset(
        &self,
        image: &ImageRecord,
        ops: &str,
        widths: &[u32],
        expires_in: Option<u64>,
    ) -> Result<Vec<(u32, String)>, Error> {
        let max_dimension = self.shared.limits.max_dimension;
        if widths.is_empty() || widths.len() > MAX_SRCSET_WIDTHS {
            return Err(Error::InvalidRequest(format!("widths must list 1 to {MAX_SRCSET_WIDTHS} widths")));
        }
        if let Some(bad) = widths.iter().find(|w| !(1..=max_dimension).contains(*w)) {
            return Err(Error::InvalidRequest(format!("widths: {bad} is outside 1 to {max_dimension}")));
        }
        let ops = transform::parse(ops, max_dimension)?;
        if ops.dpr.is_some() || ops.has_hints() {
            return Err(Error::InvalidRequest(
                "ops: a srcset lists widths and the browser applies its pixel ratio: drop `dpr_`, `w_auto` and `dpr_auto`"
                    .into(),
            ));
        }
        let exp = self.expiry(expires_in)?;
        let owner = self.owner_key(image).await?;
        let sized = geometry::srcset((image.width, image.height), &ops, widths, max_dimension)?;
        let mut urls = Vec::with_capacity(sized.len());
        for (width, ops) in sized {
            let spec = self.delivery.spec(image.clone(), &owner, ops, None).await?;
            urls.push((width, owner.signing_key.signed_url(&path_of(&spec), exp)));
        }
        Ok(urls)
    }

    /// Where an owner downloads `image`'s original: a presigned object-store URL, or, when the
    /// store has none (the local folder), a signed `/i/{id}` URL; either lives
    /// `storage.presign_ttl_secs`.
    ///
    /// # Errors
    /// 5xx when the store or the owner's key cannot be read.
    pub async fn download(&self, image: &ImageRecord, ttl: std::time::Duration) -> Result<String, Error> {
        let at = self.shared.keys.original(&image.id);
        if let Some(url) = self.shared.store.presign_get(&at, ttl, image.format.mime()).await? {
            return Ok(url);
        }
        Ok(self.url(image, "", Some(ttl.as_secs().max(1))).await?.url)
    }

    /// The signed path of a variant already checked by [`Delivery::spec`] (no expiry).
    ///
    /// # Errors
    /// 5xx when the owner's key cannot be read.
    pub async fn variant_url(&self, spec: &VariantSpec) -> Result<String, Error> {
        let owner = self.owner_key(&spec.image).await?;
        Ok(owner.signing_key.signed_url(&path_of(spec), None))
    }

    /// The canonical `/i` path of `ops` on `image`, checked as a request for it will be.
    async fn path(&self, image: &ImageRecord, owner: &OwnerKey, ops: &str) -> Result<String, Error> {
        let max_dimension = self.shared.limits.max_dimension;
        let (preset, rest) = grammar::split_preset(ops)?;
        let Some(name) = preset else {
            let spec = self.delivery.spec(image.clone(), owner, transform::parse(&rest, max_dimension)?, None).await?;
            return Ok(path_of(&spec));
        };
        let beside = grammar::parse_beside_preset(&rest, max_dimension)?;
        let unknown = || Error::InvalidTransform(OpsError::UnknownPreset(name.to_owned()));
        let preset = self.shared.db.preset(&image.owner, name).await?.ok_or_else(unknown)?;
        let expanded = grammar::parse_with_preset(&rest, &preset.ops, max_dimension)?;
        self.delivery.spec(image.clone(), owner, expanded, None).await?;
        Ok(format!("/i/{}/{}", image.id, grammar::with_preset(name, &beside)))
    }

    /// The owner's current key, from the database: a rotation on any replica is seen at once.
    async fn owner_key(&self, image: &ImageRecord) -> Result<OwnerKey, Error> {
        let gone = || Error::NotFound("image not found");
        self.shared.db.owner_key(&image.owner).await?.ok_or_else(gone)
    }
}

/// The `/i` path of a checked variant: its canonical ops, or the original when they change
/// nothing.
fn path_of(spec: &VariantSpec) -> String {
    path(&spec.image, &spec.ops)
}

fn path(image: &ImageRecord, ops: &Ops) -> String {
    if ops.is_identity() {
        format!("/i/{}", image.id)
    } else {
        format!("/i/{}/{ops}", image.id)
    }
}
