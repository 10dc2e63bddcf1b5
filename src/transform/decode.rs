//! Decoding originals to 8-bit RGB(A), shrinking on load, and knowing beforehand what a decode
//! will hold in memory.
//!
//! - A JPEG that will be scaled down is decoded with DCT scaling (1/2, 1/4, 1/8) by libjpeg
//!   (mozjpeg), so a 12 MP photo headed for a 300 px thumbnail never exists at full size;
//!   full-size JPEGs go through zune-jpeg (SIMD without nasm); our own working copies through
//!   libjpeg at every scale ([`working_copy`]).
//! - PNG and GIF rows are streamed into an area-averaging shrinker ([`shrink`]), so a large PNG
//!   or a huge GIF screen headed for a thumbnail never exists at full size either.
//! - WebP stills decode straight to the scaled size with libwebp; animations go through
//!   image-webp, whole.
//! - AVIF (in a build with `--features aom`) decodes whole with libavif + libaom ([`avif`]),
//!   JPEG XL whole with jxl-oxide ([`jxl`]), HEIC whole with heic-rs ([`heic`]).
//!
//! [`probe`] reads only the header and says what a decode at a given scale holds at its peak
//! ([`Probe::bytes_at`]), at the depth the decoder really uses, so the pipeline can refuse or
//! wait before any pixel is decoded.

pub mod animation;
#[cfg(feature = "aom")]
pub mod avif;
pub mod gif;
pub mod heic;
pub mod heif;
pub mod jpeg;
pub mod jxl;
pub mod png;
pub mod shrink;
pub mod webp;

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use self::shrink::BoxShrink;
use super::PipelineError;
use crate::format::ImageFormat;
use crate::placeholder;

/// A decoded original, not yet oriented.
pub struct Decoded {
    /// Pixels as stored (before EXIF orientation), `Rgb8` or `Rgba8`.
    pub image: DynamicImage,
    /// EXIF orientation to apply.
    pub orientation: Orientation,
    /// Embedded ICC profile, if any.
    pub icc: Option<Vec<u8>>,
    /// DCT scale denominator used (1 = full size).
    pub scale: u32,
}

impl Decoded {
    /// Width and height once the EXIF orientation is applied.
    pub fn oriented_dimensions(&self) -> (u32, u32) {
        let (w, h) = (self.image.width(), self.image.height());
        if swaps_axes(self.orientation) {
            (h, w)
        } else {
            (w, h)
        }
    }

    /// Applies the EXIF orientation and returns the upright pixels.
    pub fn into_oriented(mut self) -> (DynamicImage, Option<Vec<u8>>, u32) {
        self.image.apply_orientation(self.orientation);
        (self.image, self.icc, self.scale)
    }
}

/// True for orientations that exchange width and height.
pub fn swaps_axes(o: Orientation) -> bool {
    matches!(
        o,
        Orientation::Rotate90 | Orientation::Rotate270 | Orientation::Rotate90FlipH | Orientation::Rotate270FlipH
    )
}

/// The DCT scale denominator (8, 4, 2 or 1) to use when the image may shrink by `max_shrink`.
pub fn dct_scale(max_shrink: u32) -> u32 {
    [8, 4, 2].into_iter().find(|&k| k <= max_shrink).unwrap_or(1)
}

/// The box factor for streamed formats when the image may shrink by `shrink`: the integer part
/// of half of it, so Lanczos still does at least a 2× reduction (as libvips' `gap`).
pub fn box_scale(shrink: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 1..=MAX_FACTOR
    let k = (shrink / 2.0).floor().clamp(1.0, f64::from(shrink::MAX_FACTOR)) as u32;
    k
}

/// How a format may shrink while it decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shrinks {
    /// DCT scaling (JPEG).
    Dct,
    /// Rows streamed into [`BoxShrink`] (non-interlaced PNG, GIF).
    Box,
    /// Not at all.
    Whole,
}

/// What decoding a file takes, read from its header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Stored width (before EXIF orientation).
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// Bytes per pixel of a whole decode's buffers, conversions included.
    whole: u64,
    /// Bytes held whatever the scale (progressive JPEG coefficients, an interlaced GIF frame).
    fixed: u64,
    shrinks: Shrinks,
    /// Bytes the upload check ([`check`]) holds.
    pub check_bytes: u64,
}

impl Probe {
    /// The scale a decode allowed to shrink by `shrink` on each side uses.
    pub fn scale(&self, shrink: f64) -> u32 {
        match self.shrinks {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 1..=8
            Shrinks::Dct => dct_scale(shrink.floor().clamp(1.0, 8.0) as u32),
            Shrinks::Box => box_scale(shrink),
            Shrinks::Whole => 1,
        }
    }

    /// How much each side may shrink for a preview of [`placeholder::SOURCE_SIDE`] pixels.
    fn preview_shrink(&self) -> f64 {
        f64::from(self.width.max(self.height)) / f64::from(placeholder::SOURCE_SIDE)
    }

