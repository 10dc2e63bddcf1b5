//! Encoders. Every output is written from pixels alone, so no metadata (EXIF, GPS, XMP,
//! comments, ICC) survives: pixels are already sRGB by then.

use std::borrow::Cow;

use image::codecs::gif::GifEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{DynamicImage, ExtendedColorType, ImageEncoder, RgbImage};

use super::quality::Quality;
use super::PipelineError;
use crate::format::ImageFormat;

pub mod animation;
pub mod auto;
pub mod avif;
pub mod jpeg;
#[cfg(feature = "libjxl")]
pub mod jxl;

/// Encoder settings.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Output format.
    pub format: ImageFormat,
    /// Quality for lossy formats: 1–100, or `q_auto`'s level.
    pub quality: Option<Quality>,
    /// Colour alpha is flattened onto for formats without alpha.
    pub background: [u8; 3],
    /// AVIF encoder speed, 1 (small, slow) to 10 (fast).
    pub avif_speed: u8,
}

/// Refuses a `size` the `format` cannot hold. The plan refuses such outputs before any decode
/// ([`crate::transform::OpsError::TooLargeForFormat`]); this keeps the encoders safe on their own.
///
/// # Errors
/// [`PipelineError::Encode`] naming the format's limit.
pub fn check_size(format: ImageFormat, size: (u32, u32)) -> Result<(), PipelineError> {
    if format.holds(size) {
        Ok(())
    } else {
        Err(PipelineError::Encode(format!("{format} supports at most {} px per side", format.max_side())))
    }
}

/// Encodes `img` (`Rgb8` or `Rgba8`).
///
/// # Errors
/// [`PipelineError::Encode`] when the encoder refuses (e.g. too large for the format).
pub fn encode(img: &DynamicImage, settings: &Settings) -> Result<Vec<u8>, PipelineError> {
    check_size(settings.format, (img.width(), img.height()))?;
    match settings.quality {
        Some(Quality::Auto(level)) => auto::encode(img, settings, level),
        Some(Quality::Fixed(q)) => encode_at(img, settings, q),
        None => encode_at(img, settings, 80),
    }
}

/// Encodes `img` at `quality` 1–100 (for lossy formats; the others ignore it).
///
/// # Errors
/// As [`encode`].
pub fn encode_at(img: &DynamicImage, settings: &Settings, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let (w, h) = (img.width(), img.height());
    let quality = quality.clamp(1, 100);
    let mut out = Vec::new();
    match settings.format {
        ImageFormat::Jpeg => {
            let rgb = flatten(img, settings.background);
            out = jpeg::encode(rgb.as_raw(), w, h, quality, jpeg::Chroma::Half)?;
        }
        ImageFormat::Png => out = png(img)?,
        ImageFormat::Webp => {
            // `encode_simple`, not `encode`: the latter unwraps libwebp's errors into a panic.
            let memory = match img {
                DynamicImage::ImageRgba8(buf) => {
                    webp::Encoder::from_rgba(buf.as_raw(), w, h).encode_simple(false, f32::from(quality))
                }
                other => webp::Encoder::from_rgb(&flatten(other, settings.background), w, h)
                    .encode_simple(false, f32::from(quality)),
            }
            .map_err(|e| PipelineError::Encode(format!("libwebp: {e:?}")))?;
            if memory.is_empty() {
                return Err(PipelineError::Encode("libwebp produced no output".into()));
            }
            out.extend_from_slice(&memory);
        }
        ImageFormat::Gif => {
            let rgba = img.to_rgba8();
            let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
            encoder.encode(rgba.as_raw(), w, h, ExtendedColorType::Rgba8).map_err(encode_error)?;
        }
        ImageFormat::Avif => out = avif::encode(img, quality, settings.avif_speed)?,
        #[cfg(feature = "libjxl")]
        ImageFormat::Jxl => out = jxl::encode(img, quality)?,
        #[cfg(not(feature = "libjxl"))]
        ImageFormat::Jxl => return Err(PipelineError::Encode("JPEG XL output is not built (feature `libjxl`)".into())),
        ImageFormat::Heic => return Err(PipelineError::Encode("HEIC is an input format only".into())),
    }
    Ok(out)
}

/// The image as RGB, alpha composited over `background`: borrowed when it is RGB already (the
/// encoders only read it), so an opaque output is not copied once more before it is encoded.
pub fn flatten(img: &DynamicImage, background: [u8; 3]) -> Cow<'_, RgbImage> {
    match img {
        DynamicImage::ImageRgb8(buf) => Cow::Borrowed(buf),
        DynamicImage::ImageRgba8(buf) => {
            let mut rgb = RgbImage::new(buf.width(), buf.height());
            for (dst, src) in rgb.pixels_mut().zip(buf.pixels()) {
                let a = u32::from(src[3]);
                for c in 0..3 {
                    let v = (u32::from(src[c]) * a + u32::from(background[c]) * (255 - a) + 127) / 255;
                    dst[c] = u8::try_from(v).unwrap_or(u8::MAX);
                }
            }
            Cow::Owned(rgb)
        }
        other => Cow::Owned(other.to_rgb8()),
    }
}

