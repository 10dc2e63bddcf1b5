//! Low-quality image placeholders: what a page shows while the real image loads.
//!
//! Three, computed once at upload from the small decode of the upright image and stored with
//! the image's row: a ThumbHash (about 25 bytes, keeps the aspect ratio and alpha), a BlurHash
//! with 4×3 components (the format most front-end libraries read) and the average colour.

use base64::Engine;
use image::imageops::FilterType;
use image::{DynamicImage, GenericImageView, RgbaImage};
use serde::Serialize;

/// ThumbHash takes at most 100×100 pixels.
const THUMBHASH_SIDE: u32 = 100;
/// BlurHash reads every pixel for every component: 32 px on the long side is plenty for 4×3.
const BLURHASH_SIDE: u32 = 32;
/// BlurHash components across and down.
const BLURHASH_COMPONENTS: (u32, u32) = (4, 3);
/// A decode for placeholders needs no more than this on its long side.
pub const SOURCE_SIDE: u32 = 2 * THUMBHASH_SIDE;

/// The placeholders of one image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Placeholder {
    /// ThumbHash, standard base64 with padding (as its reference decoder takes it).
    pub thumbhash: String,
    /// BlurHash, 4×3 components.
    pub blurhash: String,
    /// Average colour as `#rrggbb`, weighted by alpha.
    pub color: String,
}

impl Placeholder {
    /// The placeholders of an upright image of any size (shrunk here to what each needs).
    pub fn of(image: &DynamicImage) -> Self {
        let small = fit(image, THUMBHASH_SIDE);
        let (w, h) = small.dimensions();
        let thumbhash = thumbhash::rgba_to_thumb_hash(w as usize, h as usize, small.as_raw());
        let tiny = fit(&DynamicImage::ImageRgba8(small.clone()), BLURHASH_SIDE);
        let (x, y) = BLURHASH_COMPONENTS;
        // Fails only for components outside 1..=9; ours are constants inside.
        let blurhash = blurhash::encode(x, y, tiny.width(), tiny.height(), tiny.as_raw()).unwrap_or_default();
        Self {
            thumbhash: base64::engine::general_purpose::STANDARD.encode(thumbhash),
            blurhash,
            // From the preview itself: resizing without premultiplying darkens edges near alpha.
            color: average_colour(&fit(image, SOURCE_SIDE)),
        }
    }
}

/// `image` as RGBA, shrunk (never enlarged) to fit `side`×`side`, keeping at least one pixel.
fn fit(image: &DynamicImage, side: u32) -> RgbaImage {
    let (w, h) = image.dimensions();
    if w <= side && h <= side {
        return image.to_rgba8();
    }
    let scale = f64::from(side) / f64::from(w.max(h));
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // at most `side`
    let size = |v: u32| ((f64::from(v) * scale).round() as u32).clamp(1, side);
    image.resize_exact(size(w), size(h), FilterType::Triangle).to_rgba8()
}

/// The mean of the colours weighted by alpha; black when every pixel is transparent.
fn average_colour(image: &RgbaImage) -> String {
    let mut sums = [0u64; 4];
    for p in image.pixels() {
        let a = u64::from(p[3]);
        for c in 0..3 {
            sums[c] += u64::from(p[c]) * a;
        }
        sums[3] += a;
    }
    let channel = |sum: u64| (sum + sums[3] / 2).checked_div(sums[3]).unwrap_or(0).min(255);
    format!("#{:02x}{:02x}{:02x}", channel(sums[0]), channel(sums[1]), channel(sums[2]))
}

#[cfg(test)]
mod tests {
    use image::Rgba;

    use super::*;

    #[test]
    fn a_flat_image_has_its_colour_and_hashes_that_decode_to_it() {
        let red = DynamicImage::ImageRgba8(RgbaImage::from_pixel(640, 320, Rgba([200, 30, 40, 255])));
        let p = Placeholder::of(&red);
        assert_eq!(p.color, "#c81e28");
        let hash = base64::engine::general_purpose::STANDARD.decode(&p.thumbhash).unwrap();
        let (r, g, b, a) = thumbhash::thumb_hash_to_average_rgba(&hash).unwrap();
        assert!((r - 200.0 / 255.0).abs() < 0.03 && (g - 30.0 / 255.0).abs() < 0.03 && (b - 40.0 / 255.0).abs() < 0.03);
        assert!((a - 1.0).abs() < 0.01);
        let ratio = thumbhash::thumb_hash_to_approximate_aspect_ratio(&hash).unwrap();
        // ThumbHash keeps the ratio only roughly (from its component counts): landscape here.
        assert!((1.5..=2.5).contains(&ratio), "aspect ratio {ratio}");
        assert_eq!(p.blurhash.len(), 6 + 2 * (4 * 3 - 1), "4x3 components");
        let pixels = blurhash::decode(&p.blurhash, 4, 2, 1.0).unwrap();
        // BlurHash quantises its components coarsely: close, not exact.
        assert!(pixels.chunks_exact(4).all(|px| px[0].abs_diff(200) < 25 && px[1].abs_diff(30) < 8), "{pixels:?}");
    }

    #[test]
    fn colour_is_weighted_by_alpha_and_tiny_images_work() {
        let img = RgbaImage::from_fn(2, 1, |x, _| if x == 0 { Rgba([0, 0, 0, 0]) } else { Rgba([10, 20, 30, 255]) });
        assert_eq!(Placeholder::of(&DynamicImage::ImageRgba8(img)).color, "#0a141e");
        let clear = RgbaImage::from_pixel(1, 1, Rgba([9, 9, 9, 0]));
        assert_eq!(Placeholder::of(&DynamicImage::ImageRgba8(clear)).color, "#000000");
    }

    #[test]
    fn long_thin_images_keep_a_pixel_on_the_short_side() {
        let img = DynamicImage::ImageRgb8(image::RgbImage::new(5000, 3));
        assert_eq!(fit(&img, THUMBHASH_SIDE).dimensions(), (100, 1));
        assert!(!Placeholder::of(&img).thumbhash.is_empty());
    }
}
