//! Content-aware cropping (`g_smart`): keep the window with the most visual interest.
//!
//! Like libvips' `attention` strategy, interest is edge energy (luma Laplacian), colour
//! saturation and skin tones, scored on a small copy of the image; a summed-area table then
//! finds the best window in one pass over candidate positions.

use image::DynamicImage;

/// Long side of the copy that is analysed.
const ANALYSIS_SIZE: u32 = 256;

/// Top-left corner of the most interesting `keep`-sized window of `img`.
pub fn anchor(img: &DynamicImage, keep: (u32, u32)) -> (u32, u32) {
    let (w, h) = (img.width(), img.height());
    if keep.0 >= w && keep.1 >= h {
        return (0, 0);
    }
    // Analyse a copy of at most ANALYSIS_SIZE on the long side (nearest-neighbour is enough).
    let step = (w.max(h).div_ceil(ANALYSIS_SIZE)).max(1);
    let (aw, ah) = (w.div_ceil(step), h.div_ceil(step));
    let rgb = img.to_rgb8();
    let pixel = |x: u32, y: u32| rgb.get_pixel((x * step).min(w - 1), (y * step).min(h - 1)).0;
    let luma: Vec<f32> = (0..ah)
        .flat_map(|y| (0..aw).map(move |x| (x, y)))
        .map(|(x, y)| {
            let [r, g, b] = pixel(x, y);
            0.299 * f32::from(r) + 0.587 * f32::from(g) + 0.114 * f32::from(b)
        })
        .collect();
    let at = |x: u32, y: u32| luma[(y * aw + x) as usize];
    // Summed-area table of the score, one row and column of zeros in front.
    let stride = (aw + 1) as usize;
    let mut sat = vec![0f64; stride * (ah + 1) as usize];
    for y in 0..ah {
        let mut row = 0f64;
        for x in 0..aw {
            let [r, g, b] = pixel(x, y);
            let edge = if x > 0 && y > 0 && x + 1 < aw && y + 1 < ah {
                (4.0 * at(x, y) - at(x - 1, y) - at(x + 1, y) - at(x, y - 1) - at(x, y + 1)).abs()
            } else {
                0.0
            };
            row += f64::from(edge + saturation(r, g, b) * 0.5 + skin(r, g, b) * 60.0);
            let i = (y as usize + 1) * stride + x as usize + 1;
            sat[i] = sat[i - stride] + row;
        }
    }
    let sum = |x0: u32, y0: u32, x1: u32, y1: u32| {
        let (x0, y0, x1, y1) = (x0 as usize, y0 as usize, x1 as usize, y1 as usize);
        sat[y1 * stride + x1] - sat[y0 * stride + x1] - sat[y1 * stride + x0] + sat[y0 * stride + x0]
    };
    let (kw, kh) = ((keep.0.min(w) / step).clamp(1, aw), (keep.1.min(h) / step).clamp(1, ah));
    let (free_x, free_y) = (aw - kw, ah - kh);
    let centre = (f64::from(free_x) / 2.0, f64::from(free_y) / 2.0);
    let mut best = (f64::MIN, f64::MAX, 0u32, 0u32);
    for y in 0..=free_y {
        for x in 0..=free_x {
            let score = sum(x, y, x + kw, y + kh);
            let off_centre = (f64::from(x) - centre.0).abs() + (f64::from(y) - centre.1).abs();
            // Ties go to the window closest to the centre.
            if score > best.0 + 1e-6 || ((score - best.0).abs() <= 1e-6 && off_centre < best.1) {
                best = (score, off_centre, x, y);
            }
        }
    }
    let (x, y) = (best.2 * step, best.3 * step);
    (x.min(w.saturating_sub(keep.0)), y.min(h.saturating_sub(keep.1)))
}

fn saturation(r: u8, g: u8, b: u8) -> f32 {
    let max = r.max(g).max(b);
    let min = r.min(g).min(b);
    f32::from(max - min)
}

/// 1.0 for colours in the usual range of human skin (RGB rule of Kovac et al.), else 0.
fn skin(r: u8, g: u8, b: u8) -> f32 {
    let (ri, gi, bi) = (i32::from(r), i32::from(g), i32::from(b));
    let spread = ri.max(gi).max(bi) - ri.min(gi).min(bi);
    let is_skin = ri > 95 && gi > 40 && bi > 20 && spread > 15 && (ri - gi).abs() > 15 && ri > gi && ri > bi;
    if is_skin {
        1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use image::{Rgb, RgbImage};

    use super::*;

    #[test]
    fn finds_the_detailed_region_of_a_flat_image() {
        // A flat grey 600x200 image with a checkerboard patch near the right edge.
        let mut img = RgbImage::from_pixel(600, 200, Rgb([128, 128, 128]));
        for y in 50..150 {
            for x in 450..550 {
                let on = ((x / 5) + (y / 5)) % 2 == 0;
                img.put_pixel(x, y, if on { Rgb([255, 0, 0]) } else { Rgb([0, 0, 255]) });
            }
        }
        let (x, y) = anchor(&DynamicImage::ImageRgb8(img), (200, 200));
        assert_eq!(y, 0);
        assert!((350..=400).contains(&x), "window at {x} should hold the patch at 450..550");
    }

    #[test]
    fn flat_image_crops_the_centre() {
        let img = DynamicImage::ImageRgb8(RgbImage::from_pixel(600, 200, Rgb([10, 10, 10])));
        let (x, y) = anchor(&img, (200, 200));
        assert_eq!(y, 0);
        assert!((195..=205).contains(&x), "{x}");
    }
}
