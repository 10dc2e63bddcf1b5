//! Who may see an image over `/i`, and so who may cache the answer and for how long.
//!
//! A signed URL (`sig`, optional `exp`) is public: any cache may keep the answer until the
//! signature expires, a year at most. The owner's JWT is private: only the owner's own cache.

use http::HeaderValue;

use crate::auth::{AuthError, JwtKeys};
use crate::db::{ImageRecord, OwnerKey};
use crate::error::Error;

/// `max-age` of URLs that never expire: one year.
pub const YEAR: i64 = 31_536_000;

/// How a request was authorised, which decides who may cache the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// A valid signature: any cache may keep it until `max_age` seconds from now.
    Signed {
        /// Seconds the answer may be cached.
        max_age: i64,
    },
    /// The owner's JWT: only the owner's own cache may keep it.
    Owner,
}

impl Access {
    /// A signature valid until `exp` (or forever), seen at unix time `now`.
    pub fn signed(exp: Option<i64>, now: i64) -> Self {
        Self::Signed { max_age: exp.map_or(YEAR, |exp| (exp - now).clamp(0, YEAR)) }
    }

    /// The `Cache-Control` header of answers given under this access.
    pub fn cache_control(&self) -> HeaderValue {
        match self {
            Self::Signed { max_age } if *max_age >= YEAR => {
                HeaderValue::from_static("public, max-age=31536000, immutable")
            }
            Self::Signed { max_age } => HeaderValue::from_str(&format!("public, max-age={max_age}"))
                .unwrap_or(HeaderValue::from_static("no-store")),
            Self::Owner => HeaderValue::from_static("private, max-age=31536000, immutable"),
        }
    }
}

/// The credentials a `/i` request carries.
#[derive(Debug, Clone, Copy)]
pub struct Credentials<'a> {
    /// The request path exactly as sent (the signed message).
    pub path: &'a str,
    /// `exp` of the query.
    pub exp: Option<i64>,
    /// `sig` of the query.
    pub sig: Option<&'a str>,
    /// The bearer token, when there is no signature.
    pub bearer: Option<&'a str>,
}

/// Checks the signature against the owner's key, or else the owner's JWT, at unix time `now`.
///
/// # Errors
/// 401 without credentials or with a bad token, 403 `bad_signature` / `signature_expired`, or
/// 403 when the token is another owner's.
pub fn authorize(
    credentials: &Credentials<'_>,
    image: &ImageRecord,
    owner: &OwnerKey,
    jwt: &JwtKeys,
    now: i64,
) -> Result<Access, Error> {
    if let Some(sig) = credentials.sig {
        owner.signing_key.verify(credentials.path, credentials.exp, sig, now)?;
        return Ok(Access::signed(credentials.exp, now));
    }
    let token = credentials.bearer.ok_or(AuthError::MissingSignature)?;
    if jwt.verify(token, now)? != image.owner {
        return Err(Error::Forbidden("this image belongs to another owner"));
    }
    Ok(Access::Owner)
}

/// The `exp` and `sig` of a signed `/i` URL's query; any other parameter is an error.
///
/// # Errors
/// 400 naming an unexpected, repeated or malformed parameter.
pub fn signature_params(query: Option<&str>) -> Result<(Option<i64>, Option<String>), Error> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| Error::InvalidRequest("malformed query string".into()))?;
    let (mut exp, mut sig) = (None, None);
    for (name, value) in pairs {
        let slot_taken = match name.as_str() {
            "exp" => {
                let v = value
                    .parse::<i64>()
                    .map_err(|_| Error::InvalidRequest(format!("`exp={value}` is not unix seconds")))?;
                exp.replace(v).is_some()
            }
            "sig" => sig.replace(value).is_some(),
            other => {
                return Err(Error::InvalidRequest(format!(
                    "unexpected query parameter `{other}`; only `exp` and `sig` are allowed"
                )))
            }
        };
        if slot_taken {
            return Err(Error::InvalidRequest(format!("query parameter `{name}` is repeated")));
        }
    }
    Ok((exp, sig))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiring_signatures_bound_max_age() {
        assert_eq!(Access::signed(Some(160), 100).cache_control(), "public, max-age=60");
        assert_eq!(Access::signed(None, 100).cache_control(), "public, max-age=31536000, immutable");
        assert_eq!(Access::signed(Some(100 + 2 * YEAR), 100), Access::Signed { max_age: YEAR });
        assert_eq!(Access::signed(Some(50), 100), Access::Signed { max_age: 0 });
        assert!(Access::Owner.cache_control().to_str().unwrap().starts_with("private"));
    }

    #[test]
    fn signature_params_allow_only_exp_and_sig() {
        assert_eq!(signature_params(Some("sig=abc&exp=10")).unwrap(), (Some(10), Some("abc".into())));
        assert_eq!(signature_params(None).unwrap(), (None, None));
        assert!(signature_params(Some("sig=a&w=3")).is_err());
        assert!(signature_params(Some("sig=a&sig=b")).is_err());
        assert!(signature_params(Some("exp=soon&sig=a")).is_err());
    }
}
