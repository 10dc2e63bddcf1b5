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

/// Longest shared caches may keep an answer made with a preset: the preset may change.
pub const PRESET_MAX_AGE: i64 = 600;

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

    /// The same access for an answer made with a preset, which shared caches keep at most
    /// [`PRESET_MAX_AGE`] (the owner's own, private, fetches are not capped).
    pub fn with_preset(self) -> Self {
        match self {
            Self::Signed { max_age } => Self::Signed { max_age: max_age.min(PRESET_MAX_AGE) },
            Self::Owner => Self::Owner,
        }
    }

    /// The `Cache-Control` of a stand-in answer that caches should ask for again after
    /// `max_age` seconds (never later than the signature allows).
    pub fn stand_in_cache_control(&self, max_age: u32) -> HeaderValue {
        let value = match self {
            Self::Signed { max_age: signed } => format!("public, max-age={}", (*signed).min(i64::from(max_age))),
            Self::Owner => format!("private, max-age={max_age}"),
        };
        HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("no-store"))
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
pub fn authorise(
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

/// The `exp` and `sig` of a signed `/i` URL's query. A signed URL has one spelling, so that
/// it is one cache key for every cache in front: `sig=S`, `exp=E&sig=S` or `sig=S&exp=E`,
/// names as written (not percent-encoded), `E` plain decimal digits without a sign or a leading
/// zero. No query at all is no signature (the owner's JWT may then authorise).
///
/// # Errors
/// 400 naming an unexpected, repeated, empty or malformed parameter, or a query without `sig`.
pub fn signature_params(query: Option<&str>) -> Result<(Option<i64>, Option<&str>), Error> {
    let Some(query) = query else { return Ok((None, None)) };
    let bad = |message: String| Err(Error::InvalidRequest(message));
    let (mut exp, mut sig) = (None, None);
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (name, value) {
            ("", _) => return bad("empty query parameter; the query is `exp=…&sig=…` or `sig=…`".into()),
            ("exp" | "sig", "") => return bad(format!("query parameter `{name}` is empty")),
            ("exp", _) if exp.is_some() => return bad("query parameter `exp` is repeated".into()),
            ("sig", _) if sig.is_some() => return bad("query parameter `sig` is repeated".into()),
            ("exp", digits) => exp = Some(unix_seconds(digits)?),
            ("sig", value) => sig = Some(value),
            (other, _) => {
                return bad(format!("unexpected query parameter `{other}`; only `exp` and `sig` are allowed"))
            }
        }
    }
    if sig.is_none() {
        return bad("a signed URL needs `sig`".into());
    }
    Ok((exp, sig))
}

/// `exp` as written by a signer: decimal digits, no sign, no leading zero.
fn unix_seconds(digits: &str) -> Result<i64, Error> {
    let plain = digits.bytes().all(|b| b.is_ascii_digit()) && (digits == "0" || !digits.starts_with('0'));
    digits
        .parse()
        .ok()
        .filter(|_| plain)
        .ok_or_else(|| Error::InvalidRequest(format!("`exp={digits}` is not unix seconds in plain digits")))
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
    fn a_stand_in_is_kept_briefly_and_never_past_its_signature() {
        assert_eq!(Access::signed(None, 100).stand_in_cache_control(60), "public, max-age=60");
        assert_eq!(Access::signed(Some(130), 100).stand_in_cache_control(60), "public, max-age=30");
        assert_eq!(Access::Owner.stand_in_cache_control(60), "private, max-age=60");
    }

    #[test]
    fn a_signed_query_has_one_spelling() {
        assert_eq!(signature_params(Some("sig=abc&exp=10")).unwrap(), (Some(10), Some("abc")));
        assert_eq!(signature_params(Some("exp=10&sig=abc")).unwrap(), (Some(10), Some("abc")));
        assert_eq!(signature_params(Some("sig=abc")).unwrap(), (None, Some("abc")));
        assert_eq!(signature_params(Some("exp=0&sig=a")).unwrap(), (Some(0), Some("a")));
        assert_eq!(signature_params(None).unwrap(), (None, None));
        for query in [
            "",
            "&",
            "sig=a&",
            "&sig=a",
            "exp=10&&sig=a",
            "sig=a&w=3",
            "sig=a&sig=b",
            "exp=1&exp=1&sig=a",
            "exp=soon&sig=a",
            "exp=010&sig=a",
            "exp=+10&sig=a",
            "exp=-10&sig=a",
            "exp=1e3&sig=a",
            "exp=&sig=a",
            "sig=",
            "sig",
            "%65xp=10&sig=a",
            "%73ig=a",
            "exp=10",
            "exp=99999999999999999999&sig=a",
            "SIG=a",
        ] {
            assert!(signature_params(Some(query)).is_err(), "{query:?} is accepted");
        }
    }
}
