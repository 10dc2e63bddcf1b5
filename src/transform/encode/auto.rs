//! `q_auto`: per variant, the lowest encoder quality whose output reaches the level's
//! SSIMULACRA2 score ([`AutoLevel::target`]) against the pixels it was encoded from.
//!
//! - The score is measured with fast-ssim2 (BSD, SIMD) on the whole output, decoded by our own
//!   decoders. An output of more than [`SEARCH_PIXELS`]`.0` pixels is searched on a reduction
//!   of itself ([`search_pixels`]: half its size, between the two bounds), and the quality
//!   found there is used at full size. On the README's corpus a rung found at half size scores
//!   within about 2 points (sd) of the level at full size, at a quarter size 3–5, and a sample
//!   of tiles strayed by 8–10: SSIMULACRA2 pools over the whole picture, at six scales.
//! - The search is a binary search over a ladder of eight qualities per format ([`ladder`]):
//!   three trial encodes, and the answer is the lowest rung that reaches the score (the top
//!   rung when none below it does). It is deterministic: the same pixels make the same
//!   quality, the same bytes and the same ETag; and a higher level never gets a lower rung.
//! - One charge: the search is part of the transform it serves.
//! - Where this build cannot decode what it writes (AVIF without `--features aom`), or the
//!   image is too small to score (under 16 px a side), the format's default quality is used.

use image::{DynamicImage, GenericImageView, RgbImage};

// The pixels as scored: RGB, alpha composited over the background as a JPEG would show it.
use super::{encode_at, flatten, Settings};
use crate::format::ImageFormat;
use crate::transform::quality::{default_quality, AutoLevel};
use crate::transform::{decode, resize, PipelineError};

/// Outputs of up to `.0` pixels are searched whole; larger ones on a reduction of themselves
/// to a quarter of their pixels, at least `.0` and at most `.1`: the search (four SSIMULACRA2
/// passes and three trial encodes) costs at most what it costs on a 512 × 512 output.
pub const SEARCH_PIXELS: (u64, u64) = (256 * 256, 512 * 512);

/// How many pixels an output of `pixels` is searched on: `None` for all of them.
pub fn search_pixels(pixels: u64) -> Option<u64> {
    (pixels > SEARCH_PIXELS.0).then(|| (pixels / 4).clamp(SEARCH_PIXELS.0, SEARCH_PIXELS.1))
}

/// The qualities tried, per format, lowest first: a binary search over a ladder of 8 takes
/// three measurements, and the top is taken unmeasured when nothing below it reaches the score.
/// Steps are finer where photos' answers fall.
pub fn ladder(format: ImageFormat) -> [u8; 8] {
    match format {
        ImageFormat::Avif => [20, 32, 42, 50, 57, 64, 72, 85],
        _ => [30, 45, 55, 64, 71, 78, 85, 93],
    }
}

/// Encodes `img` at the lowest quality that reaches `level`'s score.
///
/// # Errors
/// As [`encode_at`]; a measurement that fails falls back to the default quality.
pub fn encode(img: &DynamicImage, settings: &Settings, level: AutoLevel) -> Result<Vec<u8>, PipelineError> {
    let default = default_quality(settings.format);
    let Some(default) = default else { return encode_at(img, settings, 80) };
    let (width, height) = img.dimensions();
    if width < 16 || height < 16 || !settings.format.is_decodable() {
        return encode_at(img, settings, default);
    }
    let target_pixels = search_pixels(u64::from(width) * u64::from(height));
    let whole = target_pixels.is_none();
    let Ok(sample) = target_pixels.map(|pixels| reduced(img, settings.background, pixels)).transpose() else {
        return encode_at(img, settings, default);
    };
    let measured = sample.as_ref().map_or(img, |s| s);
    let reference = flatten(measured, settings.background);
    let Ok(scorer) = Scorer::new(&reference) else { return encode_at(img, settings, default) };
    let mut kept: Option<(u8, Vec<u8>)> = None;
    let mut measure = |q: u8| -> Result<f64, PipelineError> {
        let bytes = encode_at(measured, settings, q)?;
        let score = scorer.score(&bytes, settings.format, settings.background)?;
        if whole {
            kept = Some((q, bytes));
        }
        Ok(score)
    };
    let quality = match search(&mut measure, level.target(), &ladder(settings.format)) {
        Ok(q) => q,
        Err(PipelineError::Encode(e)) => return Err(PipelineError::Encode(e)),
        Err(_) => default,
    };
    // The whole image was measured: the bytes of the last measurement are the answer when it
    // was made at the quality chosen.
    match kept {
        Some((q, bytes)) if q == quality => Ok(bytes),
        _ => encode_at(img, settings, quality),
    }
}

