//! Colour management: pixels with an embedded ICC profile (Display P3 from phones, Adobe RGB)
//! are converted to sRGB, so every output can drop its profile and still look right.

use image::DynamicImage;
use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

/// Converts `img` (`Rgb8` or `Rgba8`) from the colour space described by `icc` to sRGB.
/// Profiles that cannot be used (broken, CMYK, grey) leave the pixels as they are.
pub fn to_srgb(img: &mut DynamicImage, icc: &[u8]) {
    let Ok(source) = ColorProfile::new_from_slice(icc) else {
        tracing::debug!("ignoring an unreadable ICC profile");
        return;
    };
    if source.color_space != DataColorSpace::Rgb {
        return;
    }
    let target = ColorProfile::new_srgb();
    let (layout, pixels) = match img {
        DynamicImage::ImageRgb8(buf) => (Layout::Rgb, &mut **buf),
        DynamicImage::ImageRgba8(buf) => (Layout::Rgba, &mut **buf),
        _ => return,
    };
    let Ok(transform) = source.create_transform_8bit(layout, &target, layout, TransformOptions::default()) else {
        tracing::debug!("no transform from this ICC profile to sRGB");
        return;
    };
    let input = pixels.to_vec();
    if transform.transform(&input, pixels).is_err() {
        // Restore the original pixels rather than keep a half-converted buffer.
        pixels.copy_from_slice(&input);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_profile_keeps_colours() {
        let icc = ColorProfile::new_srgb().encode().unwrap();
        let mut img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(2, 2, image::Rgb([200, 100, 50])));
        to_srgb(&mut img, &icc);
        let p = img.as_rgb8().unwrap().get_pixel(0, 0).0;
        assert!(p.iter().zip([200u8, 100, 50]).all(|(a, b)| a.abs_diff(b) <= 2), "{p:?}");
    }

    #[test]
    fn display_p3_red_becomes_a_clipped_srgb_red() {
        let icc = ColorProfile::new_display_p3().encode().unwrap();
        let mut img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([200, 0, 0])));
        to_srgb(&mut img, &icc);
        let p = img.as_rgb8().unwrap().get_pixel(0, 0).0;
        // P3 red is more saturated than sRGB can show: red rises, green stays at 0.
        assert!(p[0] > 200 && p[1] == 0, "{p:?}");
    }

    #[test]
    fn garbage_profile_is_ignored() {
        let mut img = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(1, 1, image::Rgb([1, 2, 3])));
        to_srgb(&mut img, b"not an icc profile");
        assert_eq!(img.as_rgb8().unwrap().get_pixel(0, 0).0, [1, 2, 3]);
    }
}
