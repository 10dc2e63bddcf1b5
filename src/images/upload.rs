//! Judging an upload before anything is stored: the format from magic bytes, the pixel count
//! from the header, then a complete decode (DCT-scaled for JPEG) to a small preview, which gives
//! the upright size and the placeholders.

use crate::config::Limits;
use crate::format::ImageFormat;
use crate::placeholder::Placeholder;
use crate::transform::decode::{self, animation};
use crate::transform::levels::{self, Level};

/// The formats an upload may be in, as the 415 names them.
const ACCEPTED: &str =
    if cfg!(feature = "aom") { "JPEG, PNG, WebP, GIF, AVIF and JPEG XL" } else { "JPEG, PNG, WebP, GIF and JPEG XL" };

/// Why an upload was refused.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum UploadError {
    /// The bytes are not a format we decode, whatever the Content-Type said.
    #[error("unsupported image type: only {ACCEPTED} are accepted")]
    Unsupported,
    /// No `file` field in a multipart body, or an empty body.
    #[error("{0}")]
    MissingFile(&'static str),
    /// The header announces more pixels than allowed (every frame's, for an animation).
    #[error("image is {width}x{height}{} = {pixels} pixels, more than the limit of {limit}", frames_suffix(*frames))]
    TooManyPixels {
        /// Announced width.
        width: u32,
        /// Announced height.
        height: u32,
        /// Frames (1 for a still).
        frames: u32,
        /// width × height.
        pixels: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Checking the image would hold more pixel memory than one decode may.
    #[error("decoding this image needs {} MB of pixel memory, more than the limit of {} MB", needed.div_ceil(1 << 20), limit >> 20)]
    TooLarge {
        /// Bytes the check would hold.
        needed: u64,
        /// The limit (`limits.max_decode_mb`).
        limit: u64,
    },
    /// An animation with more frames than allowed.
    #[error("the animation has {frames} frames, more than the limit of {limit}")]
    TooManyFrames {
        /// Frames in the file.
        frames: u32,
        /// The configured limit (`limits.max_frames`).
        limit: u32,
    },
    /// The image is truncated or corrupt.
    #[error("corrupt or truncated image: {0}")]
    Corrupt(String),
}

fn frames_suffix(frames: u32) -> String {
    if frames > 1 {
        format!(" x {frames} frames")
    } else {
        String::new()
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
    /// ThumbHash, BlurHash and average colour of the upright image.
    pub placeholder: Placeholder,
    /// Number of frames (1 for a still).
    pub frames: u32,
    /// Working copies to store beside the original (large stills; see [`levels`]).
    pub levels: Vec<Level>,
}

/// What the header of an acceptable upload says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Sniffed format.
    pub format: ImageFormat,
    /// Bytes of pixel memory [`inspect`] will hold.
    pub memory: u64,
    /// The working copies [`inspect`] makes, if any (see [`levels::wanted`]).
    pub copies: Option<levels::Kind>,
}

/// The cheap checks: format from magic bytes, then from the header alone the pixel count and
/// the memory a complete check will hold.
///
/// # Errors
/// [`UploadError::Unsupported`] for unknown or undecodable formats, `TooManyPixels` or
/// `TooLarge` over the limits, `Corrupt` when the header cannot be read.
pub fn check_header(bytes: &[u8], limits: &Limits) -> Result<Header, UploadError> {
    let format = ImageFormat::sniff(bytes).filter(|f| f.is_decodable()).ok_or(UploadError::Unsupported)?;
    // The size first, from the first bytes alone; the probe reads the rest of the header.
    let (width, height) = if format == ImageFormat::Heic {
        // imagesize reads the first `ispe` box, which in a grid may be a tile's; the container's
        // own parse knows the primary image (a grid's size is in its `grid` box).
        let header = decode::heic::header(bytes).map_err(|e| UploadError::Corrupt(e.to_string()))?;
        (header.width, header.height)
    } else {
        let size = imagesize::blob_size(bytes).map_err(|e| UploadError::Corrupt(format!("unreadable header ({e})")))?;
        (u32::try_from(size.width).unwrap_or(u32::MAX), u32::try_from(size.height).unwrap_or(u32::MAX))
    };
    if width == 0 || height == 0 {
        return Err(UploadError::Corrupt("zero width or height".into()));
    }
    // An animation counts every frame, each at the larger of the screen and its own rectangle
    // (read from the container, no pixel decoded): a frame reaching past a tiny screen is
    // decoded whole, so it costs what its rectangle says.
    let info = animation::info(bytes, format).map_err(|e| UploadError::Corrupt(e.to_string()))?;
    let frames = info.frames;
    if frames > limits.max_frames {
        return Err(UploadError::TooManyFrames { frames, limit: limits.max_frames });
    }
    let (extent, pixels) = (info.extent((width, height)), info.pixels((width, height)));
    if pixels > limits.max_pixels {
        let (width, height) = extent;
        return Err(UploadError::TooManyPixels { width, height, frames, pixels, limit: limits.max_pixels });
    }
    let probe = decode::probe(bytes, format).map_err(|e| UploadError::Corrupt(e.to_string()))?;
    let canvas = u64::from(extent.0) * u64::from(extent.1) * 4;
    let check = if frames > 1 { probe.check_bytes.max(canvas * u64::from(frames)) } else { probe.check_bytes };
    if check > limits.max_decode_bytes {
        return Err(UploadError::TooLarge { needed: check, limit: limits.max_decode_bytes });
    }
    // The decode of the working copies (at 1/2 where the format scales while it decodes), the
    // half-size image, and then at once: the half, its 1/3 and 1/4 reductions (4/9 and 1/4 of
    // it) and, for a JPEG copy of a decode that is not RGB already, the RGB copy the encoder
    // reads: 2.7 halves at most. Copies are a saving, never a condition: an original whose
    // copies would hold more than a decode may gets none.
    let copies = levels::wanted(bytes, format, (width, height), frames).map(|kind| {
        let half = u64::from(width.div_ceil(2)) * u64::from(height.div_ceil(2)) * kind.bytes_per_pixel();
        (kind, check.max(probe.bytes_at(2) + half * 2))
    });
    match copies.filter(|&(_, memory)| memory <= limits.max_decode_bytes) {
        Some((kind, memory)) => Ok(Header { format, memory, copies: Some(kind) }),
        None => Ok(Header { format, memory: check, copies: None }),
    }
}

/// The full check of an upload: header checks, then a complete decode that keeps as little
/// as the format allows (JPEG at 1/8 scale: every entropy-coded block is still read; PNG rows
/// and GIF frames streamed). CPU-heavy: run it on the worker pool.
///
/// # Errors
/// As [`check_header`], and `Corrupt` when decoding fails.
pub fn inspect(bytes: &[u8], limits: &Limits) -> Result<Inspected, UploadError> {
    let Header { format, copies, .. } = check_header(bytes, limits)?;
    // JPEG decoders fill a truncated scan with grey instead of failing; the end marker tells.
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(UploadError::Corrupt("JPEG data ends before its end-of-image marker".into()));
    }
    let checked = decode::check(bytes, format, limits.max_pixels).map_err(|e| UploadError::Corrupt(e.to_string()))?;
    // A JPEG the scaled decoder cannot read (CMYK, say) simply gets no copies.
    let levels = match copies {
        Some(kind) => levels::make(bytes, format, kind, limits.max_pixels).unwrap_or_default(),
        None => Vec::new(),
    };
    Ok(Inspected {
        format,
        width: checked.width,
        height: checked.height,
        has_alpha: checked.alpha,
        content_hash: blake3::hash(bytes).to_hex().to_string(),
        placeholder: Placeholder::of(&checked.preview),
        frames: checked.frames,
        levels,
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
    fn avif_is_taken_where_it_is_built() {
        let limits = crate::config::Config::embedded("/tmp").limits;
        let garbage = check_header(b"\0\0\0\x1cftypavif\0\0\0\0", &limits);
        if cfg!(feature = "aom") {
            assert!(matches!(garbage, Err(UploadError::Corrupt(_))), "{garbage:?}");
        } else {
            assert_eq!(garbage, Err(UploadError::Unsupported));
        }
    }
}
