//! The one error handlers return, and the one place that maps errors to the contract: each
//! variant's HTTP status, snake_case code and public message.
//!
//! Module errors (`DbError`, `StorageError`, `AuthError`, `OpsError`, `PipelineError`,
//! `QuotaError`, `UploadError`, `PoolError`) convert into [`Error`]; they know nothing of HTTP.
//! A 5xx hides its cause from the client and the HTTP layer logs the chain once.

use http::StatusCode;

use crate::auth::AuthError;
use crate::db::DbError;
use crate::images::upload::UploadError;
use crate::quota::QuotaError;
use crate::storage::StorageError;
use crate::transform::{OpsError, PipelineError};
use crate::workers::PoolError;
use crate::BoxError;

/// An error answered to a client as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Malformed JSON, query or path parameter; the message names it.
    #[error("{0}")]
    InvalidRequest(String),
    /// Ops that do not parse; the message names the bad token.
    #[error(transparent)]
    InvalidTransform(#[from] OpsError),
    /// Missing, invalid or expired credentials.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The caller is authenticated but does not own the resource.
    #[error("{0}")]
    Forbidden(&'static str),
    /// Unknown route or resource.
    #[error("{0}")]
    NotFound(&'static str),
    /// The route exists but not for this method.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: String,
    },
    /// A unique value is taken (username).
    #[error("{0}")]
    Conflict(&'static str),
    /// The request body stopped arriving for longer than `server.body_timeout_secs`.
    #[error("the request body stalled")]
    RequestTimeout,
    /// The request body is larger than allowed.
    #[error("request body exceeds {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: u64,
    },
    /// An upload failed validation.
    #[error(transparent)]
    Upload(#[from] UploadError),
    /// The transform pipeline failed.
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
    /// The owner's daily quota is spent.
    #[error(transparent)]
    Quota(#[from] QuotaError),
    /// Too many transforms queued, or one ran out of time.
    #[error("{reason}")]
    Overloaded {
        /// What was overloaded.
        reason: &'static str,
        /// Seconds after which a retry makes sense.
        retry_after: u64,
    },
    /// A database call failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// An object-store call failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Anything else.
    #[error("internal error")]
    Internal(#[source] BoxError),
    /// The error of a transform this request shared with others (single flight).
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
}

impl Error {
    /// Wraps any error as an internal one.
    pub fn internal(e: impl Into<BoxError>) -> Self {
        Self::Internal(e.into())
    }

    /// HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        self.contract().0
    }

    /// The contract's snake_case code.
    pub fn code(&self) -> &'static str {
        self.contract().1
    }

    /// The one table of the contract: each failure's status and code, side by side.
    fn contract(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            Self::Shared(e) => e.contract(),
            Self::InvalidRequest(_) | Self::Upload(UploadError::MissingFile(_)) => (S::BAD_REQUEST, "invalid_request"),
            Self::InvalidTransform(_) | Self::Pipeline(PipelineError::InvalidOps(_)) => {
                (S::BAD_REQUEST, "invalid_transform")
            }
            Self::Auth(AuthError::BadSignature) => (S::FORBIDDEN, "bad_signature"),
            Self::Auth(AuthError::SignatureExpired) => (S::FORBIDDEN, "signature_expired"),
            Self::Auth(AuthError::TooManyAttempts { .. }) => (S::TOO_MANY_REQUESTS, "too_many_requests"),
            // A write for an owner deleted meanwhile: their token is as good as none.
            Self::Auth(_) | Self::Db(DbError::Orphan) => (S::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (S::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (S::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed { .. } => (S::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::Conflict(_) => (S::CONFLICT, "conflict"),
            Self::PayloadTooLarge { .. } => (S::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::RequestTimeout => (S::REQUEST_TIMEOUT, "request_timeout"),
            Self::Upload(UploadError::Unsupported) => (S::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
            Self::Pipeline(PipelineError::Internal(_)) => (S::INTERNAL_SERVER_ERROR, "internal"),
            Self::Upload(_) | Self::Pipeline(_) => (S::UNPROCESSABLE_ENTITY, "unprocessable_image"),
            Self::Quota(_) => (S::TOO_MANY_REQUESTS, "quota_exceeded"),
            Self::Overloaded { .. } => (S::SERVICE_UNAVAILABLE, "overloaded"),
            Self::Db(e) if e.is_unavailable() => (S::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Storage(e) if e.is_not_found() => (S::NOT_FOUND, "not_found"),
            Self::Storage(e) if e.is_unavailable() => (S::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Storage(StorageError::Full(_)) => (S::INSUFFICIENT_STORAGE, "insufficient_storage"),
            Self::Db(_) | Self::Storage(_) | Self::Internal(_) => (S::INTERNAL_SERVER_ERROR, "internal"),
        }
    }

    /// The message shown to the client: the error itself for 4xx, a generic line for 5xx.
    pub fn public_message(&self) -> String {
        if let Self::Shared(e) = self {
            return e.public_message();
        }
        match self.status() {
            StatusCode::INTERNAL_SERVER_ERROR => "internal error; see the server log for this request id".to_owned(),
            StatusCode::SERVICE_UNAVAILABLE => match self {
                Self::Overloaded { reason, .. } => (*reason).to_owned(),
                Self::Db(_) => "the database is unavailable; retry shortly".to_owned(),
                Self::Storage(_) => "the object store is unavailable; retry shortly".to_owned(),
                other => other.to_string(),
            },
            StatusCode::NOT_FOUND if matches!(self, Self::Storage(_)) => "not found".to_owned(),
            StatusCode::UNAUTHORIZED if matches!(self, Self::Db(_)) => "this account no longer exists".to_owned(),
            StatusCode::INSUFFICIENT_STORAGE => "the object store is full; nothing was stored".to_owned(),
            _ => self.to_string(),
        }
    }

    /// Seconds for the `Retry-After` header, when the client should come back.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            Self::Shared(e) => e.retry_after(),
            Self::Quota(QuotaError::Exceeded { retry_after, .. }) => Some(*retry_after),
            Self::Auth(AuthError::TooManyAttempts { retry_after }) => Some(*retry_after),
            Self::Overloaded { retry_after, .. } => Some(*retry_after),
            Self::Db(_) | Self::Storage(_) if self.status() == StatusCode::SERVICE_UNAVAILABLE => Some(1),
            _ => None,
        }
    }

    /// The JSON body of this error.
    pub fn body(&self) -> Vec<u8> {
        let body = serde_json::json!({"error": {"code": self.code(), "message": self.public_message()}});
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

impl Error {
    /// The reason of an overload refusal (503 with `Retry-After`), also through a shared flight.
    pub fn overload_reason(&self) -> Option<&'static str> {
        match self {
            Self::Overloaded { reason, .. } => Some(reason),
            Self::Shared(e) => e.overload_reason(),
            _ => None,
        }
    }
}

impl From<PoolError> for Error {
    /// A worker-pool refusal is a 503 (full queue, timeout), or a 422 when a decoder panicked
    /// on the input.
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::QueueFull => Self::Overloaded { reason: "the server is busy; retry shortly", retry_after: 1 },
            PoolError::TimedOut => Self::Overloaded { reason: "the work took too long; retry shortly", retry_after: 5 },
            PoolError::Panicked => Self::Pipeline(PipelineError::Panicked),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = Error::internal("secret database password in message");
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = String::from_utf8(e.body()).unwrap();
        assert!(!body.contains("secret"), "{body}");
        assert!(body.contains("\"code\":\"internal\""), "{body}");
    }

    #[test]
    fn overload_carries_retry_after() {
        let e = Error::Overloaded { reason: "transform queue is full", retry_after: 2 };
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(e.code(), "overloaded");
        assert_eq!(e.retry_after(), Some(2));
    }
}