/// The lowest rung of `ladder` that `measure` says reaches `target` (the top rung when none
/// below it does), by binary search: three measurements for eight rungs. With a score that
/// rises with quality it is exact on the ladder, so a higher target never gets a lower rung.
fn search(
    measure: &mut impl FnMut(u8) -> Result<f64, PipelineError>,
    target: f64,
    ladder: &[u8],
) -> Result<u8, PipelineError> {
    let (mut lo, mut hi) = (0, ladder.len() - 1);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if measure(ladder[mid])? >= target {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Ok(ladder[hi])
}

/// `img` on the background, reduced (Lanczos) to about `pixels` pixels in its own
/// proportions, at least 16 px a side.
fn reduced(img: &DynamicImage, background: [u8; 3], pixels: u64) -> Result<DynamicImage, PipelineError> {
    let (width, height) = img.dimensions();
    let scale = (pixels as f64 / (f64::from(width) * f64::from(height))).sqrt();
    // At most the side itself, and at least 16 px where the side has them (never a panic).
    let side = |extent: u32| ((f64::from(extent) * scale).round() as u32).max(16).min(extent);
    resize::resize(&DynamicImage::ImageRgb8(flatten(img, background).into_owned()), None, (side(width), side(height)))
}

/// SSIMULACRA2 against one reference, computed once.
struct Scorer {
    reference: fast_ssim2::Ssimulacra2Reference,
    size: (u32, u32),
}

impl Scorer {
    fn new(reference: &RgbImage) -> Result<Self, PipelineError> {
        let (w, h) = reference.dimensions();
        let slice = slice(reference)?;
        let reference = fast_ssim2::Ssimulacra2Reference::new(&slice).map_err(score_error)?;
        Ok(Self { reference, size: (w, h) })
    }

    /// The score of `bytes`, decoded, against the reference.
    fn score(&self, bytes: &[u8], format: ImageFormat, background: [u8; 3]) -> Result<f64, PipelineError> {
        let (w, h) = self.size;
        let decoded = decode::decode(bytes, format, 1, u64::from(w) * u64::from(h))?;
        let distorted = flatten(&decoded.image, background);
        if distorted.dimensions() != self.size {
            return Err(PipelineError::Internal("q_auto: the decoded output is not the size encoded"));
        }
        self.reference.compare(&slice(&distorted)?).map_err(score_error)
    }
}

fn slice(img: &RgbImage) -> Result<fast_ssim2::PixelSlice<'_>, PipelineError> {
    let (w, h) = img.dimensions();
    fast_ssim2::PixelSlice::new(img.as_raw(), w, h, w as usize * 3, fast_ssim2::PixelDescriptor::RGB8_SRGB)
        .map_err(score_error)
}

