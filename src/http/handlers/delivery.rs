//! `GET|HEAD /i/{id}` and `/i/{id}/{ops}`: resolve, answer 304 when the client has it, else
//! serve the bytes with CDN-friendly headers. Who may see what and for how long is decided
//! in [`crate::delivery`].

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::delivery::hints::Hints;
use crate::delivery::{Ask, Payload};
use crate::error::Error;
use crate::http::body::Body;
use crate::http::request::{self, Params};
use crate::http::state::AppState;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// `/i/{id}/{ops}`: a variant.
pub async fn variant(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    deliver(state, &req, params.get("id"), Some(params.get("ops"))).await
}

/// `/i/{id}`: the original.
pub async fn original(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    deliver(state, &req, params.get("id"), None).await
}

async fn deliver(
    state: &AppState,
    req: &Request<Incoming>,
    id: &str,
    ops: Option<&str>,
) -> Result<Response<Body>, Error> {
    let headers = req.headers();
    let ask = Ask {
        id,
        ops,
        path: req.uri().path(),
        query: req.uri().query(),
        accept: headers.get(ACCEPT).and_then(|v| v.to_str().ok()),
        bearer: request::bearer(headers),
        hints: Hints::from_headers(headers),
    };
    let resolved = match state.delivery.remembered(&ask).await? {
        Some(resolved) => resolved,
        None => state.delivery.resolve(&ask).await?,
    };
    let mut out = HeaderMap::with_capacity(8);
    out.insert(ETAG, resolved.etag.clone());
    out.insert(CACHE_CONTROL, resolved.cache_control.clone());
    if let Some(vary) = resolved.vary.header() {
        out.insert(VARY, vary);
    }
    if let Some((cache_tag, surrogate_key)) = cache_tags(id, resolved.owner.as_str(), ops) {
        out.insert(CACHE_TAG.clone(), cache_tag);
        out.insert(SURROGATE_KEY.clone(), surrogate_key);
    }
    if matches_etag(headers, resolved.etag.as_bytes()) {
        return Ok(respond(StatusCode::NOT_MODIFIED, out, Body::Empty));
    }
    let (format, head) = (resolved.format, req.method() == Method::HEAD);
    let (payload, tier) = state.delivery.serve(resolved, head).await?;
    out.insert(CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    out.insert(CONTENT_LENGTH, HeaderValue::from(payload.len()));
    if let Some(tier) = tier {
        out.insert(X_CACHE.clone(), HeaderValue::from_static(tier.header()));
    }
    let body = match (head, payload) {
        (true, _) | (false, Payload::Length(_)) => Body::Empty,
        (false, Payload::Bytes(bytes)) => Body::full(bytes),
        (false, Payload::Stream(blob)) => Body::stream(blob),
    };
    Ok(respond(StatusCode::OK, out, body))
}

/// The tags a CDN purges this answer by: the image (`img-{id}`), its owner (`own-{user id}`)
/// and, on a preset's path, the preset (`pre-{user id}-{name}`) — as `Cache-Tag` (Cloudflare,
/// comma-separated) and `Surrogate-Key` (Fastly, Varnish xkey; space-separated).
fn cache_tags(id: &str, owner: &str, ops: Option<&str>) -> Option<(HeaderValue, HeaderValue)> {
    let preset = ops.and_then(|ops| ops.split(',').find_map(|token| token.strip_prefix("p_")));
    let mut tags = vec![format!("img-{id}"), format!("own-{owner}")];
    if let Some(name) = preset {
        tags.push(format!("pre-{owner}-{name}"));
    }
    Some((HeaderValue::from_str(&tags.join(",")).ok()?, HeaderValue::from_str(&tags.join(" ")).ok()?))
}

fn respond(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut res = Response::new(body);
    *res.status_mut() = status;
    *res.headers_mut() = headers;
    res
}

/// `If-None-Match` lists `etag` (weak comparison, as RFC 9110 asks for this header) or is `*`.
fn matches_etag(headers: &HeaderMap, etag: &[u8]) -> bool {
    headers.get_all(IF_NONE_MATCH).iter().flat_map(|v| v.as_bytes().split(|&b| b == b',')).any(|candidate| {
        let candidate = candidate.trim_ascii();
        candidate == b"*" || candidate.strip_prefix(b"W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_matches_lists_weak_tags_and_star() {
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"a\", W/\"b\""));
        assert!(matches_etag(&h, b"\"b\""));
        assert!(matches_etag(&h, b"\"a\""));
        assert!(!matches_etag(&h, b"\"c\""));
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(matches_etag(&h, b"\"c\""));
        assert!(!matches_etag(&HeaderMap::new(), b"\"c\""));
    }
}
