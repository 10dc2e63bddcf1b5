//! Working copies of large lossy originals (JPEG, and lossy WebP, AVIF, JPEG XL and HEIC
//! stills without alpha):
//! the original at 1/2, 1/3 and 1/4 of its size, upright and in sRGB, kept as JPEG q95 4:4:4
//! beside it. A variant is decoded from the smallest copy that is still [`HEADROOM`] times its
//! size on each side (the copy at 1/f stands in for the original wherever the output is at least
//! 1.1 f times smaller), so the entropy decode of a 12 MP photo is paid once, at upload, not
//! once per variant. A JPEG copy decodes several times faster than a WebP or AVIF of the same
//! pixels, and the copies are decoded by libjpeg, which is faster than zune-jpeg on them.
//!
//! The rule never upsamples; the copy's extra loss is one q95 generation and one more Lanczos
//! pass, which the headroom keeps small (README, "Performance"). Lossless and transparent
//! originals (PNG, GIF, lossless WebP, alpha) get none: a JPEG copy would lose what they are
//! kept for.

use image::DynamicImage;

use super::decode;
use super::resize;
use super::PipelineError;
use crate::format::ImageFormat;

/// The scale factors of the copies, smallest reduction first.
pub const FACTORS: [u32; 3] = [2, 3, 4];

/// How much larger than the output, on each side, a copy should be. With none, an output a
/// few percent smaller than a copy is a sub-pixel resample of a q95 JPEG, which blurs it: from
/// the 1/3 copy of a 12 MP photo, SSIM against a Lanczos resize of the original is 0.984 at
/// 1.03× and 0.988 at 1.11×, where the 1/2 copy gives 0.994 and 0.995.
pub const HEADROOM: f64 = 1.1;

/// The [`mask`]s earlier versions recorded, before the copy at 1/3: the start-up backfill makes
/// such an original's copies again (see `Images::backfill`). Until it has, the rule serves
/// them from the copies they have.
pub const EARLIER_MASKS: [u32; 1] = [(1 << 2) | (1 << 4)];

/// Originals with fewer pixels get no copies: their decode is cheap already.
pub const MIN_PIXELS: u64 = 1_500_000;

/// JPEG quality of the copies.
const QUALITY: u8 = 95;

/// One working copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The original is `factor` times larger on each side.
    pub factor: u32,
    /// The copy, a JPEG.
    pub bytes: Vec<u8>,
}

/// True when an original of `format` and upright `size` gets working copies: large enough,
/// lossy, a still, and opaque (read from the header alone).
pub fn wanted(bytes: &[u8], format: ImageFormat, (width, height): (u32, u32)) -> bool {
    if u64::from(width) * u64::from(height) < MIN_PIXELS {
        return false;
    }
    match format {
        ImageFormat::Jpeg => true,
        ImageFormat::Webp => decode::webp::features(bytes).is_ok_and(|f| !f.alpha && !f.lossless && !f.animated),
        #[cfg(feature = "aom")]
        ImageFormat::Avif => decode::avif::header(bytes).is_ok_and(|h| !h.alpha),
        ImageFormat::Jxl => decode::jxl::header(bytes).is_ok_and(|h| !h.alpha && h.lossy),
        ImageFormat::Heic => decode::heic::header(bytes).is_ok_and(|h| !h.alpha),
        _ => false,
    }
}

/// The bitmask recorded for `levels`: bit `f` set for each factor present.
pub fn mask(levels: &[Level]) -> u32 {
    levels.iter().fold(0, |m, l| m | (1 << l.factor))
}

/// The copy to decode a variant from, for a reduction of `shrink` on each side: the largest
/// factor of `available` (a [`mask`]) whose copy is at least [`HEADROOM`] times the output;
/// else the largest that is at least the output's size (a copy is never upsampled); else 1,
/// the original.
pub fn choose(available: u32, shrink: f64) -> u32 {
    let largest = |headroom: f64| {
        FACTORS.into_iter().filter(|&f| available & (1 << f) != 0 && f64::from(f) * headroom <= shrink).max()
    };
    largest(HEADROOM).or_else(|| largest(1.0)).unwrap_or(1)
}

