//! Judging an upload before anything is stored: the format from magic bytes, the pixel count
//! from the header, then a complete decode (DCT-scaled for JPEG) and the upright size.

use crate::config::Limits;
use crate::format::ImageFormat;
use crate::transform::decode;

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
    fn avif_is_refused_as_unsupported() {
        let limits = crate::config::Config::embedded("/tmp").limits;
        assert_eq!(check_header(b"\0\0\0\x1cftypavif\0\0\0\0", &limits), Err(UploadError::Unsupported));
    }
}
