//! Who is asking: owner passwords, JWTs for the API, HMAC signatures for `/i` URLs.

pub mod jwt;
pub mod limits;
pub mod password;
pub mod signature;

pub use jwt::JwtKeys;
pub use signature::SigningKey;

/// Why a request is not authenticated or not authorised.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// No `Authorization: Bearer` header on a route that needs one.
    #[error("missing bearer token")]
    MissingToken,
    /// A JWT that is malformed, tampered, expired or uses another algorithm.
    #[error("invalid or expired token")]
    InvalidToken,
    /// Login with an unknown username or a wrong password.
    #[error("invalid username or password")]
    BadCredentials,
    /// A `/i` request with neither a signature nor an owner JWT.
    #[error("a signature (sig) or an owner bearer token is required")]
    MissingSignature,
    /// The signature does not match the path, expiry and owner key.
    #[error("signature does not match")]
    BadSignature,
    /// The signature matches but its `exp` has passed.
    #[error("signature expired")]
    SignatureExpired,
    /// Too many failed logins (or registrations) for this username or client address.
    #[error("too many attempts; retry in {retry_after} s")]
    TooManyAttempts {
        /// Seconds until the next attempt is allowed.
        retry_after: u64,
    },
}
