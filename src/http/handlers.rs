//! Request handlers: parse input, call domain code, build the response. No SQL, S3 or pixels.

pub mod auth;
pub mod delivery;
pub mod images;
pub mod ops;
pub mod presets;
pub mod views;

use http::HeaderMap;

use crate::app::AppState;
use crate::auth::AuthError;
use crate::error::Error;
use crate::ids::UserId;

/// The owner a `/v1` request is made by.
///
/// # Errors
/// 401 when the bearer token is missing or invalid.
pub fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<UserId, Error> {
    let token = super::request::bearer(headers).ok_or(AuthError::MissingToken)?;
    Ok(state.parts.jwt.verify(token, state.parts.clock.unix())?)
}
