//! Working copies of large originals: the original at 1/2, 1/3 and 1/4 of its size, upright
//! and in sRGB, kept beside it. A variant is decoded from the smallest copy that is still
//! [`HEADROOM`] times its size on each side (the copy at 1/f stands in for the original wherever
//! the output is at least 1.1 f times smaller), so the expensive decode of a large original is
//! paid once, at upload, not once per variant.
//!
//! Two [`Kind`]s of copy:
//! - lossy opaque stills (JPEG, and lossy WebP, AVIF, JPEG XL and HEIC without alpha) get JPEG
//!   q95 4:4:4 copies. A JPEG copy decodes several times faster than a WebP or AVIF of the same
//!   pixels, and the copies are decoded by libjpeg, which is faster than zune-jpeg on them;
//! - lossless or transparent stills (PNG, lossless or transparent WebP, AVIF, JPEG XL and HEIC
//!   with alpha) get PNG copies, which keep their alpha and add no loss of their own. A PNG has
//!   no scaled decode (JPEG's DCT scaling): every pixel of the original is inflated and
//!   unfiltered for every variant, so the copies pay from a smaller size on
//!   ([`Kind::min_pixels`]).
//!
//! The rule never upsamples; the copy's extra loss is one more Lanczos pass (and, for a JPEG
//! copy, one q95 generation), which the headroom keeps small (README, "Performance").
//! Animations get none.

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

/// JPEG quality of the copies of lossy originals.
const QUALITY: u8 = 95;

/// What the copies of an original are kept as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// JPEG q95 4:4:4, for lossy opaque originals.
    Jpeg,
    /// PNG (fdeflate's fast mode, adaptive filters: its streams inflate fastest), for lossless
    /// or transparent originals.
    Png,
}

impl Kind {
    /// Originals with fewer pixels get no copies: their decode is cheap already. A lossy
    /// original is decoded DCT-scaled (JPEG) or is rarely smaller than this; a PNG of 1024×768
    /// takes 6.6 ms to decode whole here, its copy at 1/2 1.2 ms.
    pub const fn min_pixels(self) -> u64 {
        match self {
            Self::Jpeg => 1_500_000,
            Self::Png => 500_000,
        }
    }

    /// Bytes per pixel of the images this kind's copies are made from: RGB for the JPEG copies
    /// of opaque originals, RGBA at most for the PNG ones.
    pub const fn bytes_per_pixel(self) -> u64 {
        match self {
            Self::Jpeg => 3,
            Self::Png => 4,
        }
    }

    /// The kind of the copy `bytes` (a working copy, by its signature).
    pub fn of(bytes: &[u8]) -> Self {
        if ImageFormat::sniff(bytes) == Some(ImageFormat::Png) {
            Self::Png
        } else {
            Self::Jpeg
        }
    }

    /// The format of this kind's copies.
    pub const fn format(self) -> ImageFormat {
        match self {
            Self::Jpeg => ImageFormat::Jpeg,
            Self::Png => ImageFormat::Png,
        }
    }
}

/// One working copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Level {
    /// The original is `factor` times larger on each side.
    pub factor: u32,
    /// What the copy is.
    pub kind: Kind,
    /// The copy, encoded.
    pub bytes: Vec<u8>,
}

/// The kind of working copies an original of `format`, upright `size` and `frames` frames gets,
/// read from the header alone: none for animations and for originals smaller than the kind's
/// [`Kind::min_pixels`].
pub fn wanted(bytes: &[u8], format: ImageFormat, (width, height): (u32, u32), frames: u32) -> Option<Kind> {
    let lossless = |yes: bool| if yes { Kind::Png } else { Kind::Jpeg };
    if frames > 1 {
        return None;
    }
    let kind = match format {
        ImageFormat::Jpeg => Kind::Jpeg,
        ImageFormat::Png => Kind::Png,
        ImageFormat::Webp => {
            let features = decode::webp::features(bytes).ok().filter(|f| !f.animated)?;
            lossless(features.alpha || features.lossless)
        }
        #[cfg(feature = "aom")]
        ImageFormat::Avif => lossless(decode::avif::header(bytes).ok()?.alpha),
        ImageFormat::Jxl => decode::jxl::header(bytes).map(|h| lossless(h.alpha || !h.lossy)).ok()?,
        ImageFormat::Heic => lossless(decode::heic::header(bytes).ok()?.alpha),
        _ => return None,
    };
    (u64::from(width) * u64::from(height) >= kind.min_pixels()).then_some(kind)
}

/// The bitmask recorded for `levels`: bit `f` set for each factor present.
pub fn mask(levels: &[Level]) -> u32 {
    levels.iter().fold(0, |m, l| m | (1 << l.factor))
}

/// The factors whose copies a [`mask`] records.
pub fn factors(mask: u32) -> impl Iterator<Item = u32> {
    FACTORS.into_iter().filter(move |&f| mask & (1 << f) != 0)
}

