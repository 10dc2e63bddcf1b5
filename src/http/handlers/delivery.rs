//! `GET|HEAD /i/{id}` and `/i/{id}/{ops}`: resolve, answer 304 when the client has it, else
//! serve the bytes with CDN-friendly headers. Who may see what and for how long is decided
//! in [`crate::delivery`].

use std::borrow::Cow;

use http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::delivery::hints::Hints;
use crate::delivery::{Ask, Payload, Recall, Resolved, Served};
use crate::error::Error;
use crate::format::ImageFormat;
use crate::http::body::Body;
use crate::http::request::{self, Params};
use crate::http::router::Reply;
use crate::http::state::AppState;

static X_CACHE: HeaderName = HeaderName::from_static("x-cache");
static CACHE_TAG: HeaderName = HeaderName::from_static("cache-tag");
static SURROGATE_KEY: HeaderName = HeaderName::from_static("surrogate-key");

/// `/i/{id}/{ops}`: a variant. A cache hit of a URL checked before is answered on the spot,
/// by the connection's own thread and without a future (see [`Delivery::recall`]); anything
/// else goes on to [`deliver`].
///
/// [`Delivery::recall`]: crate::delivery::Delivery::recall
pub fn variant<'a>(state: &'a AppState, req: Request<Incoming>, params: Params<'a>) -> Reply<'a> {
    let (id, ops) = (params.get("id"), params.get("ops"));
    let recall = {
        let (plain_ops, path) = plain(&req, id, Some(ops));
        let recall = state.delivery.recall(&ask(&req, id, plain_ops.as_deref(), &path));
        match recall {
            Ok(Recall::Ready(resolved)) => {
                let head = req.method() == Method::HEAD;
                match answer_now(state, req.headers(), resolved, head) {
                    Some(answer) => return Reply::ready(Ok(answer)),
                    // Not reached: a recalled answer has its bytes in hand.
                    None => Recall::Unknown,
                }
            }
            Ok(recall) => recall,
            Err(e) => return Reply::ready(Err(e)),
        }
    };
    Reply::later(async move { deliver(state, &req, id, Some(ops), recall).await })
}

/// `/i/{id}`: the original.
pub async fn original(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    deliver(state, &req, params.get("id"), None, Recall::Unknown).await
}

/// `ops` in their plain spelling (generated API clients percent-encode path parameters; the
/// ops they mean are signed and keyed in the plain spelling), and the path that spells them so.
fn plain<'a>(req: &'a Request<Incoming>, id: &str, ops: Option<&'a str>) -> (Option<Cow<'a, str>>, Cow<'a, str>) {
    let ops = ops.map(unescape_ops);
    let path = match &ops {
        Some(Cow::Owned(ops)) => Cow::Owned(format!("/i/{id}/{ops}")),
        _ => Cow::Borrowed(req.uri().path()),
    };
    (ops, path)
}

/// What `req` asks for, its ops and path as [`plain`] spells them.
fn ask<'a>(req: &'a Request<Incoming>, id: &'a str, ops: Option<&'a str>, path: &'a str) -> Ask<'a> {
    let headers = req.headers();
    Ask {
        id,
        ops,
        path,
        query: req.uri().query(),
        accept: headers.get(ACCEPT).and_then(|v| v.to_str().ok()),
        bearer: request::bearer(headers),
        hints: Hints::from_headers(headers),
    }
}

/// The answer to `resolved` when its bytes are in hand; `None` when they take a wait.
fn answer_now(state: &AppState, asked: &HeaderMap, resolved: Resolved, head: bool) -> Option<Response<Body>> {
    let out = headers_of(&resolved);
    if matches_etag(asked, resolved.etag.as_bytes()) {
        return Some(respond(StatusCode::NOT_MODIFIED, out, Body::Empty));
    }
    let format = resolved.format;
    let served = state.delivery.serve_now(resolved)?;
    Some(answer(asked, out, format, head, served))
}

/// The answer that takes a wait: what `recall` left to read from the store, else `resolve`
/// (authorise, ETag, format), then a 304 or `serve` (memory, store, transform).
async fn deliver(
    state: &AppState,
    req: &Request<Incoming>,
    id: &str,
    ops: Option<&str>,
    recall: Recall,
) -> Result<Response<Body>, Error> {
    let (ops, path) = plain(req, id, ops);
    let ask = ask(req, id, ops.as_deref(), &path);
    let resolved = match state.delivery.remembered(recall).await? {
        Some(resolved) => resolved,
        // Boxed, as every path but a hit's: a future holds its largest path inline, and each
        // request would pay for moving and allocating it (see `Delivery::serve`).
        None => Box::pin(state.delivery.resolve(&ask)).await?,
    };
    let out = headers_of(&resolved);
    if matches_etag(req.headers(), resolved.etag.as_bytes()) {
        return Ok(respond(StatusCode::NOT_MODIFIED, out, Body::Empty));
    }
    let (format, head) = (resolved.format, req.method() == Method::HEAD);
    let served = state.delivery.serve(resolved, head).await?;
    Ok(answer(req.headers(), out, format, head, served))
}