    /// Bytes of pixel buffers a decode at scale `k` holds at its peak.
    pub fn bytes_at(&self, k: u32) -> u64 {
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        let pixels = match (self.shrinks, k) {
            (Shrinks::Box, 2..) => BoxShrink::footprint(self.width, self.height, k) + w * 8,
            (Shrinks::Dct, 2..) => w.div_ceil(u64::from(k)) * h.div_ceil(u64::from(k)) * 3,
            _ => w * h * self.whole,
        };
        pixels + self.fixed
    }
}

/// Reads what [`Probe`] needs from the header.
///
/// # Errors
/// [`PipelineError::Decode`] when the header cannot be read.
pub fn probe(bytes: &[u8], format: ImageFormat) -> Result<Probe, PipelineError> {
    let unreadable = |what: &str| PipelineError::Decode(format!("unreadable {what} header"));
    let probe = match format {
        ImageFormat::Jpeg => {
            let frame = jpeg::frame(bytes).ok_or_else(|| unreadable("JPEG"))?;
            // CMYK (4 components) goes through the whole decoder and a conversion.
            let whole = if frame.sampling.len() == 4 { 7 } else { 3 };
            let fixed = frame.coefficient_bytes();
            Probe { width: frame.width, height: frame.height, whole, fixed, shrinks: Shrinks::Dct, check_bytes: 0 }
        }
        ImageFormat::Png => {
            let header = png::header(bytes)?;
            let out = if header.alpha { 4 } else { 3 };
            // Gray decodes at its own width, then converts to RGB(A).
            let whole = u64::from(header.channels) + if header.channels < 3 { out } else { 0 };
            let shrinks = if header.interlaced { Shrinks::Whole } else { Shrinks::Box };
            Probe { width: header.width, height: header.height, whole, fixed: 0, shrinks, check_bytes: 0 }
        }
        ImageFormat::Gif => {
            let layout = gif::layout(bytes)?;
            let fixed = layout.interlaced_frame.map_or(0, |(w, h)| u64::from(w) * u64::from(h) * 4);
            // The check streams every frame's rows and keeps none.
            let check_bytes = u64::from(layout.width) * 8;
            Probe { width: layout.width, height: layout.height, whole: 4, fixed, shrinks: Shrinks::Box, check_bytes }
        }
        ImageFormat::Webp => {
            let f = webp::features(bytes)?;
            let (width, height) = (f.width, f.height);
            if f.animated {
                // libwebp's animation decoder: its canvas, the previous one, and our copy.
                let check_bytes = u64::from(width) * u64::from(height) * 12;
                Probe { width, height, whole: 8, fixed: 0, shrinks: Shrinks::Whole, check_bytes }
            } else {
                // libwebp scales while it decodes; a lossless image is still held whole as ARGB.
                let fixed = if f.lossless { u64::from(width) * u64::from(height) * 4 } else { u64::from(width) * 64 };
                Probe { width, height, whole: 4, fixed, shrinks: Shrinks::Box, check_bytes: 0 }
            }
        }
        #[cfg(feature = "aom")]
        ImageFormat::Avif => {
            let h = avif::header(bytes)?;
            let whole = h.bytes_per_pixel;
            Probe { width: h.width, height: h.height, whole, fixed: 0, shrinks: Shrinks::Whole, check_bytes: 0 }
        }
        #[cfg(not(feature = "aom"))]
        ImageFormat::Avif => return Err(not_built()),
        ImageFormat::Jxl => {
            // Upright already: the renderer applies the orientation.
            let h = jxl::header(bytes)?;
            let whole = h.bytes_per_pixel;
            Probe { width: h.width, height: h.height, whole, fixed: 0, shrinks: Shrinks::Whole, check_bytes: 0 }
        }
        ImageFormat::Heic => {
            let h = heic::header(bytes)?;
            let whole = h.bytes_per_pixel;
            Probe { width: h.width, height: h.height, whole, fixed: 0, shrinks: Shrinks::Whole, check_bytes: 0 }
        }
    };
    // The check also decodes the preview the placeholders are computed from.
    let preview = probe.bytes_at(probe.scale(probe.preview_shrink()));
    Ok(Probe { check_bytes: probe.check_bytes.max(preview), ..probe })
}

/// Decodes `bytes` of a known `format` at scale `k` (from [`Probe::scale`]): each side `k`
/// times smaller (rounded up); 1 decodes at full size.
///
/// # Errors
/// [`PipelineError::Decode`] for corrupt or truncated data, or more than `max_pixels`.
pub fn decode(bytes: &[u8], format: ImageFormat, k: u32, max_pixels: u64) -> Result<Decoded, PipelineError> {
    match format {
        ImageFormat::Png => return png::decode(bytes, k),
        ImageFormat::Gif => return gif::decode(bytes, k),
        ImageFormat::Webp => {
            if let Some(decoded) = webp::decode(bytes, k)? {
                return Ok(decoded);
            }
        }
        #[cfg(feature = "aom")]
        ImageFormat::Avif => return avif::decode(bytes, max_pixels),
        ImageFormat::Jxl => return jxl::decode(bytes, max_pixels),
        ImageFormat::Heic => return heic::decode(bytes, max_pixels),
        ImageFormat::Jpeg if k > 1 => {
            if let Some(decoded) = jpeg::decode_scaled(bytes, k, max_pixels) {
                return Ok(decoded);
            }
        }
        _ => {}
    }
    decode_full(bytes, format, max_pixels)
}

