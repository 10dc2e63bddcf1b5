//! Pure geometry: from source size and [`Ops`] to the exact sizes of every stage.
//!
//! Everything here works in full-resolution, upright (EXIF-oriented) source pixels, so the
//! output size never depends on how small the decoder was allowed to decode.

use super::grammar::{Fit, Gravity, Ops, Rect, Rotation};
use super::OpsError;

/// The geometry of one transform.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Source region cut first (validated to lie inside the source).
    pub crop: Option<Rect>,
    /// Size of the region after crop and rotation.
    pub region: (u32, u32),
    /// Size the region is resampled to; equal to `region` when nothing is resized.
    pub resized: (u32, u32),
    /// Part of the resampled image kept by `cover` (position from gravity).
    pub extract: Option<(u32, u32)>,
    /// Canvas the image is centred on by `contain`.
    pub pad: Option<(u32, u32)>,
    /// Final output size.
    pub output: (u32, u32),
}

impl Plan {
    /// How many times smaller than the region the resampled image is, on the axis that shrinks
    /// least (1.0 when nothing shrinks). Bounds shrink-on-load.
    pub fn shrink(&self) -> f64 {
        let sx = f64::from(self.region.0) / f64::from(self.resized.0.max(1));
        let sy = f64::from(self.region.1) / f64::from(self.resized.1.max(1));
        sx.min(sy).max(1.0)
    }
}

/// Works out the geometry for a `source` of (width, height), upright.
///
/// # Errors
/// [`OpsError::CropOutside`] when the crop region does not lie inside the source.
pub fn plan(source: (u32, u32), ops: &Ops, max_dimension: u32) -> Result<Plan, OpsError> {
    let (sw, sh) = source;
    if let Some(c) = ops.crop {
        let inside = u64::from(c.x) + u64::from(c.width) <= u64::from(sw)
            && u64::from(c.y) + u64::from(c.height) <= u64::from(sh);
        if !inside {
            return Err(OpsError::CropOutside { crop: c, width: sw, height: sh });
        }
    }
    let (cw, ch) = ops.crop.map_or(source, |c| (c.width, c.height));
    let region = match ops.rotate {
        Some(Rotation::R90 | Rotation::R270) => (ch, cw),
        _ => (cw, ch),
    };
    let dpr = f64::from(ops.dpr.unwrap_or(100)) / 100.0;
    let scaled = |v: u32| (f64::from(v) * dpr).round().clamp(1.0, f64::from(max_dimension.max(1)));
    let box_w = ops.width.map(scaled);
    let box_h = ops.height.map(scaled);
    let (rw, rh) = (f64::from(region.0), f64::from(region.1));

    let mut plan = Plan { crop: ops.crop, region, resized: region, extract: None, pad: None, output: region };
    if box_w.is_none() && box_h.is_none() {
        return Ok(plan);
    }
    // Scale factors that make each axis match its box edge; never above 1 (no enlargement).
    let fx = box_w.map(|w| w / rw);
    let fy = box_h.map(|h| h / rh);
    let scale_by = |f: f64| (to_px(rw * f), to_px(rh * f));
    match ops.effective_fit() {
        Fit::Inside | Fit::Contain => {
            let f = fx.into_iter().chain(fy).fold(f64::INFINITY, f64::min).min(1.0);
            plan.resized = scale_by(f);
            plan.output = plan.resized;
            if let (Fit::Contain, Some(w), Some(h)) = (ops.effective_fit(), box_w, box_h) {
                // The canvas is the box, but like the image it never exceeds the source.
                let canvas = (to_px(w).min(region.0).max(plan.resized.0), to_px(h).min(region.1).max(plan.resized.1));
                if canvas != plan.resized {
                    plan.pad = Some(canvas);
                }
                plan.output = canvas;
            }
        }
        Fit::Outside => {
            let f = fx.into_iter().chain(fy).fold(0.0, f64::max).min(1.0);
            plan.resized = scale_by(f);
            plan.output = plan.resized;
        }
        Fit::Cover => {
            let f = fx.into_iter().chain(fy).fold(0.0, f64::max).min(1.0);
            plan.resized = scale_by(f);
            let keep = (
                box_w.map_or(plan.resized.0, |w| to_px(w).min(plan.resized.0)),
                box_h.map_or(plan.resized.1, |h| to_px(h).min(plan.resized.1)),
            );
            if keep != plan.resized {
                plan.extract = Some(keep);
            }
            plan.output = keep;
        }
        Fit::Fill => {
            plan.resized = (
                box_w.map_or(region.0, |w| to_px(w).min(region.0)),
                box_h.map_or(region.1, |h| to_px(h).min(region.1)),
            );
            plan.output = plan.resized;
        }
    }
    Ok(plan)
}