fn score_error(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Decode(format!("q_auto could not score the output: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A made-up encoder whose score rises by `slope` a step from `at_zero`.
    fn linear(at_zero: f64, slope: f64, calls: &mut Vec<u8>) -> impl FnMut(u8) -> Result<f64, PipelineError> + '_ {
        move |q| {
            calls.push(q);
            Ok(at_zero + slope * f64::from(q))
        }
    }

    #[test]
    fn the_search_finds_the_lowest_rung_that_reaches_the_target_in_three_measurements() {
        let ladder = ladder(ImageFormat::Jpeg);
        for at_zero in [-100.0, 0.0, 20.0, 40.0, 45.0, 50.0, 60.0, 79.0, 100.0] {
            for slope in [0.1, 0.3, 0.5, 0.9] {
                let mut calls = Vec::new();
                let q = search(&mut linear(at_zero, slope, &mut calls), 80.0, &ladder).unwrap();
                let lowest =
                    ladder[..7].iter().copied().find(|&r| at_zero + slope * f64::from(r) >= 80.0).unwrap_or(93);
                assert_eq!(q, lowest, "{at_zero} + {slope} q, after {calls:?}");
                assert_eq!(calls.len(), 3);
            }
        }
    }

    #[test]
    fn a_higher_target_never_gets_a_lower_rung() {
        let ladder = ladder(ImageFormat::Webp);
        let mut last = 0;
        for target in [60.0, 65.0, 70.0, 75.0, 77.0, 80.0, 85.0, 90.0] {
            let q = search(&mut linear(40.0, 0.5, &mut Vec::new()), target, &ladder).unwrap();
            assert!(q >= last, "{target}: {q} < {last}");
            last = q;
        }
    }

    fn photo(w: u32, h: u32) -> DynamicImage {
        // Smooth gradients with fine detail: something between flat art and noise.
        DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
            let detail = ((x * 7 + y * 13) % 23) as u8;
            image::Rgb([(x * 255 / w) as u8 ^ detail, (y * 255 / h) as u8, ((x + y) % 256) as u8 / 2 + detail])
        }))
    }

    #[test]
    fn levels_order_bytes_and_outputs_are_deterministic() {
        for format in [ImageFormat::Jpeg, ImageFormat::Webp] {
            let settings = Settings { format, quality: None, background: [255; 3], avif_speed: 10 };
            for img in [photo(200, 150), photo(700, 500)] {
                let sizes: Vec<usize> =
                    AutoLevel::ALL.iter().map(|&l| encode(&img, &settings, l).unwrap().len()).collect();
                assert!(sizes[0] >= sizes[1] && sizes[1] >= sizes[2], "{format}: {sizes:?}");
                let again = encode(&img, &settings, AutoLevel::Good).unwrap();
                assert_eq!(again.len(), sizes[1]);
                assert_eq!(decode::decode(&again, format, 1, 1 << 24).unwrap().image.dimensions(), img.dimensions());
            }
        }
    }

    #[test]
    fn a_large_output_is_searched_on_a_reduction_of_itself() {
        // Whole up to 256², then half size, within 256² and 512² pixels.
        assert_eq!(search_pixels(256 * 256), None);
        assert_eq!(search_pixels(400 * 300), Some(256 * 256));
        assert_eq!(search_pixels(1280 * 800), Some(640 * 400));
        assert_eq!(search_pixels(4000 * 3000), Some(512 * 512));
        for (w, h) in [(1000, 700), (4000, 50), (300, 300), (1280, 800)] {
            let img = photo(w, h);
            let wanted = search_pixels(u64::from(w) * u64::from(h)).unwrap();
            let sample = reduced(&img, [255; 3], wanted).unwrap();
            let (sw, sh) = sample.dimensions();
            let pixels = u64::from(sw) * u64::from(sh);
            assert!(pixels <= wanted * 21 / 20 && pixels >= wanted * 19 / 20, "{w}x{h}: {sw}x{sh}");
            let (ratio, sample_ratio) = (f64::from(w) / f64::from(h), f64::from(sw) / f64::from(sh));
            assert!((sample_ratio / ratio - 1.0).abs() < 0.02, "{w}x{h}: {sw}x{sh}");
        }
        // A side under 16 px stays as it is: no panic, whatever calls it.
        assert_eq!(reduced(&photo(10, 4), [255; 3], 16).unwrap().dimensions(), (10, 4));
        // Alpha is composited on the background first, as the score sees it.
        let clear = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(600, 400, image::Rgba([0, 0, 0, 0])));
        let sample = reduced(&clear, [10, 200, 30], 256 * 256).unwrap();
        assert_eq!(sample.as_rgb8().unwrap().get_pixel(50, 50).0, [10, 200, 30]);
    }
}
