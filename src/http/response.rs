//! Building responses: JSON, empty, redirects and the contract's error body.

use http::header::{ALLOW, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use serde::Serialize;

use super::body::Body;
use crate::error::Error;

const JSON: HeaderValue = HeaderValue::from_static("application/json");

/// A JSON response.
pub fn json(status: StatusCode, value: &impl Serialize) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => {
            let mut res = Response::new(Body::full(bytes));
            *res.status_mut() = status;
            res.headers_mut().insert(CONTENT_TYPE, JSON);
            res
        }
        Err(e) => error(&Error::internal(e)),
    }
}

/// A response without a body.
pub fn empty(status: StatusCode) -> Response<Body> {
    let mut res = Response::new(Body::Empty);
    *res.status_mut() = status;
    res
}

/// A 302 to `location`.
pub fn redirect(location: &str) -> Response<Body> {
    let mut res = empty(StatusCode::FOUND);
    match HeaderValue::from_str(location) {
        Ok(v) => {
            res.headers_mut().insert(LOCATION, v);
            res
        }
        Err(e) => error(&Error::internal(e)),
    }
}

/// The contract's JSON error, with `Retry-After` and `Allow` where they apply.
pub fn error(err: &Error) -> Response<Body> {
    let mut res = Response::new(Body::full(err.body()));
    *res.status_mut() = err.status();
    let headers = res.headers_mut();
    headers.insert(CONTENT_TYPE, JSON);
    if let Some(secs) = err.retry_after() {
        headers.insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    if let Error::MethodNotAllowed { allow } = err {
        if let Ok(allow) = HeaderValue::from_str(allow) {
            headers.insert(ALLOW, allow);
        }
    }
    res
}
