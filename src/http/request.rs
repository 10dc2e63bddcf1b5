//! Reading requests: path parameters, JSON bodies and uploads within their byte limits, bearer
//! tokens, queries.

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use http::HeaderMap;
use http_body_util::{BodyExt, BodyStream, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::library::UploadError;

/// Values captured from the path, by name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Params<'a> {
    captured: [(&'static str, &'a str); 2],
}

impl<'a> Params<'a> {
    /// The value captured as `name`; empty when the pattern has no such capture.
    pub fn get(&self, name: &str) -> &'a str {
        self.captured.iter().find(|(n, _)| *n == name).map_or("", |(_, v)| v)
    }

    /// The capture slots, in order, for the router to fill.
    pub(super) fn slots(&mut self) -> impl Iterator<Item = &mut (&'static str, &'a str)> {
        self.captured.iter_mut()
    }
}

/// Reads a JSON body of at most `limit` bytes.
///
/// # Errors
/// 413 over the limit, 400 for malformed JSON (the message names the field).
pub async fn json<T: DeserializeOwned>(headers: &HeaderMap, body: Incoming, limit: usize) -> Result<T, Error> {
    if declared_length(headers).is_some_and(|n| n > limit as u64) {
        return Err(Error::PayloadTooLarge { limit: limit as u64 });
    }
    let bytes = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(Error::PayloadTooLarge { limit: limit as u64 })
        }
        Err(_) => return Err(Error::InvalidRequest("could not read the request body".into())),
    };
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
/// limit is enforced while the bytes arrive; nothing over it is kept.
///
/// # Errors
/// 413 over the limit, 400 for a malformed multipart body or a missing `file` field.
pub async fn upload(headers: &HeaderMap, body: Incoming, limit: u64) -> Result<Bytes, Error> {
    let too_large = || Error::PayloadTooLarge { limit };
    let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let is_multipart = content_type.trim_start().to_ascii_lowercase().starts_with("multipart/form-data");
    if !is_multipart {
        let declared = declared_length(headers);
        if declared.is_some_and(|n| n > limit) {
            return Err(too_large());
        }
        // One allocation of the announced size instead of doubling up to it.
        let mut buf = BytesMut::with_capacity(usize::try_from(declared.unwrap_or(0)).unwrap_or(0));
        let mut frames = BodyStream::new(body);
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(|_| Error::InvalidRequest("could not read the request body".into()))?;
            if let Ok(data) = frame.into_data() {
                if (buf.len() + data.len()) as u64 > limit {
                    return Err(too_large());
                }
                buf.extend_from_slice(&data);
            }
        }
        return Ok(buf.freeze());
    }
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| Error::InvalidRequest("multipart body without a boundary".into()))?;
    // The whole body may carry a little more than the file: field headers and boundaries.
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().per_field(limit).whole_stream(limit.saturating_add(64 * 1024)));
    let stream = BodyStream::new(body).filter_map(|frame| async move {
        match frame {
            Ok(frame) => frame.into_data().ok().map(Ok),
            Err(e) => Some(Err(e)),
        }
    });
    let mut multipart = multer::Multipart::with_constraints(stream, boundary, constraints);
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
                return Err(too_large());
            }
            buf.extend_from_slice(&chunk);
        }
        return Ok(buf.freeze());
    }
}

fn multipart_error(e: multer::Error, limit: u64) -> Error {
    match e {
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            Error::PayloadTooLarge { limit }
        }
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
