//! Owner accounts: register, login, profile and signing keys.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use super::views::{KeyView, Me, Session, UserView};
use super::{authenticate, json_body};
use crate::app::AppState;
use crate::auth::{password, AuthError, SigningKey};
use crate::db::{to_micros, DbError, NewUser, User};
use crate::error::Error;
use crate::http::body::Body;
use crate::http::client::{client_ip, Peer};
use crate::http::request::Params;
use crate::http::response::json;
use crate::ids::UserId;

/// Body of register and login.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Credentials {
    username: String,
    password: String,
}

/// `POST /v1/auth/register`.
pub async fn register(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let address = client_address(state, &req);
    let creds: Credentials = json_body(state, req).await?;
    validate_username(&creds.username)?;
    validate_password(&creds.password)?;
    state.guard.register(address)?;
    let secret = creds.password;
    let hash = state.parts.hashing.run(move || password::hash(&secret)).await?.map_err(Error::internal)?;
    let user = NewUser {
        id: UserId::generate(),
        username: creds.username,
        password_hash: hash,
        signing_key: SigningKey::generate(),
        created_at: to_micros(state.parts.clock.now()),
    };
    let user = state.parts.db.create_user(&user).await.map_err(|e| match e {
        DbError::Conflict => Error::Conflict("username is taken"),
        other => other.into(),
    })?;
    tracing::info!(user_id = %user.id, "owner registered");
    session(state, StatusCode::CREATED, &user)
}

/// `POST /v1/auth/login`: failures are counted per username and per client address, and past
/// their limits the password is not even checked (429).
pub async fn login(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let address = client_address(state, &req);
    let creds: Credentials = json_body(state, req).await?;
    state.guard.may_log_in(&creds.username, address)?;
    let found = state.parts.db.user_by_username(&creds.username).await?;
    let secret = creds.password;
    let (user, ok) = match found {
        Some((user, hash)) => {
            let ok = state.parts.hashing.run(move || password::verify(&secret, &hash)).await?;
            (Some(user), ok)
        }
        None => {
            state.parts.hashing.run(move || password::verify_dummy(&secret)).await?;
            (None, false)
        }
    };
    match user {
        Some(user) if ok => session(state, StatusCode::OK, &user),
        _ => {
            state.guard.failed_login(&creds.username, address);
            Err(AuthError::BadCredentials.into())
        }
    }
}

/// The client's address, as the trusted proxies in front report it.
fn client_address(state: &AppState, req: &Request<Incoming>) -> std::net::IpAddr {
    let peer = req.extensions().get::<Peer>().map_or(std::net::IpAddr::from([0, 0, 0, 0]), |p| p.0.ip());
    client_ip(peer, req.headers(), &state.config.server.trusted_proxies)
}

/// `GET /v1/me`.
pub async fn me(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let user = current_user(state, &req).await?;
    Ok(json(StatusCode::OK, &Me { user: UserView::from(&user), quota: state.parts.quota.status(&user) }))
}

/// `GET /v1/me/signing-key`.
pub async fn signing_key(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let id = authenticate(state, req.headers())?;
    let owner = state.parts.db.owner_key(&id).await?.ok_or(AuthError::InvalidToken)?;
    Ok(json(StatusCode::OK, &KeyView { key: owner.signing_key.to_hex() }))
}

/// `POST /v1/me/signing-key/rotate`: a new key; URLs signed with the old one stop working.
pub async fn rotate_key(state: &AppState, req: Request<Incoming>, _: Params<'_>) -> Result<Response<Body>, Error> {
    let id = authenticate(state, req.headers())?;
    let key = SigningKey::generate();
    if !state.parts.db.set_signing_key(&id, &key).await? {
        return Err(AuthError::InvalidToken.into());
    }
    state.parts.lookups.forget_owner(&id);
    tracing::info!(user_id = %id, "signing key rotated");
    Ok(json(StatusCode::OK, &KeyView { key: key.to_hex() }))
}

async fn current_user(state: &AppState, req: &Request<Incoming>) -> Result<User, Error> {
    let id = authenticate(state, req.headers())?;
    // A token of a user that no longer exists is as good as no token.
    Ok(state.parts.db.user(&id).await?.ok_or(AuthError::InvalidToken)?)
}

fn session(state: &AppState, status: StatusCode, user: &User) -> Result<Response<Body>, Error> {
    let token = state.parts.jwt.issue(&user.id, state.parts.clock.unix()).map_err(Error::internal)?;
    Ok(json(status, &Session { user: UserView::from(user), token }))
}

fn validate_username(name: &str) -> Result<(), Error> {
    password::check_username(name).map_err(|rule| Error::InvalidRequest(rule.into()))
}

fn validate_password(secret: &str) -> Result<(), Error> {
    password::check_password(secret).map_err(|rule| Error::InvalidRequest(rule.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_contract() {
        assert!(validate_username("alice_1.b-c").is_ok());
        for bad in ["ab", "with space", "ünïcode", &"x".repeat(65), "a/b"] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_count_characters() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("1234567").is_err());
        assert!(validate_password(&"é".repeat(256)).is_ok());
        assert!(validate_password(&"x".repeat(257)).is_err());
    }
}