/// The bytes `levels` take in the store (counted in their owner's storage).
pub fn bytes(levels: &[Level]) -> u64 {
    levels.iter().map(|l| l.bytes.len() as u64).sum()
}

/// The copy to decode a variant from, for a reduction of `shrink` on each side: the largest
/// factor of `available` (a [`mask`]) whose copy is at least [`HEADROOM`] times the output;
/// else the largest that is at least the output's size (a copy is never upsampled); else 1,
/// the original.
pub fn choose(available: u32, shrink: f64) -> u32 {
    let largest = |headroom: f64| factors(available).filter(|&f| f64::from(f) * headroom <= shrink).max();
    largest(HEADROOM).or_else(|| largest(1.0)).unwrap_or(1)
}

/// The working copies of `kind` of an original of `format`: one decode at 1/2 (a JPEG
/// DCT-scaled, a PNG averaged 2 × 2 while its rows are read, a WebP scaled by libwebp while it
/// decodes; an AVIF whole and then halved with Lanczos), oriented and converted to sRGB,
/// encoded; then reduced to 2/3 and to 1/2 of that with Lanczos and encoded again. CPU-heavy:
/// run it on the worker pool.
///
/// # Errors
/// [`PipelineError::Decode`] when the original cannot be decoded (a JPEG: at 1/2), `Encode`
/// when the encoder refuses.
pub fn make(original: &[u8], format: ImageFormat, kind: Kind, max_pixels: u64) -> Result<Vec<Level>, PipelineError> {
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
    let level = |factor, img| Ok::<_, PipelineError>(Level { factor, kind, bytes: encode(img, kind)? });
    Ok(vec![level(2, &half)?, level(3, &third)?, level(4, &quarter)?])
}

fn encode(img: &DynamicImage, kind: Kind) -> Result<Vec<u8>, PipelineError> {
    match kind {
        Kind::Jpeg => {
            // JPEG copies are of opaque originals: nothing to composite, and RGB pixels are
            // read in place.
            let rgb = super::encode::flatten(img, [255; 3]);
            super::encode::jpeg::encode(
                rgb.as_raw(),
                rgb.width(),
                rgb.height(),
                QUALITY,
                super::encode::jpeg::Chroma::Full,
            )
        }
        Kind::Png => super::encode::png_fast(img),
    }
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
        let levels = make(&jpeg, ImageFormat::Jpeg, Kind::Jpeg, 1 << 30).unwrap();
        let sizes: Vec<_> = levels
            .iter()
            .map(|l| (l.factor, image::load_from_memory(&l.bytes).unwrap().to_rgb8().dimensions()))
            .collect();
        assert_eq!(sizes, vec![(2, (800, 500)), (3, (534, 334)), (4, (400, 250))]);
        assert_eq!(mask(&levels), 0b11100);
        assert!(levels.iter().all(|l| l.kind == Kind::Jpeg && Kind::of(&l.bytes) == Kind::Jpeg));
        assert_eq!(wanted(&jpeg, ImageFormat::Jpeg, (1600, 1000), 1), Some(Kind::Jpeg));
        assert_eq!(wanted(&jpeg, ImageFormat::Jpeg, (1000, 1000), 1), None, "1 MP: decoded DCT-scaled instead");
    }

    #[test]
    fn a_transparent_png_gets_png_copies_that_keep_its_alpha() {
        // Opaque red on the left half, fully transparent on the right.
        let img = image::RgbaImage::from_fn(1000, 600, |x, _| {
            if x < 500 {
                image::Rgba([220, 20, 20, 255])
            } else {
                image::Rgba([0, 0, 0, 0])
            }
        });
        let mut png = std::io::Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img).write_to(&mut png, image::ImageFormat::Png).unwrap();
        let png = png.into_inner();
        assert_eq!(wanted(&png, ImageFormat::Png, (1000, 600), 1), Some(Kind::Png));
        assert_eq!(wanted(&png, ImageFormat::Png, (1000, 600), 12), None, "an animation");
        assert_eq!(wanted(&png, ImageFormat::Png, (700, 600), 1), None, "0.42 MP");
        let levels = make(&png, ImageFormat::Png, Kind::Png, 1 << 30).unwrap();
        let sizes: Vec<_> = levels.iter().map(|l| (l.factor, l.kind, Kind::of(&l.bytes))).collect();
        assert_eq!(sizes, [2, 3, 4].map(|f| (f, Kind::Png, Kind::Png)));
        let third = image::load_from_memory(&levels[1].bytes).unwrap().to_rgba8();
        assert_eq!(third.dimensions(), (334, 200));
        assert_eq!(third.get_pixel(40, 100).0, [220, 20, 20, 255]);
        assert_eq!(third.get_pixel(300, 100).0[3], 0, "transparent stays transparent");
    }
}
