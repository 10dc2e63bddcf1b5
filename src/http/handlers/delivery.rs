//! `GET|HEAD /i/{id}` and `/i/{id}/{ops}`: signed (or owner-authenticated) delivery with
//! CDN-friendly headers.

use http::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::AppState;
use crate::auth::AuthError;
use crate::cache::lookups::accept_class;
use crate::cache::Tier;
use crate::db::{ImageRecord, OwnerKey};
use crate::delivery::{Delivery, Payload};
use crate::error::Error;
use crate::http::body::Body;
use crate::http::request;
use crate::ids::ImageId;
use crate::images::ImageFormat;
use crate::transform;

/// `max-age` of URLs that never expire: one year.
const YEAR: i64 = 31_536_000;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");
static X_CONTENT_TYPE_OPTIONS: HeaderName = HeaderName::from_static("x-content-type-options");

/// How the request was authorised, which decides who may cache the response.
enum Access {
    /// A valid signature: any cache may keep it until `max_age` seconds from now.
    Signed { max_age: i64 },
    /// The owner's JWT: only the owner's own cache may keep it.
    Owner,
}

impl Access {
    fn cache_control(&self) -> HeaderValue {
        match self {
            Self::Signed { max_age } if *max_age >= YEAR => {
                HeaderValue::from_static("public, max-age=31536000, immutable")
            }
            Self::Signed { max_age } => HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("no-store")),
            Self::Owner => HeaderValue::from_static("private, max-age=31536000, immutable"),
        }
    }
}

/// Serves the original (`ops` = `None`) or a variant.
pub async fn deliver(
    state: &AppState,
    req: &Request<Incoming>,
    id: &str,
    ops: Option<&str>,
) -> Result<Response<Body>, Error> {
    let head = req.method() == Method::HEAD;
    let accept = req.headers().get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let accept_class = accept_class(accept);
    if ops.is_some() {
        if let Some(res) = fast_path(state, req, accept_class, head)? {
            return Ok(res);
        }
    }
    // Taken before the checks, so a local delete or rotation racing with them voids the memo.
    let generation = state.lookups.generation();
    let id = ImageId::parse(id).ok_or(Error::NotFound("image not found"))?;
    let (exp, sig) = request::signature_params(req.uri().query())?;
    let image = state.lookups.image(&id).await?.ok_or(Error::NotFound("image not found"))?;
    let owner = state.lookups.owner(&image.owner).await?.ok_or(Error::NotFound("image not found"))?;
    let access = authorize(state, req, &image, &owner, exp, sig.as_deref())?;
    let Some(ops) = ops else {
        return original(state, req.headers(), &image, &access, head).await;
    };
    let ops = transform::parse(ops, state.config.limits.max_dimension)?;
    let target = state.delivery.target(image, &owner, ops, accept).await?;
    let tag = target.key.etag();
    let etag = header(&tag)?;
    let vary = Delivery::varies_by_accept(&target);
    if let (Access::Signed { .. }, Some(uri)) = (&access, req.uri().path_and_query()) {
        state.lookups.remember(
            uri.as_str(),
            accept_class,
            generation,
            exp,
            target.key,
            etag.clone(),
            target.format,
            vary,
        );
    }
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, etag);
    headers.insert(CACHE_CONTROL, access.cache_control());
    if vary {
        headers.insert(VARY, HeaderValue::from_static("Accept"));
    }
    if matches_etag(req.headers(), &tag) {
        return Ok(not_modified(headers));
    }
    let (payload, tier) = state.delivery.serve(&target).await?;
    tracing::debug!(cache = tier.header(), "variant served");
    Ok(image_response(headers, payload, target.format, Some(tier), head))
}

