//! Originals: what formats we take, how an upload is judged before anything is stored.

use std::fmt;
use std::str::FromStr;

use http::StatusCode;

use crate::config::Limits;
use crate::transform::decode;

/// An image format, judged from content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    Webp,
    /// GIF (first frame is used for transforms).
    Gif,
    /// AVIF (output only: decoding is not built).
    Avif,
}

impl ImageFormat {
    /// Lowercase name as used in the API and in `fmt_` tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Avif => "avif",
        }
    }

    /// MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Avif => "image/avif",
        }
    }

    /// File extension for object keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            other => other.as_str(),
        }
    }

    /// Recognises a format from the first bytes of a file, whatever the client claimed.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [_, _, _, _, b'f', b't', b'y', b'p', b'a', b'v', b'i', b'f' | b's', ..] => Some(Self::Avif),
            _ => None,
        }
    }

    /// True when this build can decode the format (everything but AVIF).
    pub fn is_decodable(self) -> bool {
        !matches!(self, Self::Avif)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageFormat {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "jpeg" | "jpg" => Ok(Self::Jpeg),
            "png" => Ok(Self::Png),
            "webp" => Ok(Self::Webp),
            "gif" => Ok(Self::Gif),
            "avif" => Ok(Self::Avif),
            _ => Err(()),
        }
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// The bytes are not a format we decode, whatever the Content-Type said.
    #[error("unsupported image type: only JPEG, PNG, WebP and GIF are accepted")]
    Unsupported,
    /// No `file` field in a multipart body, or an empty body.
    #[error("{0}")]
    MissingFile(&'static str),
    /// The header announces more pixels than allowed.
    #[error("image is {width}x{height} = {pixels} pixels, more than the limit of {limit}")]
    TooManyPixels {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// width × height.
        pixels: u64,
        /// The configured limit.
        limit: u64,
    },
    /// The image is truncated or corrupt.
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

impl UploadError {
    /// HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unsupported => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::MissingFile(_) => StatusCode::BAD_REQUEST,
            Self::TooManyPixels { .. } | Self::Corrupt(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// The contract's code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Unsupported => "unsupported_media_type",
            Self::MissingFile(_) => "invalid_request",
            Self::TooManyPixels { .. } | Self::Corrupt(_) => "unprocessable_image",
        }
    }
}

/// What an accepted upload is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    /// Sniffed format.
    pub format: ImageFormat,
    /// Width after EXIF orientation.
    pub width: u32,
    /// Height after EXIF orientation.
    pub height: u32,
    /// Whether the image has an alpha channel.
    pub has_alpha: bool,
    /// blake3 hex of the bytes.
    pub content_hash: String,
}

/// The cheap checks: format from magic bytes, then the pixel count from the header alone.
///
/// # Errors
/// [`UploadError::Unsupported`] for unknown or undecodable formats, `TooManyPixels` over the
/// limit, `Corrupt` when the header cannot be read.
pub fn check_header(bytes: &[u8], limits: &Limits) -> Result<(ImageFormat, u32, u32), UploadError> {
    let format = ImageFormat::sniff(bytes).filter(|f| f.is_decodable()).ok_or(UploadError::Unsupported)?;
    let size = imagesize::blob_size(bytes).map_err(|e| UploadError::Corrupt(format!("unreadable header ({e})")))?;
    let (width, height) = (
        u32::try_from(size.width).map_err(|_| UploadError::Corrupt("width out of range".into()))?,
        u32::try_from(size.height).map_err(|_| UploadError::Corrupt("height out of range".into()))?,
    );
    if width == 0 || height == 0 {
        return Err(UploadError::Corrupt("zero width or height".into()));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(UploadError::TooManyPixels { width, height, pixels, limit: limits.max_pixels });
    }
    Ok((format, width, height))
}

/// The full check of an upload: header checks, then a complete decode. CPU-heavy: run it on
/// the transform pool.
///
/// # Errors
/// As [`check_header`], and `Corrupt` when decoding fails.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<Inspected, UploadError> {
    let (format, header_width, header_height) = check_header(bytes, limits)?;
    // JPEG decoders fill a truncated scan with grey instead of failing; the end marker tells.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(UploadError::Corrupt("JPEG data ends before its end-of-image marker".into()));
    }
    // Every entropy-coded block of a JPEG is read even at 1/8 scale, so a DCT-scaled decode
    // checks the whole file with 1/64 of the memory; the size then comes from the header.
    let decoded =
        decode::decode(bytes, format, 8, limits.max_pixels).map_err(|e| UploadError::Corrupt(e.to_string()))?;
    let (width, height) = if decoded.scale == 1 {
        decoded.oriented_dimensions()
    } else if decode::swaps_axes(decoded.orientation) {
        (header_height, header_width)
    } else {
        (header_width, header_height)
    };
    Ok(Inspected {
        format,
        width,
        height,
        has_alpha: decoded.image.color().has_alpha(),
        content_hash: blake3::hash(bytes).to_hex().to_string(),
    })
}

/// True when an end-of-image marker follows the last start-of-scan marker. Markers cannot
/// occur inside entropy-coded data (0xFF is stuffed), so a truncated scan has no EOI after it,
/// while an embedded EXIF thumbnail (its own SOS and EOI come earlier) or data appended after
/// the EOI do not matter.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_sos = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]);
    last_sos.is_some_and(|sos| bytes[sos..].windows(2).any(|w| w == [0xFF, 0xD9]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncated_jpeg_scans_are_detected() {
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xDA, 0, 2, 1, 2, 3, 0xFF, 0x00, 4];
        assert!(!jpeg_is_complete(&jpeg));
        jpeg.extend_from_slice(&[0xFF, 0xD9, b't', b'r', b'a', b'i', b'l']);
        assert!(jpeg_is_complete(&jpeg));
        assert!(!jpeg_is_complete(&[0xFF, 0xD8, 0xFF, 0xD9]), "no scan at all");
    }

    #[test]
    fn formats_are_sniffed_from_magic_bytes() {
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(b"GIF89a...."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"GIF87a...."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x1cftypavif"), Some(ImageFormat::Avif));
    }

    #[test]
    fn lookalikes_are_not_images() {
        for bytes in [&b""[..], b"\xFF\xD8", b"RIFF\0\0\0\0WAVEfmt ", b"<svg xmlns=", b"%PDF-1.7", b"GIF90a"] {
            assert_eq!(ImageFormat::sniff(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn avif_is_refused_as_unsupported() {
        let limits = Limits { max_upload_bytes: 1 << 20, max_pixels: 1 << 20, max_dimension: 8192 };
        assert_eq!(check_header(b"\0\0\0\x1cftypavif\0\0\0\0", &limits), Err(UploadError::Unsupported));
    }

    #[test]
    fn format_names_round_trip() {
        for f in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp, ImageFormat::Gif, ImageFormat::Avif] {
            assert_eq!(f.as_str().parse::<ImageFormat>(), Ok(f));
        }
    }
}
