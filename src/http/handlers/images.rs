//! The owner's images: upload, list, read, delete, sign URLs and srcsets, transform, download.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::views::{ImagePage, ImageView, SignedUrl, Srcset, SrcsetUrl, Transformed};
use super::{authenticate, json_body};
use crate::app::AppState;
use crate::auth::signature::MAX_EXPIRES_IN;
use crate::auth::AuthError;
use crate::clock::rfc3339;
use crate::db::{ImageRecord, OwnerKey};
use crate::error::Error;
use crate::format::ImageFormat;
use crate::http::body::Body;
use crate::http::request;
use crate::http::request::Params;
use crate::http::response::{empty, json, redirect};
use crate::ids::UserId;
use crate::transform::{self, Ops};

/// `POST /v1/images`: multipart field `file`, or the raw bytes.
pub async fn upload(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let (parts, body) = req.into_parts();
    let bytes =
        request::upload(&parts.headers, body, state.config.limits.max_upload_bytes, state.config.server.body_timeout)
            .await?;
    let record = state.library.upload(&owner, bytes).await?;
    let key = owner_key(state, &owner).await?;
    Ok(json(StatusCode::CREATED, &ImageView::new(&record, &key.signing_key)))
}

/// `GET /v1/images?limit=&cursor=`.
pub async fn list(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let (mut limit, mut cursor) = (20u32, None);
    for (name, value) in request::query(req.uri().query())? {
        match name.as_str() {
            "limit" => {
                limit = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=100).contains(n))
                    .ok_or_else(|| Error::InvalidRequest(format!("`limit={value}` must be between 1 and 100")))?;
            }
            "cursor" => cursor = Some(value),
            other => return Err(Error::InvalidRequest(format!("unknown query parameter `{other}`"))),
        }
    }
    let (items, next_cursor) = state.library.list(&owner, cursor.as_deref(), limit).await?;
    let key = owner_key(state, &owner).await?;
    let items = items.iter().map(|i| ImageView::new(i, &key.signing_key)).collect();
    Ok(json(StatusCode::OK, &ImagePage { items, next_cursor }))
}

/// `GET /v1/images/{id}`.
pub async fn get(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let record = state.library.owned(&owner, params.get("id")).await?;
    let key = owner_key(state, &owner).await?;
    Ok(json(StatusCode::OK, &ImageView::new(&record, &key.signing_key)))
}