/// A signed URL this replica checked within the lookup bound, answered from memory: no query
/// parsing, lookups, HMAC or key derivation. `None` sends the request down the full path.
fn fast_path(
    state: &AppState,
    req: &Request<Incoming>,
    accept: u8,
    head: bool,
) -> Result<Option<Response<Body>>, Error> {
    let Some(uri) = req.uri().path_and_query().filter(|pq| pq.query().is_some()) else { return Ok(None) };
    let Some(entry) = state.lookups.authorised(uri.as_str(), accept) else { return Ok(None) };
    let max_age = match entry.exp {
        None => YEAR,
        Some(exp) => {
            let left = exp - state.clock.unix();
            if left < 0 {
                return Err(AuthError::SignatureExpired.into());
            }
            left.min(YEAR)
        }
    };
    let mut headers = HeaderMap::with_capacity(8);
    headers.insert(ETAG, entry.etag.clone());
    headers.insert(CACHE_CONTROL, Access::Signed { max_age }.cache_control());
    if entry.vary {
        headers.insert(VARY, HeaderValue::from_static("Accept"));
    }
    if matches_etag(req.headers(), entry.etag.to_str().unwrap_or_default()) {
        return Ok(Some(not_modified(headers)));
    }
    let Some(variant) = state.delivery.cached(&entry.key) else { return Ok(None) };
    Ok(Some(image_response(headers, Payload::Bytes(variant.bytes.clone()), entry.format, Some(Tier::Memory), head)))
}

/// Checks the signature (`sig`, `exp`) against the owner's key, or an owner JWT.
fn authorize(
    state: &AppState,
    req: &Request<Incoming>,
    image: &ImageRecord,
    owner: &OwnerKey,
    exp: Option<i64>,
    sig: Option<&str>,
) -> Result<Access, Error> {
    let now = state.clock.unix();
    if let Some(sig) = sig {
        owner.key.verify(req.uri().path(), exp, sig, now)?;
        let max_age = exp.map_or(YEAR, |exp| (exp - now).clamp(0, YEAR));
        return Ok(Access::Signed { max_age });
    }
    let token = request::bearer(req.headers()).ok_or(AuthError::MissingSignature)?;
    if state.jwt.verify(token, now)? != image.owner {
        return Err(Error::Forbidden("this image belongs to another owner"));
    }
    Ok(Access::Owner)
}

async fn original(
    state: &AppState,
    req_headers: &HeaderMap,
    image: &ImageRecord,
    access: &Access,
    head: bool,
) -> Result<Response<Body>, Error> {
    let etag = format!("\"{}\"", image.content_hash.get(..32).unwrap_or(&image.content_hash));
    let mut headers = HeaderMap::new();
    headers.insert(ETAG, header(&etag)?);
    headers.insert(CACHE_CONTROL, access.cache_control());
    if matches_etag(req_headers, &etag) {
        return Ok(not_modified(headers));
    }
    let blob = state.delivery.original(image).await?;
    Ok(image_response(headers, Payload::Stream(blob), image.format, None, head))
}

fn image_response(
    mut headers: HeaderMap,
    payload: Payload,
    format: ImageFormat,
    tier: Option<Tier>,
    head: bool,
) -> Response<Body> {
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(payload.len()));
    headers.insert(X_CONTENT_TYPE_OPTIONS.clone(), NOSNIFF.clone());
    if let Some(tier) = tier {
        headers.insert(X_CACHE.clone(), HeaderValue::from_static(tier.header()));
    }
    let body = match (head, payload) {
        (true, _) => Body::Empty,
        (false, Payload::Bytes(bytes)) => Body::full(bytes),
        (false, Payload::Stream(blob)) => Body::stream(blob),
    };
    let mut res = Response::new(body);
    *res.headers_mut() = headers;
    res
}

fn not_modified(headers: HeaderMap) -> Response<Body> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = StatusCode::NOT_MODIFIED;
    *res.headers_mut() = headers;
    res
}

/// `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks for this header) or is `*`.
fn matches_etag(headers: &HeaderMap, etag: &str) -> bool {
    headers.get_all(IF_NONE_MATCH).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|candidate| {
        let candidate = candidate.trim();
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

fn header(value: &str) -> Result<HeaderValue, Error> {
    HeaderValue::from_str(value).map_err(Error::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_matches_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(matches_etag(&h, "\"b\""));
        assert!(matches_etag(&h, "\"a\""));
        assert!(!matches_etag(&h, "\"c\""));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&h, "\"c\""));
        assert!(!matches_etag(&HeaderMap::new(), "\"c\""));
    }

    #[test]
    fn expiring_signatures_bound_max_age() {
        let cc = Access::Signed { max_age: 60 }.cache_control();
        assert_eq!(cc, "public, max-age=60");
        assert_eq!(Access::Signed { max_age: YEAR }.cache_control(), "public, max-age=31536000, immutable");
        assert!(Access::Owner.cache_control().to_str().unwrap().starts_with("private"));
    }
}
