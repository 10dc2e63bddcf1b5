//! Request handlers: parse input, call domain code, build the response. No SQL, S3 or pixels.

pub mod assets;
pub mod auth;
pub mod delivery;
pub mod images;
pub mod ops;
pub mod presets;
pub mod views;

use http::{HeaderMap, Request};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::app::AppState;
use crate::auth::AuthError;
use crate::error::Error;
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

/// The owner a `/v1` request is made by.
///
/// # Errors
/// 401 when the bearer token is missing or invalid.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<UserId, Error> {
    let token = super::request::bearer(headers).ok_or(AuthError::MissingToken)?;
    Ok(state.parts.jwt.verify(token, state.parts.clock.unix())?)
}
