//! HS256 JWTs with `sub`, `iat`, `exp`, checked against the injected clock.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use super::AuthError;
use crate::ids::UserId;

/// Seconds a token may be past `exp` to absorb clock skew between replicas.
const LEEWAY_SECS: i64 = 30;

/// Keys and rules for issuing and checking owner tokens.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    ttl: Duration,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

impl JwtKeys {
    /// Keys from a shared secret; tokens live for `ttl`.
    pub fn new(secret: &[u8], ttl: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        // `exp` is checked below against the injectable clock, not the system time.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "sub", "iat"]);
        Self { encoding: EncodingKey::from_secret(secret), decoding: DecodingKey::from_secret(secret), validation, ttl }
    }

    /// Issues a token for `user` at unix time `now`; returns it with its expiry.
    ///
    /// # Errors
    /// Only if signing fails, which HS256 with a byte key does not.
    pub fn issue(&self, user: &UserId, now: i64) -> Result<String, jsonwebtoken::errors::Error> {
        let ttl = i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2);
        let claims = Claims { sub: user.as_str().to_owned(), iat: now, exp: now.saturating_add(ttl) };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Checks a token at unix time `now` and returns its subject.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] for anything but a well-formed, untampered, unexpired HS256
    /// token whose subject is a user id.
    pub fn verify(&self, token: &str, now: i64) -> Result<UserId, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?;
        if data.claims.exp.saturating_add(LEEWAY_SECS) < now {
            return Err(AuthError::InvalidToken);
        }
        UserId::parse(&data.claims.sub).ok_or(AuthError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    use super::*;

    const NOW: i64 = 1_800_000_000;

    fn keys() -> JwtKeys {
        JwtKeys::new(b"0123456789abcdef0123456789abcdef", Duration::from_secs(3600))
    }

    #[test]
    fn issued_token_verifies_to_its_subject() {
        let user = UserId::generate();
        let token = keys().issue(&user, NOW).unwrap();
        assert_eq!(keys().verify(&token, NOW + 10), Ok(user));
    }

    #[test]
    fn expired_token_is_refused() {
        let token = keys().issue(&UserId::generate(), NOW).unwrap();
        assert_eq!(keys().verify(&token, NOW + 3600 + LEEWAY_SECS + 1), Err(AuthError::InvalidToken));
    }

    #[test]
    fn token_signed_with_another_secret_is_refused() {
        let other = JwtKeys::new(b"another-secret-another-secret-xx", Duration::from_secs(3600));
        let token = other.issue(&UserId::generate(), NOW).unwrap();
        assert_eq!(keys().verify(&token, NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn tampered_payload_is_refused() {
        let token = keys().issue(&UserId::generate(), NOW).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let forged = format!(r#"{{"sub":"{}","iat":{NOW},"exp":{}}}"#, UserId::generate(), NOW + 99_999);
        parts[1] = URL_SAFE_NO_PAD.encode(forged);
        assert_eq!(keys().verify(&parts.join("."), NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn alg_none_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = format!(r#"{{"sub":"{}","iat":{NOW},"exp":{}}}"#, UserId::generate(), NOW + 999);
        let token = format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims));
        assert_eq!(keys().verify(&token, NOW), Err(AuthError::InvalidToken));
    }

    #[test]
    fn garbage_is_refused() {
        for token in ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.e30.xx"] {
            assert_eq!(keys().verify(token, NOW), Err(AuthError::InvalidToken), "{token}");
        }
    }
}