/// `DELETE /v1/images/{id}`: the original and every cached variant.
pub async fn delete(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    state.library.delete(&owner, params.get("id")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Body of `POST /v1/images/{id}/url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct UrlRequest {
    ops: String,
    expires_in: Option<u64>,
}

/// `POST /v1/images/{id}/url`: a signed `/i` URL for ops, in canonical form.
pub async fn sign_url(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let body: UrlRequest = json_body(state, req).await?;
    let record = state.library.owned(&owner, params.get("id")).await?;
    let key = owner_key(state, &owner).await?;
    let max_dimension = state.config.limits.max_dimension;
    let (preset, rest) = transform::grammar::split_preset(&body.ops)?;
    let ops = transform::parse(&rest, max_dimension)?;
    let exp = expiry(state, body.expires_in)?;
    let path = match preset {
        // The URL names the preset, so it follows later changes to it; the expanded ops are
        // checked against this image now.
        Some(name) => {
            let unknown = || Error::InvalidTransform(transform::OpsError::UnknownPreset(name.to_owned()));
            let preset = state.parts.db.preset(&owner, name).await?.ok_or_else(unknown)?;
            let expanded = transform::grammar::parse_with_preset(&rest, &preset.ops, max_dimension)?;
            state.delivery.spec(record.clone(), &key, expanded, None).await?;
            format!("/i/{}/{}", record.id, transform::grammar::with_preset(name, &ops))
        }
        // Checks the crop and watermark against this image, and drops what changes nothing.
        None => {
            let spec = state.delivery.spec(record, &key, ops, None).await?;
            variant_path(&spec.image, &spec.ops)
        }
    };
    let url = key.signing_key.signed_url(&path, exp);
    let expires_at = exp.and_then(|e| chrono::DateTime::from_timestamp(e, 0)).map(rfc3339);
    Ok(json(StatusCode::OK, &SignedUrl { url, expires_at }))
}

/// Body of `POST /v1/images/{id}/srcset`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SrcsetRequest {
    #[serde(default)]
    ops: String,
    widths: Vec<u32>,
    expires_in: Option<u64>,
}

/// Most widths one srcset may list.
const MAX_SRCSET_WIDTHS: usize = 32;

/// `POST /v1/images/{id}/srcset`: one signed URL per width (capped at the source's width,
/// deduplicated), and the `srcset` attribute that lists them.
pub async fn srcset(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let body: SrcsetRequest = json_body(state, req).await?;
    let max_dimension = state.config.limits.max_dimension;
    if body.widths.is_empty() || body.widths.len() > MAX_SRCSET_WIDTHS {
        return Err(Error::InvalidRequest(format!("widths must list 1 to {MAX_SRCSET_WIDTHS} widths")));
    }
    if let Some(bad) = body.widths.iter().find(|w| !(1..=max_dimension).contains(*w)) {
        return Err(Error::InvalidRequest(format!("width {bad} is outside 1 to {max_dimension}")));
    }
    let record = state.library.owned(&owner, params.get("id")).await?;
    let key = owner_key(state, &owner).await?;
    let ops = if body.ops.is_empty() { Ops::default() } else { transform::parse(&body.ops, max_dimension)? };
    if ops.dpr.is_some() {
        return Err(Error::InvalidRequest(
            "a srcset lists widths: the browser applies the pixel ratio, drop `dpr_`".into(),
        ));
    }
    let exp = expiry(state, body.expires_in)?;
    let source = (record.width, record.height);
    let widths =
        transform::geometry::srcset(source, &ops, &body.widths, max_dimension).map_err(Error::InvalidTransform)?;
    let mut urls = Vec::with_capacity(widths.len());
    for (width, ops) in widths {
        let spec = state.delivery.spec(record.clone(), &key, ops, None).await?;
        urls.push(SrcsetUrl { width, url: key.signing_key.signed_url(&variant_path(&spec.image, &spec.ops), exp) });
    }
    let srcset = urls.iter().map(|u| format!("{} {}w", u.url, u.width)).collect::<Vec<_>>().join(", ");
    Ok(json(StatusCode::OK, &Srcset { srcset, urls }))
}

/// The expiry time of a URL that lives `expires_in` seconds; `None` never expires.
fn expiry(state: &AppState, expires_in: Option<u64>) -> Result<Option<i64>, Error> {
    match expires_in {
        None => Ok(None),
        Some(secs @ 1..=MAX_EXPIRES_IN) => Ok(Some(state.parts.clock.unix() + i64::try_from(secs).unwrap_or(0))),
        Some(_) => Err(Error::InvalidRequest(format!("expires_in must be an integer from 1 to {MAX_EXPIRES_IN}"))),
    }
}

/// `POST /v1/images/{id}/transform`, the roadmap.sh shape: same pipeline, cache and quota as `/i`.
pub async fn transform(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let body: TransformRequest = json_body(state, req).await?;
    let record = state.library.owned(&owner, params.get("id")).await?;
    let key = owner_key(state, &owner).await?;
    let ops = transform::parse(&body.transformations.to_ops()?, state.config.limits.max_dimension)?;
    let spec = state.delivery.spec(record, &key, ops, None).await?;
    let url = key.signing_key.signed_url(&variant_path(&spec.image, &spec.ops), None);
    let image = &spec.image;
    if spec.ops.is_identity() {
        let (width, height, format, size_bytes) = (image.width, image.height, image.format.as_str(), image.size_bytes);
        return Ok(json(StatusCode::OK, &Transformed { url, width, height, format, size_bytes }));
    }
    let (variant, _tier) = state.delivery.variant(&spec).await?;
    let (width, height, format) = (variant.width, variant.height, variant.format.as_str());
    Ok(json(StatusCode::OK, &Transformed { url, width, height, format, size_bytes: variant.bytes.len() as u64 }))
}

/// `GET /v1/images/{id}/download`: 302 to a presigned store URL, or to a short-lived signed
/// `/i/{id}` URL when the store has none (local folder).
pub async fn download(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers())?;
    let record = state.library.owned(&owner, params.get("id")).await?;
    let ttl = state.config.storage.presign_ttl;
    if let Some(url) =
        state.parts.store.presign_get(&state.parts.keys.original(&record.id), ttl, record.format.mime()).await?
    {
        return Ok(redirect(&url));
    }
    let key = owner_key(state, &owner).await?;
    let exp = state.parts.clock.unix() + i64::try_from(ttl.as_secs()).unwrap_or(300);
    Ok(redirect(&key.signing_key.signed_url(&format!("/i/{}", record.id), Some(exp))))
}

/// The `/i` path of `ops` on `image`: canonical ops, or the original when they change nothing.
fn variant_path(image: &ImageRecord, ops: &Ops) -> String {
    if ops.is_identity() {
        format!("/i/{}", image.id)
    } else {
        format!("/i/{}/{ops}", image.id)
    }
}

/// The owner's current key and plan, read from the database (not the lookup cache): URLs are
/// signed with the key a rotation on any replica just set.
async fn owner_key(state: &AppState, owner: &UserId) -> Result<OwnerKey, Error> {
    Ok(state.parts.db.owner_key(owner).await?.ok_or(AuthError::InvalidToken)?)
}

/// Body of `POST /v1/images/{id}/transform`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TransformRequest {
    transformations: Transformations,
}

/// The roadmap.sh transformation object.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Transformations {
    resize: Option<Size>,
    crop: Option<CropBox>,
    rotate: Option<i64>,
    flip: Option<bool>,
    flop: Option<bool>,
    format: Option<String>,
    quality: Option<u32>,
    filters: Option<Filters>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Size {
    width: Option<u32>,
    height: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CropBox {
    x: u32,
    y: u32,
    width: u32,
    height: u32,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Filters {
    #[serde(default)]
    grayscale: bool,
    #[serde(default)]
    sepia: bool,
    blur: Option<f64>,
    sharpen: Option<f64>,
}

impl Transformations {
    /// The same transformation in the ops grammar, so both APIs share one parser and one key.
    fn to_ops(&self) -> Result<String, Error> {
        let mut tokens = Vec::new();
        if let Some(c) = &self.crop {
            tokens.push(format!("crop_{}:{}:{}:{}", c.x, c.y, c.width, c.height));
        }
        match self.rotate {
            None | Some(0 | 360) => {}
            Some(deg) => tokens.push(format!("rot_{deg}")),
        }
        if self.flip == Some(true) {
            tokens.push("flip_v".into());
        }
        if self.flop == Some(true) {
            tokens.push("flip_h".into());
        }
        if let Some(size) = &self.resize {
            if size.width.is_none() && size.height.is_none() {
                return Err(Error::InvalidRequest("resize needs a width or a height".into()));
            }
            tokens.extend(size.width.map(|w| format!("w_{w}")));
            tokens.extend(size.height.map(|h| format!("h_{h}")));
        }
        if let Some(f) = &self.filters {
            tokens.extend(f.blur.map(|s| format!("blur_{}", decimal(s))));
            tokens.extend(f.sharpen.map(|s| format!("sharpen_{}", decimal(s))));
            if f.grayscale {
                tokens.push("gray".into());
            }
            if f.sepia {
                tokens.push("sepia".into());
            }
        }
        tokens.extend(self.quality.map(|q| format!("q_{q}")));
        if let Some(name) = &self.format {
            // A format name, nothing else: the value is not spliced into the ops unchecked.
            let format: ImageFormat = name.to_ascii_lowercase().parse().map_err(|()| {
                Error::InvalidRequest(format!("format `{name}` is not one of jpeg, png, webp, avif, gif"))
            })?;
            tokens.push(format!("fmt_{format}"));
        }
        Ok(tokens.join(","))
    }
}

/// A sigma with at most two decimals, as the grammar takes it.
fn decimal(v: f64) -> String {
    let s = format!("{:.2}", v);
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roadmap_shape_maps_to_ops() {
        let t: Transformations = serde_json::from_value(serde_json::json!({
            "resize": {"width": 300, "height": 200},
            "crop": {"x": 1, "y": 2, "width": 30, "height": 40},
            "rotate": 90, "flip": true, "flop": true, "format": "WEBP", "quality": 70,
            "filters": {"grayscale": true, "sepia": false, "blur": 1.5}
        }))
        .unwrap();
        let ops = t.to_ops().unwrap();
        assert_eq!(ops, "crop_1:2:30:40,rot_90,flip_v,flip_h,w_300,h_200,blur_1.5,gray,q_70,fmt_webp");
        transform::parse(&ops, 8192).unwrap();
    }

    #[test]
    fn format_takes_only_a_format_name() {
        let ops = |format: &str| {
            let t: Transformations = serde_json::from_value(serde_json::json!({"format": format})).unwrap();
            t.to_ops()
        };
        assert_eq!(ops("jpg").unwrap(), "fmt_jpeg");
        for injected in ["webp,blur_100", "jpeg,w_5", "auto", "", "bmp"] {
            assert!(ops(injected).is_err(), "{injected}");
        }
    }

    #[test]
    fn unknown_fields_are_refused() {
        assert!(serde_json::from_value::<Transformations>(serde_json::json!({"resize": {"w": 1}})).is_err());
        assert!(serde_json::from_value::<Transformations>(serde_json::json!({"watermark": true})).is_err());
    }
}
