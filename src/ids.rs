//! Identifier newtypes: random, URL-safe, never built from unchecked input.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// An owner's id: a random UUID (v4) in its hyphenated lowercase form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// A fresh random id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    /// Accepts a stored or claimed id when it is a UUID.
    pub fn parse(s: &str) -> Option<Self> {
        uuid::Uuid::try_parse(s).ok().map(|u| Self(u.hyphenated().to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An image's id: 16 random bytes as 22 base64url characters (no padding).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ImageId(String);

/// Length of an [`ImageId`] in characters.
pub const IMAGE_ID_LEN: usize = 22;

impl ImageId {
    /// A fresh random id.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        Self(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts text of the right length and alphabet; anything else is no image.
    pub fn parse(s: &str) -> Option<Self> {
        let ok = s.len() == IMAGE_ID_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        ok.then(|| Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ImageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// True for text usable as (part of) an object key: non-empty, relative, no `.` or `..`
/// segments, only `[A-Za-z0-9_./-]`.
pub fn is_key_path(key: &str) -> bool {
    !key.is_empty()
        && !key.starts_with('/')
        && !key.split('/').any(|part| part == ".." || part == ".")
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/'))
}

/// True for a usable key prefix: a key path ending in `/`.
pub fn is_key_prefix(prefix: &str) -> bool {
    prefix.ends_with('/') && is_key_path(prefix)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_image_ids_parse_back() {
        for _ in 0..100 {
            let id = ImageId::generate();
            assert_eq!(ImageId::parse(id.as_str()), Some(id));
        }
    }

    #[test]
    fn image_ids_with_path_characters_are_refused() {
        assert_eq!(ImageId::parse("../../../../etc/passwd.."), None);
        assert_eq!(ImageId::parse("abc"), None);
        assert_eq!(ImageId::parse("aaaaaaaaaaaaaaaaaaaaa/"), None);
    }

    #[test]
    fn user_ids_must_be_uuids() {
        assert!(UserId::parse(UserId::generate().as_str()).is_some());
        assert!(UserId::parse("admin").is_none());
    }
}
