//! Decoding originals to 8-bit RGB(A), with shrink-on-load for JPEG.
//!
//! A JPEG that will be scaled down is decoded with DCT scaling (1/2, 1/4, 1/8) by libjpeg
//! (mozjpeg), so a 12 MP photo headed for a 300 px thumbnail never exists at full size. Full-size
//! JPEGs go through zune-jpeg (SIMD without nasm) unless the `nasm` feature gives libjpeg its
//! SIMD too; everything else goes through the `image` crate (png, image-webp, gif).

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageReader, Limits};

use super::PipelineError;
use crate::format::ImageFormat;

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

/// Decodes `bytes` of a known `format`. A JPEG may come out up to `max_shrink` times smaller
/// on each axis (rounded down to 1/2, 1/4 or 1/8); 1 decodes at full size.
///
/// # Errors
/// [`PipelineError::Decode`] for corrupt or truncated data, or more than `max_pixels`.
pub fn decode(bytes: &[u8], format: ImageFormat, max_shrink: u32, max_pixels: u64) -> Result<Decoded, PipelineError> {
    let k = dct_scale(max_shrink);
    if format == ImageFormat::Jpeg && k > 1 {
        if let Some(decoded) = decode_jpeg_scaled(bytes, k, max_pixels) {
            return Ok(decoded);
        }
    }
    decode_full(bytes, format, max_pixels)
}

/// DCT-scaled JPEG decode with libjpeg; `None` when this decoder cannot handle the file (CMYK,
/// a libjpeg error), so the full decoder decides.
fn decode_jpeg_scaled(bytes: &[u8], k: u32, max_pixels: u64) -> Option<Decoded> {
    // libjpeg reports errors by panicking through the C frames (mozjpeg-sys `unwinding`).
    std::panic::catch_unwind(|| {
        let markers = [mozjpeg::Marker::APP(1), mozjpeg::Marker::APP(2)];
        let mut jpeg = mozjpeg::Decompress::with_markers(&markers).from_mem(bytes).ok()?;
        let (w, h) = (jpeg.width() as u64, jpeg.height() as u64);
        let rgb_source = matches!(
            jpeg.color_space(),
            mozjpeg_sys::J_COLOR_SPACE::JCS_YCbCr
                | mozjpeg_sys::J_COLOR_SPACE::JCS_RGB
                | mozjpeg_sys::J_COLOR_SPACE::JCS_GRAYSCALE
        );
        if w * h > max_pixels || !rgb_source {
            return None;
        }
        let mut orientation = Orientation::NoTransforms;
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        for marker in jpeg.markers() {
            if let Some(exif) = marker.data.strip_prefix(b"Exif\0\0") {
                orientation = Orientation::from_exif_chunk(exif).unwrap_or(orientation);
            } else if let Some([seq, _count, data @ ..]) = marker.data.strip_prefix(b"ICC_PROFILE\0") {
                icc_chunks.push((*seq, data));
            }
        }
        icc_chunks.sort_by_key(|(seq, _)| *seq);
        let icc = (!icc_chunks.is_empty()).then(|| icc_chunks.iter().flat_map(|(_, d)| d.iter().copied()).collect());
        // libjpeg scales by numerator/8.
        jpeg.scale(u8::try_from(8 / k).ok()?);
        let mut started = jpeg.rgb().ok()?;
        let (w, h) = (u32::try_from(started.width()).ok()?, u32::try_from(started.height()).ok()?);
        let pixels = started.read_scanlines::<u8>().ok()?;
        started.finish().ok()?;
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels)?);
        Some(Decoded { image, orientation, icc, scale: k })
    })
    .ok()
    .flatten()
}

fn decode_full(bytes: &[u8], format: ImageFormat, max_pixels: u64) -> Result<Decoded, PipelineError> {
    let image_format = match format {
        ImageFormat::Jpeg => image::ImageFormat::Jpeg,
        ImageFormat::Png => image::ImageFormat::Png,
        ImageFormat::Webp => image::ImageFormat::WebP,
        ImageFormat::Gif => image::ImageFormat::Gif,
        ImageFormat::Avif => return Err(PipelineError::Decode("AVIF decoding is not built".into())),
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
