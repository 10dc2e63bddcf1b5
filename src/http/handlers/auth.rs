//! Owner accounts: register, login, profile and signing keys.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::views::{KeyView, Me, Session, StorageView, UserView};
use super::{authenticate, json_body};
use crate::accounts::check_credentials;
use crate::auth::AuthError;
use crate::db::User;
use crate::error::Error;
use crate::http::body::Body;
use crate::http::client::client_ip;
use crate::http::request::Params;
use crate::http::response::json;
use crate::http::state::AppState;

/// Body of register and login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// `POST /v1/auth/register`.
pub async fn register(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let address = client_address(state, &req, params);
    let creds: Credentials = json_body(state, req).await?;
    check_credentials(&creds.username, &creds.password)?;
    state.guard.register(address)?;
    let user = state.accounts.register(&creds.username, creds.password, None).await?;
    session(state, StatusCode::CREATED, &user)
}

/// `POST /v1/auth/login`: failures are counted per username and per client address, and past
/// their limits the password is not even checked (429).
pub async fn login(state: &AppState, req: Request<Incoming>, params: Params<'_>) -> Result<Response<Body>, Error> {
    let address = client_address(state, &req, params);
    let creds: Credentials = json_body(state, req).await?;
    state.guard.may_log_in(&creds.username, address)?;
    match state.accounts.login(&creds.username, creds.password).await {
        Ok(user) => session(state, StatusCode::OK, &user),
        Err(e) => {
            if matches!(e, Error::Auth(AuthError::BadCredentials)) {
                state.guard.failed_login(&creds.username, address);
            }
            Err(e)
        }
    }
}

/// The client's address, as the trusted proxies in front report it.
fn client_address(state: &AppState, req: &Request<Incoming>, params: Params<'_>) -> std::net::IpAddr {
    let peer = params.peer().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.ip());
    client_ip(peer, req.headers(), &state.config.server.trusted_proxies)
}

/// `GET /v1/me`.
pub async fn me(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let id = authenticate(state, req.headers()).await?;
    let (user, quota, storage) = state.accounts.me(&id).await?;
    Ok(json(StatusCode::OK, &Me { user: UserView::from(&user), quota, storage: StorageView::from(storage) }))
}

/// `GET /v1/me/signing-key`.
pub async fn signing_key(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let id = authenticate(state, req.headers()).await?;
    let owner = state.accounts.key(&id).await?;
    Ok(json(StatusCode::OK, &KeyView { key: owner.signing_key.to_hex() }))
}

/// `POST /v1/me/signing-key/rotate`: a new key; URLs signed with the old one stop working.
pub async fn rotate_key(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let id = authenticate(state, req.headers()).await?;
    let key = state.accounts.rotate_key(&id).await?;
    Ok(json(StatusCode::OK, &KeyView { key: key.to_hex() }))
}

fn session(state: &AppState, status: StatusCode, user: &User) -> Result<Response<Body>, Error> {
    let token = state.accounts.token(user)?;
    Ok(json(status, &Session { user: UserView::from(user), token }))
}