/// Decodes a working copy (see [`super::levels`]) at scale `k`. A JPEG copy with libjpeg at
/// every scale, whole ones included: the copies are baseline 4:4:4 JPEGs of our own, which
/// libjpeg with its SIMD decodes faster than zune-jpeg (the 1/2 copy of a 12 MP photo: 16.3
/// against 19.0 ms). A PNG copy as any PNG.
///
/// # Errors
/// As [`decode`], which decides when libjpeg cannot.
pub fn working_copy(bytes: &[u8], k: u32, max_pixels: u64) -> Result<Decoded, PipelineError> {
    if super::levels::Kind::of(bytes) == super::levels::Kind::Png {
        return decode(bytes, ImageFormat::Png, k, max_pixels);
    }
    match jpeg::decode_scaled(bytes, k, max_pixels) {
        Some(decoded) => Ok(decoded),
        None => decode(bytes, ImageFormat::Jpeg, k, max_pixels),
    }
}

/// What the upload check learned from decoding a file completely.
pub struct Checked {
    /// Width once EXIF orientation is applied.
    pub width: u32,
    /// Height once EXIF orientation is applied.
    pub height: u32,
    /// Whether the pixels have an alpha channel.
    pub alpha: bool,
    /// The upright image, about [`placeholder::SOURCE_SIDE`] pixels on its long side (never
    /// enlarged), for placeholders.
    pub preview: DynamicImage,
    /// Number of frames (1 for a still).
    pub frames: u32,
}

/// Decodes the whole file while keeping as little as the format allows — a JPEG, WebP or PNG
/// straight to a preview of about [`placeholder::SOURCE_SIDE`] pixels (every entropy-coded block
/// and every row is still read), every GIF frame streamed and dropped — and returns the upright
/// size and the preview.
///
/// # Errors
/// [`PipelineError::Decode`] for corrupt or truncated data.
pub fn check(bytes: &[u8], format: ImageFormat, max_pixels: u64) -> Result<Checked, PipelineError> {
    let probe = probe(bytes, format)?;
    // The preview reads the first frame only: read them all first.
    let frames = match format {
        ImageFormat::Gif => gif::check(bytes)?.2,
        ImageFormat::Webp if animation::info(bytes, format)?.is_animated() => {
            let mut frames = 0u32;
            for frame in animation::frames(bytes, format, max_pixels.saturating_mul(4))? {
                frame?;
                frames = frames.saturating_add(1);
            }
            frames
        }
        _ => 1,
    };
    let decoded = decode(bytes, format, probe.scale(probe.preview_shrink()), max_pixels)?;
    let alpha = format == ImageFormat::Gif || decoded.image.color().has_alpha();
    let (width, height) =
        if swaps_axes(decoded.orientation) { (probe.height, probe.width) } else { (probe.width, probe.height) };
    let (preview, _, _) = decoded.into_oriented();
    Ok(Checked { width, height, alpha, preview, frames })
}

fn decode_full(bytes: &[u8], format: ImageFormat, max_pixels: u64) -> Result<Decoded, PipelineError> {
    let image_format = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Avif => return Err(not_built()),
        ImageFormat::Jxl => return jxl::decode(bytes, max_pixels),
        ImageFormat::Heic => return heic::decode(bytes, max_pixels),
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut limits = Limits::default();
    // Room for the widest intermediate buffers: 16-bit RGBA plus the 8-bit copy.
    limits.max_alloc = Some(max_pixels.saturating_mul(12).max(64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(decode_error)?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(PipelineError::Decode(format!("{w}x{h} is more pixels than allowed")));
    }
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
    let image = if image.color().has_alpha() {
        match image {
            DynamicImage::ImageRgba8(_) => image,
            other => DynamicImage::ImageRgba8(other.into_rgba8()),
        }
    } else {
        match image {
            DynamicImage::ImageRgb8(_) => image,
            other => DynamicImage::ImageRgb8(other.into_rgb8()),
        }
    };
    Ok(Decoded { image, orientation, icc, scale: 1 })
}

fn not_built() -> PipelineError {
    PipelineError::Decode("AVIF decoding is not in this build (it needs --features aom)".into())
}

fn decode_error(e: image::ImageError) -> PipelineError {
    PipelineError::Decode(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dct_scale_rounds_down_to_a_supported_factor() {
        assert_eq!(dct_scale(8), 8);
        assert_eq!(dct_scale(6), 4);
        assert_eq!(dct_scale(3), 2);
        assert_eq!(dct_scale(1), 1);
        assert_eq!(dct_scale(0), 1);
    }

    #[test]
    fn garbage_is_a_decode_error() {
        let err = decode(b"\xFF\xD8\xFF\xE0garbage", ImageFormat::Jpeg, 1, 1 << 20).err().unwrap();
        assert!(matches!(err, PipelineError::Decode(_)));
    }
}
