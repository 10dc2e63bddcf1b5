//! Request handlers: parse input, call domain code, build the response. No SQL, S3 or pixels.

pub mod assets;
pub mod auth;
pub mod delivery;
pub mod health;
pub mod images;
pub mod presets;
pub mod views;

use http::{HeaderMap, Request};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::http::state::AppState;
use crate::ids::UserId;

/// The JSON body of `req`, within the configured size and stall limits.
///
/// # Errors
/// As [`super::request::json`]: 400, 413 or 408.
pub async fn json_body<T: DeserializeOwned>(state: &AppState, req: Request<Incoming>) -> Result<T, Error> {
    let (parts, body) = req.into_parts();
    let server = &state.config.server;
    super::request::json(&parts.headers, body, server.max_json_bytes, server.body_timeout).await
}

/// `limit` (1–100, default 20) and `cursor` of a paged list's query.
///
/// # Errors
/// 400 for another parameter or a limit out of range.
pub fn page(query: Option<&str>) -> Result<(u32, Option<String>), Error> {
    let (mut limit, mut cursor) = (20u32, None);
    for (name, value) in super::request::query(query)? {
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
    Ok((limit, cursor))
}

/// The owner a `/v1` request is made by, while they exist.
///
/// # Errors
/// 401 when the bearer token is missing or invalid, or its owner is gone.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<UserId, Error> {
    state.accounts.authenticate(super::request::bearer(headers)).await
}
