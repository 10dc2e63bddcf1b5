//! Effects on the already-resized image, done with photon-rs: blur, sharpen, gray, sepia and
//! the watermark overlay.

use image::DynamicImage;
use photon_rs::PhotonImage;

use super::grammar::Ops;

/// Smallest side photon's box blur handles safely.
const MIN_BLUR_SIDE: u32 = 4;

/// True when `ops` asks for any effect handled here.
pub fn any(ops: &Ops) -> bool {
    ops.blur.is_some() || ops.sharpen.is_some() || ops.gray || ops.sepia || ops.watermark.is_some()
}

/// Applies blur/sharpen, then gray/sepia, then the watermark (already sized) at `wm_at`.
pub fn apply(img: DynamicImage, ops: &Ops, watermark: Option<(&DynamicImage, (u32, u32))>) -> DynamicImage {
    let had_alpha = img.color().has_alpha();
    let (w, h) = (img.width(), img.height());
    let mut photon = PhotonImage::new(img.into_rgba8().into_raw(), w, h);
    if let Some(sigma) = ops.blur {
        blur(&mut photon, sigma);
    }
    if let Some(sigma) = ops.sharpen {
        sharpen(&mut photon, sigma);
    }
    if ops.gray {
        photon_rs::monochrome::grayscale_human_corrected(&mut photon);
    }
    if ops.sepia {
        photon_rs::monochrome::sepia(&mut photon);
    }
    if let Some((wm, (x, y))) = watermark {
        let mark = PhotonImage::new(wm.to_rgba8().into_raw(), wm.width(), wm.height());
        photon_rs::multiple::watermark(&mut photon, &mark, i64::from(x), i64::from(y));
    }
    let rgba = image::RgbaImage::from_raw(w, h, photon.get_raw_pixels())
        .map_or_else(|| DynamicImage::new_rgba8(w, h), DynamicImage::ImageRgba8);
    // The overlay blends onto the image, so an opaque image stays opaque.
    if had_alpha {
        rgba
    } else {
        DynamicImage::ImageRgb8(rgba.into_rgb8())
    }
}

/// photon's Gaussian blur is three box blurs sized for a whole-pixel sigma.
fn radius(sigma_hundredths: u32, photon: &PhotonImage) -> Option<i32> {
    let side = photon.get_width().min(photon.get_height());
    if side < MIN_BLUR_SIDE {
        return None;
    }
    let r = i32::try_from(sigma_hundredths.div_ceil(100).max(1)).unwrap_or(i32::MAX);
    Some(r.min(i32::try_from(side / 2 - 1).unwrap_or(1)).max(1))
}

fn blur(photon: &mut PhotonImage, sigma: u32) {
    if let Some(r) = radius(sigma, photon) {
        photon_rs::conv::gaussian_blur(photon, r);
    }
}

/// Unsharp mask: original + (original − blurred), colour channels only.
fn sharpen(photon: &mut PhotonImage, sigma: u32) {
    let Some(r) = radius(sigma, photon) else { return };
    let mut blurred = PhotonImage::new(photon.get_raw_pixels(), photon.get_width(), photon.get_height());
    photon_rs::conv::gaussian_blur(&mut blurred, r);
    let soft = blurred.get_raw_pixels();
    let mut px = photon.get_raw_pixels();
    for (i, (p, s)) in px.iter_mut().zip(soft).enumerate() {
        if i % 4 != 3 {
            let v = 2 * i16::from(*p) - i16::from(s);
            *p = u8::try_from(v.clamp(0, 255)).unwrap_or(0);
        }
    }
    *photon = PhotonImage::new(px, photon.get_width(), photon.get_height());
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;
    use crate::transform::grammar::parse;

    fn stripes() -> DynamicImage {
        DynamicImage::ImageRgb8(RgbImage::from_fn(
            32,
            32,
            |x, _| if x % 2 == 0 { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) },
        ))
    }

    #[test]
    fn gray_makes_channels_equal() {
        let out = apply(stripes(), &parse("gray", 8192).unwrap(), None).into_rgb8();
        assert!(out.pixels().all(|p| p[0] == p[1] && p[1] == p[2]));
    }

    #[test]
    fn blur_smooths_stripes() {
        let out = apply(stripes(), &parse("blur_2", 8192).unwrap(), None).into_rgb8();
        let p = out.get_pixel(16, 16);
        assert!(p[0] > 60 && p[0] < 200 && p[2] > 60 && p[2] < 200, "{p:?}");
    }

    #[test]
    fn sepia_tints_gray_towards_brown() {
        let gray = DynamicImage::ImageRgb8(RgbImage::from_pixel(8, 8, Rgb([100, 100, 100])));
        let p = *apply(gray, &parse("sepia", 8192).unwrap(), None).into_rgb8().get_pixel(0, 0);
        assert!(p[0] > p[1] && p[1] > p[2], "{p:?}");
    }

    #[test]
    fn tiny_images_survive_blur_and_sharpen() {
        let tiny = DynamicImage::ImageRgb8(RgbImage::from_pixel(1, 1, Rgb([1, 2, 3])));
        let out = apply(tiny, &parse("blur_50,sharpen_10", 8192).unwrap(), None);
        assert_eq!((out.width(), out.height()), (1, 1));
    }
}
