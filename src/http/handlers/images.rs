//! The owner's images: upload, list, read, publish, delete, sign URLs and srcsets, transform,
//! download.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::views::{ImagePage, ImageView, SignedUrl, Srcset, SrcsetUrl, Transformed};
use super::{authenticate, json_body, page};
use crate::clock::rfc3339;
use crate::db::ImageRecord;
use crate::error::Error;
use crate::format::ImageFormat;
use crate::http::body::Body;
use crate::http::request;
use crate::http::request::Params;
use crate::http::response::{empty, json, redirect};
use crate::http::state::AppState;
use crate::transform;

/// `POST /v1/images`: multipart field `file`, or the raw bytes.
pub async fn upload(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let (parts, body) = req.into_parts();
    let bytes =
        request::upload(&parts.headers, body, state.config.limits.max_upload_bytes, state.config.server.body_timeout)
            .await?;
    let record = state.images.upload(&owner, bytes).await?;
    view(state, StatusCode::CREATED, &record).await
}

/// `GET /v1/images?limit=&cursor=`.
pub async fn list(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let (limit, cursor) = page(req.uri().query())?;
    let (items, next_cursor) = state.images.list(&owner, cursor.as_deref(), limit).await?;
    let key = state.accounts.key(&owner).await?;
    let items = items.iter().map(|i| ImageView::new(i, &key.signing_key)).collect();
    Ok(json(StatusCode::OK, &ImagePage { items, next_cursor }))
}

/// `GET /v1/images/{id}`.
pub async fn get(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let record = state.images.owned(&owner, params.get("id")).await?;
    view(state, StatusCode::OK, &record).await
}

/// Body of `PATCH /v1/images/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImagePatch {
    public: bool,
}

/// `PATCH /v1/images/{id}` `{"public": bool}`: publishes or un-publishes the image.
pub async fn patch(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let body: ImagePatch = json_body(state, req).await?;
    let record = state.images.set_public(&owner, params.get("id"), body.public).await?;
    view(state, StatusCode::OK, &record).await
}

/// `DELETE /v1/images/{id}`: the original and every cached variant.
pub async fn delete(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    state.images.delete(&owner, params.get("id")).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `DELETE /v1/images/{id}/variants`: every cached variant of the image gone, the original kept.
pub async fn purge_variants(
    state: &AppState,
    req: Request<Incoming>,
    params: Params<'_>,
) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    state.images.purge_variants(&owner, params.get("id")).await?;
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
    let owner = authenticate(state, req.headers()).await?;
    let body: UrlRequest = json_body(state, req).await?;
    let record = state.images.owned(&owner, params.get("id")).await?;
    let signed = state.signing.url(&record, &body.ops, body.expires_in).await?;
    let expires_at = signed.exp.and_then(|e| chrono::DateTime::from_timestamp(e, 0)).map(rfc3339);
    Ok(json(StatusCode::OK, &SignedUrl { url: signed.url, expires_at }))
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

/// `POST /v1/images/{id}/srcset`: one signed URL per width (capped at the source's width,
/// deduplicated), and the `srcset` attribute that lists them.
pub async fn srcset(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let body: SrcsetRequest = json_body(state, req).await?;
    let record = state.images.owned(&owner, params.get("id")).await?;
    let urls = state.signing.srcset(&record, &body.ops, &body.widths, body.expires_in).await?;
    let urls: Vec<SrcsetUrl> = urls.into_iter().map(|(width, url)| SrcsetUrl { width, url }).collect();
    let srcset = urls.iter().map(|u| format!("{} {}w", u.url, u.width)).collect::<Vec<_>>().join(", ");
    Ok(json(StatusCode::OK, &Srcset { srcset, urls }))
}

/// `POST /v1/images/{id}/transform`, the roadmap.sh shape: same pipeline, cache and quota as `/i`.
pub async fn transform(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let owner = authenticate(state, req.headers()).await?;
    let body: TransformRequest = json_body(state, req).await?;
    let record = state.images.owned(&owner, params.get("id")).await?;
    let key = state.accounts.key(&owner).await?;
    let ops = transform::parse(&body.transformations.to_ops()?, state.config.limits.max_dimension)?;
    let spec = state.delivery.spec(record, &key, ops, None).await?;
    let url = state.signing.variant_url(&spec).await?;
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
    let owner = authenticate(state, req.headers()).await?;
    let record = state.images.owned(&owner, params.get("id")).await?;
    Ok(redirect(&state.signing.download(&record, state.config.storage.presign_ttl).await?))
}

/// The `Image` JSON of `record`, its original's URL signed with the owner's current key.
async fn view(state: &AppState, status: StatusCode, record: &ImageRecord) -> Result<Response<Body>, Error> {
    let key = state.accounts.key(&record.owner).await?;
    Ok(json(status, &ImageView::new(record, &key.signing_key)))
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
                Error::InvalidRequest(format!("format `{name}` is not one of jpeg, png, webp, avif, jxl, gif"))
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
