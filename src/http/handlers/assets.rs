//! Files built into the binary: the owners' web console and the OpenAPI document. Each answers
//! with a strong ETag (304 on a match) and `no-cache`, so a new release shows at once while an
//! unchanged file costs a 304.

use std::sync::OnceLock;

use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::error::Error;
use crate::http::body::Body;
use crate::http::request::Params;
use crate::http::state::AppState;

/// The console's policy: its own script and styles only, images from here (and the
/// placeholders it draws as `data:`/`blob:`), API calls to here, no frames, no forms elsewhere.
const CONSOLE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
    /// Set on the console's page (the policy covers what the page loads).
    csp: bool,
    etag: OnceLock<HeaderValue>,
}

impl Asset {
    const fn new(body: &'static [u8], content_type: &'static str, csp: bool) -> Self {
        Self { body, content_type, csp, etag: OnceLock::new() }
    }

    fn etag(&self) -> &HeaderValue {
        self.etag.get_or_init(|| {
            let hash = blake3::hash(self.body);
            HeaderValue::from_str(&format!("\"{}\"", &hash.to_hex()[..32])).expect("hex is a valid header value")
        })
    }

    fn respond(&self, req: &Request<Incoming>) -> Response<Body> {
        let etag = self.etag();
        let matched = req
            .headers()
            .get_all(IF_NONE_MATCH)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|tag| tag.trim() == "*" || tag.trim() == etag)));
        let mut res = if matched {
            crate::http::response::empty(StatusCode::NOT_MODIFIED)
        } else {
            Response::new(Body::full(bytes::Bytes::from_static(self.body)))
        };
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(ETAG, etag.clone());
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        if self.csp {
            headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONSOLE_CSP));
            headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        }
        res
    }
}

static CONSOLE_PAGE: Asset = Asset::new(include_bytes!("../console/index.html"), "text/html; charset=utf-8", true);
static CONSOLE_SCRIPT: Asset =
    Asset::new(include_bytes!("../console/console.js"), "text/javascript; charset=utf-8", false);
static CONSOLE_STYLES: Asset = Asset::new(include_bytes!("../console/console.css"), "text/css; charset=utf-8", false);
static OPENAPI: Asset = Asset::new(include_bytes!("../../../docs/openapi.json"), "application/json", false);

/// `GET /console`: the web console.
pub async fn console(_: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    Ok(CONSOLE_PAGE.respond(&req))
}

/// `GET /console/{file}`: the console's script and styles.
pub async fn console_file(_: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let asset = match params.get("file") {
        "console.js" => &CONSOLE_SCRIPT,
        "console.css" => &CONSOLE_STYLES,
        _ => return Err(Error::NotFound("no such console file")),
    };
    Ok(asset.respond(&req))
}

/// `GET /openapi.json`: the OpenAPI 3.1 document of this API.
pub async fn openapi(_: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    Ok(OPENAPI.respond(&req))
}