/// The headers every answer to `resolved` carries, a 304 too.
fn headers_of(resolved: &Resolved) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(8);
    out.insert(ETAG, resolved.etag.clone());
    out.insert(CACHE_CONTROL, resolved.cache_control.clone());
    if let Some(vary) = resolved.vary.header() {
        out.insert(VARY, vary);
    }
    if let Some(tags) = &resolved.tags {
        out.insert(CACHE_TAG.clone(), tags.cache_tag.clone());
        out.insert(SURROGATE_KEY.clone(), tags.surrogate_key.clone());
    }
    out
}

/// The answer with `served`'s bytes (none to a `HEAD`), in `format` unless `fmt_auto`'s
/// stand-in was served instead.
fn answer(
    asked: &HeaderMap,
    mut out: HeaderMap,
    mut format: ImageFormat,
    head: bool,
    served: Served,
) -> Response<Body> {
    let Served { payload, tier, instead } = served;
    if let Some((etag, cache_control, stand_in)) = instead {
        // `fmt_auto`'s cheaper stand-in, while the slow format is made.
        let unchanged = matches_etag(asked, etag.as_bytes());
        out.insert(ETAG, etag);
        out.insert(CACHE_CONTROL, cache_control);
        if unchanged {
            return respond(StatusCode::NOT_MODIFIED, out, Body::Empty);
        }
        format = stand_in;
    }
    out.insert(CONTENT_TYPE, HeaderValue::from_static(format.mime()));
    if let Some(tier) = tier {
        out.insert(X_CACHE.clone(), HeaderValue::from_static(tier.header()));
    }
    let body = match (head, payload) {
        (true, payload) | (false, payload @ Payload::Length(_)) => {
            // Without a body, the length it would have is said here.
            out.insert(CONTENT_LENGTH, HeaderValue::from(payload.len()));
            Body::Empty
        }
        // hyper writes `Content-Length` from the body's exact size, straight into the head.
        (false, Payload::Bytes(bytes)) => Body::full(bytes),
        (false, Payload::Stream(blob)) => Body::stream(blob),
    };
    respond(StatusCode::OK, out, body)
}

/// `ops` with each percent-escape of a character that ops may contain (`,`, `:`, `.`, `_`, `-`,
/// letters, digits) read as that character: `w_300%2Cfmt_webp` is `w_300,fmt_webp`, one variant
/// with one signature. Any other escape is left as written, for the grammar to refuse.
fn unescape_ops(ops: &str) -> Cow<'_, str> {
    if !ops.contains('%') {
        return Cow::Borrowed(ops);
    }
    let legal = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b',' | b':' | b'.' | b'_' | b'-');
    let (bytes, mut out) = (ops.as_bytes(), String::with_capacity(ops.len()));
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok())
            .filter(|&b| legal(b));
        match escaped {
            Some(b) => {
                out.push(char::from(b));
                i += 3;
            }
            None => {
                // Copy as written up to the next '%' (a char boundary: '%' is ASCII).
                let start = if bytes[i] == b'%' { i + 1 } else { i };
                let next = ops[start..].find('%').map_or(ops.len(), |n| start + n);
                out.push_str(&ops[i..next]);
                i = next;
            }
        }
    }
    Cow::Owned(out)
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

    #[test]
    fn escapes_of_characters_ops_may_hold_are_read_as_those_characters() {
        assert!(matches!(unescape_ops("w_300,fmt_webp"), Cow::Borrowed("w_300,fmt_webp")));
        assert_eq!(unescape_ops("w_300%2Cfmt_webp"), "w_300,fmt_webp");
        assert_eq!(unescape_ops("crop_1%3a2%3A3%3A4%2cblur_2%2E5"), "crop_1:2:3:4,blur_2.5");
        assert_eq!(unescape_ops("%77_300"), "w_300");
        // Anything else stays as written, for the grammar to refuse.
        for kept in ["w_300%2F", "w_300%20", "w_300%252C", "w_300%", "w_300%2", "%zz", "%C3%A9", "é%2C%"] {
            let expected = kept.replace("%2C", ",");
            assert_eq!(unescape_ops(kept), expected.as_str(), "{kept}");
        }
    }
}
