//! Reading requests: path parameters, JSON bodies and uploads within their byte limits, bearer
//! tokens, queries.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use http_body_util::BodyStream;
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::images::UploadError;

/// What the router hands a handler besides the request: the values captured from the path, by
/// name, and the connection's peer (in the request's extensions it cost every request a map).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    captured: [(&'static str, &'a str); 2],
    peer: Option<SocketAddr>,
}

impl<'a> Params<'a> {
    /// The TCP peer of the request's connection; `None` where there is none (a test calling a
    /// handler directly).
    pub fn peer(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// These parameters, from a connection with `peer`.
    pub(super) fn with_peer(self, peer: SocketAddr) -> Self {
        Self { peer: Some(peer), ..self }
    }

    /// The value captured as `name`; empty when the pattern has no such capture.
    pub fn get(&self, name: &str) -> &'a str {
        self.captured.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v)
    }

    /// The capture slots, in order, for the router to fill.
    pub(super) fn slots(&mut self) -> impl Iterator<Item = &mut (&'static str, &'a str)> {
        self.captured.iter_mut()
    }
}

/// Reads a JSON body of at most `limit` bytes, each chunk arriving within `stall`.
///
/// # Errors
/// 413 over the limit, 408 when the body stalls, 400 for malformed JSON (the message names the
/// field).
pub async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    stall: Duration,
) -> Result<T, Error> {
    let bytes = collect(declared_length(headers), chunks(body, stall), limit as u64).await?;
    if bytes.is_empty() {
        return Err(Error::InvalidRequest("a JSON body is required".into()));
    }
    let mut json = serde_json::Deserializer::from_slice(&bytes);
    serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let at = e.path().to_string();
        let inner = e.into_inner();
        if at == "." {
            Error::InvalidRequest(format!("invalid JSON body: {inner}"))
        } else {
            Error::InvalidRequest(format!("invalid JSON body at `{at}`: {inner}"))
        }
    })
}

/// Reads an upload: the `file` field of a `multipart/form-data` body, or the raw body. The
/// limit is enforced while the bytes arrive; nothing over it is kept. Each chunk must arrive
/// within `stall`.
///
/// # Errors
/// 413 over the limit, 408 when the body stalls, 400 for a malformed multipart body or a
/// missing `file` field.
pub async fn upload(headers: &HeaderMap, body: Incoming, limit: u64, stall: Duration) -> Result<Bytes, Error> {
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    read_upload(content_type, declared_length(headers), chunks(body, stall), limit).await
}

/// The file of an upload body arriving as `chunks`, as [`upload`] reads it (the fuzz target
/// calls this directly).
///
/// # Errors
/// As [`upload`].
pub async fn read_upload(
    content_type: &str,
    declared: Option<u64>,
    chunks: impl futures_util::Stream<Item = io::Result<Bytes>> + Send,
    limit: u64,
) -> Result<Bytes, Error> {
    let is_multipart = content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data");
    if !is_multipart {
        return collect(declared, chunks, limit).await;
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::InvalidRequest("multipart body without a boundary".into()))?;
    // The whole body may carry a little more than the file: field headers and boundaries.
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().per_field(limit).whole_stream(limit.saturating_add(64 * 1024)));
    let mut multipart = multer::Multipart::with_constraints(chunks, boundary, constraints);
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => return Err(UploadError::MissingFile("multipart body has no `file` field").into()),
            Err(e) => return Err(multipart_error(e, limit)),
        };
        if field.name() != Some("file") {
            continue;
        }
        let mut field = field;
        let mut buf = BytesMut::new();
        while let Some(chunk) = field.chunk().await.map_err(|e| multipart_error(e, limit))? {
            if (buf.len() + chunk.len()) as u64 > limit {
                return Err(Error::PayloadTooLarge { limit });
            }
            buf.extend_from_slice(&chunk);
        }
        return Ok(buf.freeze());
    }
}

/// The whole body, at most `limit` bytes.
async fn collect(
    declared: Option<u64>,
    chunks: impl futures_util::Stream<Item = io::Result<Bytes>>,
    limit: u64,
) -> Result<Bytes, Error> {
    if declared.is_some_and(|n| n > limit) {
        return Err(Error::PayloadTooLarge { limit });
    }
    // One allocation of the announced size instead of doubling up to it.
    let mut buf = BytesMut::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
    let mut chunks = std::pin::pin!(chunks);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            return Err(Error::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// The data of `body`, chunk by chunk; a chunk that does not come within `stall` ends the
/// stream with a `TimedOut` error.
fn chunks(body: Incoming, stall: Duration) -> impl futures_util::Stream<Item = io::Result<Bytes>> {
    futures_util::stream::unfold(Some(BodyStream::new(body)), move |frames| async move {
        let mut frames = frames?;
        loop {
            match tokio::time::timeout(stall, frames.next()).await {
                Err(_) => return Some((Err(io::Error::new(io::ErrorKind::TimedOut, "request body stalled")), None)),
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some((Err(io::Error::other(e)), None)),
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), Some(frames)));
                    }
                }
            }
        }
    })
}

fn body_error(e: &io::Error) -> Error {
    if e.kind() == io::ErrorKind::TimedOut {
        Error::RequestTimeout
    } else {
        Error::InvalidRequest("could not read the request body".into())
    }
}

fn multipart_error(e: multer::Error, limit: u64) -> Error {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Error::PayloadTooLarge { limit }
        }
        multer::Error::StreamReadFailed(cause) => match cause.downcast_ref::<io::Error>() {
            Some(io) => body_error(io),
            None => Error::InvalidRequest("could not read the request body".into()),
        },
        other => Error::InvalidRequest(format!("malformed multipart body: {other}")),
    }
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers.get(CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// The token of an `Authorization: Bearer …` header.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|t| !t.is_empty())
}

/// Query parameters as (name, value) pairs, percent-decoded.
///
/// # Errors
/// 400 when the query is not valid `application/x-www-form-urlencoded`.
pub fn query(raw: Option<&str>) -> Result<Vec<(String, String)>, Error> {
    serde_urlencoded::from_str(raw.unwrap_or_default())
        .map_err(|_| Error::InvalidRequest("malformed query string".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "bearer abc.def".parse().unwrap());
        assert_eq!(bearer(&h), Some("abc.def"));
        h.insert(AUTHORIZATION, "Basic Zm9v".parse().unwrap());
        assert_eq!(bearer(&h), None);
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&h), None);
    }
}