/// Top-left corner of a `keep`-sized window in an `outer`-sized image for a fixed gravity.
/// `Smart` is decided from pixels elsewhere; here it falls back to the centre.
pub fn anchor(outer: (u32, u32), keep: (u32, u32), gravity: Gravity) -> (u32, u32) {
    let free_x = outer.0.saturating_sub(keep.0);
    let free_y = outer.1.saturating_sub(keep.1);
    let (ax, ay) = match gravity {
        Gravity::Center | Gravity::Smart => (1, 1),
        Gravity::North => (1, 0),
        Gravity::South => (1, 2),
        Gravity::East => (2, 1),
        Gravity::West => (0, 1),
        Gravity::NorthEast => (2, 0),
        Gravity::NorthWest => (0, 0),
        Gravity::SouthEast => (2, 2),
        Gravity::SouthWest => (0, 2),
    };
    (free_x * ax / 2, free_y * ay / 2)
}

fn to_px(v: f64) -> u32 {
    // Values are at most the source size or the max dimension, far below u32::MAX.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let px = v.round().max(1.0) as u32;
    px
}

/// The ops of each width of a `srcset`: `widths` capped at the width of the region the ops cut
/// (crop and rotation), deduplicated and ascending, each with `w_` set to it. A box given
/// as `w_`+`h_` keeps its aspect ratio at every width; a lone `h_` gives way to the width.
///
/// # Errors
/// As [`plan`], for a crop outside the source.
pub fn srcset(source: (u32, u32), ops: &Ops, widths: &[u32], max_dimension: u32) -> Result<Vec<(u32, Ops)>, OpsError> {
    let cut = Ops { crop: ops.crop, rotate: ops.rotate, ..Ops::default() };
    let natural = plan(source, &cut, max_dimension)?.region.0;
    let mut widths: Vec<u32> = widths.iter().map(|&w| w.clamp(1, natural)).collect();
    widths.sort_unstable();
    widths.dedup();
    Ok(widths
        .into_iter()
        .map(|width| {
            let height = match (ops.width, ops.height) {
                (Some(bw), Some(bh)) => {
                    let h = (u64::from(bh) * u64::from(width) + u64::from(bw) / 2) / u64::from(bw.max(1));
                    Some(u32::try_from(h).unwrap_or(u32::MAX).clamp(1, max_dimension.max(1)))
                }
                _ => None,
            };
            (width, Ops { width: Some(width), height, ..ops.clone() })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::grammar::parse;

    fn run(source: (u32, u32), ops: &str) -> Plan {
        plan(source, &parse(ops, 8192).unwrap(), 8192).unwrap()
    }

    #[test]
    fn width_alone_keeps_the_aspect_ratio() {
        assert_eq!(run((4000, 3000), "w_300").output, (300, 225));
        assert_eq!(run((4000, 3000), "h_300").output, (400, 300));
    }

    #[test]
    fn cover_fills_the_box_and_crops() {
        let p = run((4000, 3000), "w_300,h_300");
        assert_eq!(p.resized, (400, 300));
        assert_eq!(p.extract, Some((300, 300)));
        assert_eq!(p.output, (300, 300));
    }

    #[test]
    fn contain_pads_to_the_box() {
        let p = run((4000, 3000), "w_300,h_300,fit_contain");
        assert_eq!(p.resized, (300, 225));
        assert_eq!(p.pad, Some((300, 300)));
        assert_eq!(p.output, (300, 300));
    }

    #[test]
    fn contain_canvas_never_exceeds_the_source() {
        assert_eq!(run((200, 100), "w_400,h_400,fit_contain").output, (200, 100));
        let p = run((200, 100), "w_400,h_50,fit_contain");
        assert_eq!(p.resized, (100, 50));
        assert_eq!(p.output, (200, 50));
    }

    #[test]
    fn fill_stretches_and_outside_covers_without_crop() {
        assert_eq!(run((4000, 3000), "w_300,h_300,fit_fill").output, (300, 300));
        assert_eq!(run((4000, 3000), "w_300,h_300,fit_outside").output, (400, 300));
        assert_eq!(run((4000, 3000), "w_300,h_300,fit_inside").output, (300, 225));
    }

    #[test]
    fn images_are_never_enlarged() {
        assert_eq!(run((200, 100), "w_400").output, (200, 100));
        // Like Sharp's withoutEnlargement: a smaller image keeps its size (and aspect ratio).
        assert_eq!(run((200, 100), "w_400,h_400").output, (200, 100));
        assert_eq!(run((400, 100), "w_300,h_300").output, (300, 100));
        assert_eq!(run((200, 100), "w_400,h_50,fit_fill").output, (200, 50));
    }

    #[test]
    fn dpr_multiplies_the_box() {
        assert_eq!(run((4000, 3000), "w_300,dpr_2").output, (600, 450));
        assert_eq!(run((4000, 3000), "w_300,dpr_1.5").output, (450, 338));
    }

    #[test]
    fn srcset_widths_are_capped_deduplicated_and_keep_the_box_aspect() {
        let ops = parse("w_400,h_200,fmt_webp", 8192).unwrap();
        let set = srcset((1000, 800), &ops, &[1280, 320, 640, 2000, 320], 8192).unwrap();
        let got: Vec<(u32, Option<u32>, Option<u32>)> = set.iter().map(|(w, o)| (*w, o.width, o.height)).collect();
        assert_eq!(got, vec![(320, Some(320), Some(160)), (640, Some(640), Some(320)), (1000, Some(1000), Some(500))]);
        assert!(set.iter().all(|(_, o)| o.format == ops.format), "the other ops are kept");
        // The cap is the width after crop and rotation; a lone height gives way.
        let cut = parse("crop_0:0:300:500,rot_90,h_100", 8192).unwrap();
        let set = srcset((1000, 800), &cut, &[200, 800], 8192).unwrap();
        assert_eq!(set.iter().map(|(w, o)| (*w, o.height)).collect::<Vec<_>>(), vec![(200, None), (500, None)]);
        assert!(srcset((100, 100), &parse("crop_50:50:60:60", 8192).unwrap(), &[10], 8192).is_err());
    }

    #[test]
    fn crop_and_rotation_come_before_the_resize() {
        let p = run((4000, 3000), "crop_0:0:1000:2000,rot_90,w_200");
        assert_eq!(p.region, (2000, 1000));
        assert_eq!(p.output, (200, 100));
    }

    #[test]
    fn crop_outside_the_image_is_an_error() {
        let ops = parse("crop_3900:0:200:100", 8192).unwrap();
        assert!(matches!(plan((4000, 3000), &ops, 8192), Err(OpsError::CropOutside { .. })));
    }

    #[test]
    fn gravity_anchors_the_window() {
        assert_eq!(anchor((400, 300), (300, 300), Gravity::Center), (50, 0));
        assert_eq!(anchor((400, 300), (300, 300), Gravity::East), (100, 0));
        assert_eq!(anchor((300, 400), (300, 300), Gravity::South), (0, 100));
        assert_eq!(anchor((300, 400), (300, 300), Gravity::NorthWest), (0, 0));
    }

    #[test]
    fn shrink_reports_the_smaller_reduction() {
        assert!((run((4000, 3000), "w_300").shrink() - 4000.0 / 300.0).abs() < 0.01);
        assert!((run((200, 100), "w_400").shrink() - 1.0).abs() < f64::EPSILON);
    }
}