/// Where fdeflate leaves more than this share of the raw bytes, a PNG output is also tried with
/// zlib (see [`png`]).
const PNG_RETRY_SHARE: f64 = 0.5;

/// A PNG output: fdeflate's fast mode first; where that keeps more than [`PNG_RETRY_SHARE`] of
/// the raw bytes — photographic pixels, where its fixed codes lose to zlib's dynamic ones — zlib
/// at level 1 as well, and the smaller is kept. A 512 px photo: 361,037 B in 1.1 ms, then
/// 343,790 B in 4.2 ms more; a 300 px cut-out with flat transparent areas compresses to 38 % and
/// stays fdeflate's (102,868 B, where zlib 1 gives 115,750).
fn png(img: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    let fast = png_with(img, CompressionType::Fast)?;
    let (bytes, _) = raw(img);
    if (fast.len() as f64) <= bytes.len() as f64 * PNG_RETRY_SHARE {
        return Ok(fast);
    }
    let zlib = png_with(img, CompressionType::Level(1))?;
    Ok(if zlib.len() < fast.len() { zlib } else { fast })
}

/// A PNG in fdeflate's fast mode, whose streams also inflate fastest: for working copies.
///
/// # Errors
/// `Encode` when the encoder refuses.
pub fn png_fast(img: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    png_with(img, CompressionType::Fast)
}

fn png_with(img: &DynamicImage, compression: CompressionType) -> Result<Vec<u8>, PipelineError> {
    let mut out = Vec::new();
    let encoder = PngEncoder::new_with_quality(&mut out, compression, FilterType::Adaptive);
    let (bytes, color) = raw(img);
    encoder.write_image(bytes, img.width(), img.height(), color).map_err(encode_error)?;
    Ok(out)
}

fn raw(img: &DynamicImage) -> (&[u8], ExtendedColorType) {
    match img {
        DynamicImage::ImageRgba8(buf) => (buf.as_raw(), ExtendedColorType::Rgba8),
        DynamicImage::ImageRgb8(buf) => (buf.as_raw(), ExtendedColorType::Rgb8),
        other => (other.as_bytes(), other.color().into()),
    }
}

fn encode_error(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(alpha: bool) -> DynamicImage {
        let img = image::RgbaImage::from_fn(64, 48, |x, y| {
            image::Rgba([u8::try_from(x * 4).unwrap(), u8::try_from(y * 5).unwrap(), 90, if alpha { 128 } else { 255 }])
        });
        if alpha {
            DynamicImage::ImageRgba8(img)
        } else {
            DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(img).into_rgb8())
        }
    }

    #[test]
    fn every_format_round_trips_with_its_size() {
        for format in [ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp, ImageFormat::Gif, ImageFormat::Avif] {
            let settings = Settings { format, quality: Some(Quality::Fixed(70)), background: [255; 3], avif_speed: 10 };
            let bytes = encode(&sample(false), &settings).unwrap();
            assert_eq!(ImageFormat::sniff(&bytes), Some(format));
            let size = imagesize::blob_size(&bytes).unwrap();
            assert_eq!((size.width, size.height), (64, 48), "{format}");
        }
    }

    #[test]
    fn alpha_flattens_onto_the_background_for_jpeg() {
        let half_red = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(1, 1, image::Rgba([255, 0, 0, 128])));
        assert_eq!(flatten(&half_red, [0, 0, 255]).get_pixel(0, 0).0, [128, 0, 127]);
    }

    #[test]
    fn png_outputs_of_photographic_pixels_take_zlib_where_it_is_smaller() {
        // Noise over a gradient: fdeflate keeps more than half of it; zlib's codes do better.
        let mut seed = 7u32;
        let photo = DynamicImage::ImageRgb8(image::RgbImage::from_fn(256, 192, |x, y| {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let n = (seed >> 27) as u8;
            image::Rgb([(x as u8 / 2).wrapping_add(n), (y as u8).wrapping_add(n / 2), 90u8.wrapping_add(n)])
        }));
        let fast = png_fast(&photo).unwrap();
        assert!(fast.len() as f64 > 256.0 * 192.0 * 3.0 * PNG_RETRY_SHARE, "{} bytes", fast.len());
        let out = png(&photo).unwrap();
        assert!(out.len() < fast.len(), "{} bytes, fdeflate {}", out.len(), fast.len());
        assert_eq!(image::load_from_memory(&out).unwrap().to_rgb8(), photo.to_rgb8(), "lossless");
        // Flat areas stay fdeflate's, byte for byte.
        let flat = sample(true);
        assert_eq!(png(&flat).unwrap(), png_fast(&flat).unwrap());
    }

    #[test]
    fn png_keeps_alpha() {
        let settings = Settings { format: ImageFormat::Png, quality: None, background: [255; 3], avif_speed: 10 };
        let bytes = encode(&sample(true), &settings).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert!(decoded.color().has_alpha());
    }
}