/// The working copies of an original of `format`: one decode at 1/2 (a JPEG DCT-scaled, a WebP
/// scaled by libwebp while it decodes, an AVIF whole and then halved with Lanczos), oriented
/// and converted to sRGB, encoded; then reduced to 2/3 and to 1/2 of that with Lanczos and
/// encoded again. CPU-heavy: run it on the worker pool.
///
/// # Errors
/// [`PipelineError::Decode`] when the original cannot be decoded (a JPEG: at 1/2), `Encode`
/// when the encoder refuses.
pub fn make(original: &[u8], format: ImageFormat, max_pixels: u64) -> Result<Vec<Level>, PipelineError> {
    let decoded = if format == ImageFormat::Jpeg {
        decode::jpeg::decode_scaled(original, 2, max_pixels)
            .ok_or_else(|| PipelineError::Decode("this JPEG cannot be decoded at half size".into()))?
    } else {
        decode::decode(original, format, 2, max_pixels)?
    };
    let (mut half, icc, scale) = decoded.into_oriented();
    if scale < 2 {
        half = resize::resize(&half, None, (half.width().div_ceil(2), half.height().div_ceil(2)))?;
    }
    if let Some(icc) = icc {
        super::color::to_srgb(&mut half, &icc);
    }
    let third = resize::resize(&half, None, ((2 * half.width()).div_ceil(3), (2 * half.height()).div_ceil(3)))?;
    let quarter = resize::resize(&half, None, (half.width().div_ceil(2), half.height().div_ceil(2)))?;
    Ok(vec![
        Level { factor: 2, bytes: encode(&half)? },
        Level { factor: 3, bytes: encode(&third)? },
        Level { factor: 4, bytes: encode(&quarter)? },
    ])
}

fn encode(img: &DynamicImage) -> Result<Vec<u8>, PipelineError> {
    // Copies are of opaque originals: nothing to composite, and RGB pixels are read in place.
    let rgb = super::encode::flatten(img, [255; 3]);
    super::encode::jpeg::encode(rgb.as_raw(), rgb.width(), rgb.height(), QUALITY, super::encode::jpeg::Chroma::Full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_copy_chosen_has_headroom_and_is_never_upsampled() {
        let all = (1 << 2) | (1 << 3) | (1 << 4);
        // A 4000 px photo to 300 px: the 1/4 copy, decoded at 1/2.
        assert_eq!(choose(all, 4000.0 / 300.0), 4);
        // To 1200 px: the 1/3 copy (1334 px) is 1.11 times the output.
        assert_eq!(choose(all, 4000.0 / 1200.0), 3);
        // To 1000 and to 1300 px: the 1/4 and the 1/3 copy would have no headroom.
        assert_eq!(choose(all, 4.0), 3);
        assert_eq!(choose(all, 4000.0 / 1300.0), 2);
        // To 1900 px: no copy has the headroom; the 1/2 one is still larger than the output.
        assert_eq!(choose(all, 4000.0 / 1900.0), 2);
        assert_eq!(choose(all, 1.9), 1, "every copy would be upsampled: the original");
        assert_eq!(choose((1 << 2) | (1 << 4), 3.5), 2, "an image uploaded before the 1/3 copy");
        assert_eq!(choose(1 << 2, 20.0), 2, "only the copies there are");
        assert_eq!(choose(0, 20.0), 1);
    }

    #[test]
    fn copies_are_upright_halves_and_quarters() {
        let img = image::RgbImage::from_fn(1600, 1000, |x, y| image::Rgb([(x / 7) as u8, (y / 5) as u8, 90]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90).encode_image(&img).unwrap();
        let levels = make(&jpeg, ImageFormat::Jpeg, 1 << 30).unwrap();
        let sizes: Vec<_> = levels
            .iter()
            .map(|l| (l.factor, image::load_from_memory(&l.bytes).unwrap().to_rgb8().dimensions()))
            .collect();
        assert_eq!(sizes, vec![(2, (800, 500)), (3, (534, 334)), (4, (400, 250))]);
        assert_eq!(mask(&levels), 0b11100);
        assert!(wanted(&jpeg, ImageFormat::Jpeg, (1600, 1000)) && !wanted(&jpeg, ImageFormat::Jpeg, (1000, 1000)));
    }
}
