//! Signed `/i` URLs: `sig = base64url_nopad(HMAC-SHA256(owner_key, path [+ "?exp=N"]))`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

use super::AuthError;

/// Longest lifetime a signed URL may be given (`expires_in`, `--expires-in`): ten years.
pub const MAX_EXPIRES_IN: u64 = 10 * 365 * 24 * 3600;

type HmacSha256 = Hmac<Sha256>;

/// An owner's 32-byte URL signing key.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey([u8; 32]);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// A fresh random key.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::rng().fill_bytes(&mut key);
        Self(key)
    }

    /// A key from its stored bytes; `None` unless exactly 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The raw bytes, for storage.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key as 64 lowercase hex characters, as shown to its owner.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Signs `path` (exactly as it will be requested) with an optional unix expiry.
    pub fn sign(&self, path: &str, exp: Option<i64>) -> String {
        URL_SAFE_NO_PAD.encode(self.mac(path, exp).finalize().into_bytes())
    }

    /// The full signed URL path: `path?exp=N&sig=…` or `path?sig=…`.
    pub fn signed_url(&self, path: &str, exp: Option<i64>) -> String {
        let sig = self.sign(path, exp);
        match exp {
            Some(exp) => format!("{path}?exp={exp}&sig={sig}"),
            None => format!("{path}?sig={sig}"),
        }
    }

    /// Checks `sig` for `path` and `exp` in constant time, then the expiry against `now`.
    ///
    /// # Errors
    /// [`AuthError::BadSignature`] when the signature does not match (or is not base64url),
    /// [`AuthError::SignatureExpired`] when it matches but `exp` is in the past.
    pub fn verify(&self, path: &str, exp: Option<i64>, sig: &str, now: i64) -> Result<(), AuthError> {
        let mut raw = [0u8; 32];
        match URL_SAFE_NO_PAD.decode_slice(sig, &mut raw) {
            Ok(32) => {}
            _ => return Err(AuthError::BadSignature),
        }
        // `verify_slice` compares in constant time.
        self.mac(path, exp).verify_slice(&raw).map_err(|_| AuthError::BadSignature)?;
        match exp {
            Some(exp) if exp < now => Err(AuthError::SignatureExpired),
            _ => Ok(()),
        }
    }

    fn mac(&self, path: &str, exp: Option<i64>) -> HmacSha256 {
        // HMAC takes keys of any length; 32 bytes cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts a 32-byte key");
        mac.update(path.as_bytes());
        if let Some(exp) = exp {
            mac.update(b"?exp=");
            mac.update(exp.to_string().as_bytes());
        }
        mac
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::from_bytes(&[7u8; 32]).unwrap()
    }

    #[test]
    fn matches_vectors_computed_with_openssl() {
        // printf '%s' '/i/abc/w_300' | openssl dgst -sha256 -mac HMAC -macopt hexkey:0707…07 -binary \
        //   | basenc --base64url | tr -d =     (the same vectors are in docs/api.md)
        assert_eq!(key().sign("/i/abc/w_300", None), "mYwH5yPVn0WWRem_BWJNzI1KfkvcKKzAD5an7Z1aw7I");
        assert_eq!(key().sign("/i/abc/w_300", Some(1_700_000_000)), "BkqNfVfyWCeUL4Bba-Gu0chdeeipe_AVU3HfaDqswQs");
        assert_eq!(
            key().signed_url("/i/abc/w_300", Some(1_700_000_000)),
            "/i/abc/w_300?exp=1700000000&sig=BkqNfVfyWCeUL4Bba-Gu0chdeeipe_AVU3HfaDqswQs"
        );
    }

    #[test]
    fn valid_signature_verifies() {
        let sig = key().sign("/i/abc/w_300", None);
        assert_eq!(key().verify("/i/abc/w_300", None, &sig, 0), Ok(()));
    }

    #[test]
    fn signature_for_another_path_or_expiry_is_bad() {
        let sig = key().sign("/i/abc/w_300", Some(100));
        assert_eq!(key().verify("/i/abc/w_301", Some(100), &sig, 0), Err(AuthError::BadSignature));
        assert_eq!(key().verify("/i/abc/w_300", Some(101), &sig, 0), Err(AuthError::BadSignature));
        assert_eq!(key().verify("/i/abc/w_300", None, &sig, 0), Err(AuthError::BadSignature));
        assert_eq!(SigningKey::generate().verify("/i/abc/w_300", Some(100), &sig, 0), Err(AuthError::BadSignature));
    }

    #[test]
    fn expired_signature_is_reported_after_it_matches() {
        let sig = key().sign("/p", Some(100));
        assert_eq!(key().verify("/p", Some(100), &sig, 101), Err(AuthError::SignatureExpired));
        assert_eq!(key().verify("/p", Some(100), &sig, 100), Ok(()));
    }

    #[test]
    fn malformed_signatures_are_bad() {
        for sig in ["", "!!!", "AAAA", &"A".repeat(44), &"A".repeat(400)] {
            assert_eq!(key().verify("/p", None, sig, 0), Err(AuthError::BadSignature), "{sig}");
        }
    }
}
