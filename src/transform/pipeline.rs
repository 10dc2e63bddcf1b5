//! The transform pipeline, always in one order whatever the token order:
//! EXIF auto-orient → crop → rotate → flip → resize → blur/sharpen → gray/sepia → watermark →
//! encode.
//!
//! Crop and resize run as one resampling pass on the decoded pixels, and rotation and flips
//! are applied to the (small) result; both orders give the same pixels, the second touches far
//! fewer of them.

use image::metadata::Orientation;
use image::{DynamicImage, Rgba, RgbaImage};

use super::decode::animation;
use super::decode::{self, Decoded};
use super::encode::{self, Settings};
use super::geometry::{self, Plan};
use super::grammar::{Gravity, Ops, Rotation};
use super::resize::{self, Window};
use super::{color, effects, smart, PipelineError};
use crate::format::ImageFormat;

/// One transform request.
#[derive(Debug, Clone, Copy)]
pub struct Job<'a> {
    /// Bytes of the original.
    pub original: &'a [u8],
    /// Its format.
    pub source_format: ImageFormat,
    /// Its upright size as recorded at upload.
    pub source_size: (u32, u32),
    /// Its frames as counted at upload; `None` (a row from before frames were counted) reads
    /// them from the container.
    pub source_frames: Option<u32>,
    /// What to do.
    pub ops: &'a Ops,
    /// Output format (already resolved).
    pub format: ImageFormat,
    /// The watermark original and its format, when `wm_` is given.
    pub watermark: Option<(&'a [u8], ImageFormat)>,
    /// Largest pixel count a decode may produce.
    pub max_pixels: u64,
    /// Largest `w_`/`h_` value.
    pub max_dimension: u32,
    /// AVIF encoder speed, 1 (small, slow) to 10 (fast).
    pub avif_speed: u8,
    /// `original` is the working copy at 1/`level` of the original (1: the original itself;
    /// see [`super::levels`]): it is decoded that much less DCT-scaled.
    pub level: u32,
}

/// A finished variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    /// Encoded bytes.
    pub bytes: Vec<u8>,
    /// Output width.
    pub width: u32,
    /// Output height.
    pub height: u32,
    /// Output format.
    pub format: ImageFormat,
}

/// Bytes of pixel buffers the job holds at its peak, from the headers alone: the original's
/// decode at the scale the output allows, the watermark's, and the output-sized buffers after.
///
/// # Errors
/// [`PipelineError::InvalidOps`] when the ops do not fit the image, `Decode` when a header
/// cannot be read.
pub fn memory_needed(job: &Job<'_>) -> Result<u64, PipelineError> {
    let plan = geometry::plan(job.source_size, job.ops, job.max_dimension)?;
    let probe = decode::probe(job.original, job.source_format)?;
    let info = animation::info(job.original, job.source_format)?;
    // Every frame at the larger of the screen and its rectangle, as the upload check counts
    // them: an original stored before that rule is refused here, before any pixel.
    let screen = (probe.width, probe.height);
    if info.pixels(screen) > job.max_pixels {
        let (w, h) = info.extent(screen);
        return Err(PipelineError::Decode(format!("{w}x{h} x {} frames is more pixels than allowed", info.frames)));
    }
    let decoded = match kept_frames(job)? {
        // Counted as every frame's canvas, as the limits count animations.
        Some(frames) => canvas_bytes(&info, screen) * u64::from(frames),
        None => probe.bytes_at(decode_scale(job, &probe, &plan)),
    };
    let area = |(w, h): (u32, u32)| u64::from(w) * u64::from(h);
    // The resampled image, and one more output-sized copy (rotation, padding, conversion for
    // the encoder), at 4 bytes a pixel.
    let largest = area(plan.resized).max(area(plan.output)).max(plan.pad.map_or(0, area));
    let watermark = match (job.ops.watermark.is_some(), job.watermark) {
        (true, Some((bytes, format))) => decode::probe(bytes, format)?.bytes_at(1) + area(plan.output),
        _ => 0,
    };
    Ok(decoded + largest * 4 * 2 + watermark)
}

/// Runs the whole pipeline. CPU-bound: call it from the transform pool.
///
/// # Errors
/// [`PipelineError::InvalidOps`] when the ops do not fit the image (crop outside),
/// `Decode` for corrupt originals, `Encode` when the encoder refuses.
pub fn run(job: &Job<'_>) -> Result<Output, PipelineError> {
    let plan = geometry::plan(job.source_size, job.ops, job.max_dimension)?;
    if kept_frames(job)?.is_some() {
        return run_animated(job, &plan);
    }
    // Shrink-on-load: a JPEG may be decoded up to 8× smaller, never below the output size (as
    // Sharp's default `fastShrinkOnLoad`), PNG and GIF rows are averaged down while they are
    // read; Lanczos3 does the rest.
    let probe = decode::probe(job.original, job.source_format)?;
    let scale = decode_scale(job, &probe, &plan);
    let decoded = if job.level > 1 {
        decode::working_copy(job.original, scale, job.max_pixels)?
    } else {
        decode::decode(job.original, job.source_format, scale, job.max_pixels)?
    };
    let img = shape(decoded, job, &plan, &mut None)?;
    let img = filter(img, job, &mut None)?;
    let bytes = encode::encode(&img, &settings(job))?;
    Ok(Output { bytes, width: img.width(), height: img.height(), format: job.format })
}

/// The frames the output keeps, when there are several: the source is animated, the output
/// format can hold them, and `still` was not asked for. The count recorded at upload decides
/// without reading the file (this runs before a worker is taken, too).
/// The DCT scale `job.original` is decoded at: what the plan's reduction leaves after the
/// working copy's own (see [`Job::level`]).
fn decode_scale(job: &Job<'_>, probe: &decode::Probe, plan: &Plan) -> u32 {
    probe.scale(plan.shrink() / f64::from(job.level.max(1)))
}

fn kept_frames(job: &Job<'_>) -> Result<Option<u32>, PipelineError> {
    if job.ops.still || !job.source_format.can_animate() || !job.format.can_animate() {
        return Ok(None);
    }
    let frames = match job.source_frames {
        Some(frames) => frames,
        None => animation::info(job.original, job.source_format)?.frames,
    };
    Ok((frames > 1).then_some(frames))
}

/// One plan, many frames: each frame is shaped, filtered and handed to the encoder in turn,
/// with the same crop anchor and watermark for all, and its own delay.
fn run_animated(job: &Job<'_>, plan: &Plan) -> Result<Output, PipelineError> {
    let info = animation::info(job.original, job.source_format)?;
    let settings = settings(job);
    let (mut anchor, mut watermark, mut encoder) = (None, None, None);
    let frames = usize::try_from(info.frames).unwrap_or(usize::MAX);
    // The decoder's canvas, a frame's rectangle and the composite of the two.
    let max_alloc = canvas_bytes(&info, job.source_size) * 3;
    for frame in animation::frames(job.original, job.source_format, max_alloc)?.take(frames) {
        let frame = frame?;
        let decoded = Decoded {
            image: DynamicImage::ImageRgba8(frame.image),
            orientation: Orientation::NoTransforms,
            icc: None,
            scale: 1,
        };
        let img = filter(shape(decoded, job, plan, &mut anchor)?, job, &mut watermark)?;
        let encoder = match &mut encoder {
            Some(encoder) => encoder,
            None => encoder.insert((
                encode::animation::Encoder::new(&settings, (img.width(), img.height()), info.loops)?,
                (img.width(), img.height()),
            )),
        };
        encoder.0.add(&img, frame.delay_ms)?;
    }
    let (encoder, (width, height)) =
        encoder.ok_or_else(|| PipelineError::Decode("the animation has no frames".into()))?;
    Ok(Output { bytes: encoder.finish()?, width, height, format: job.format })
}

/// Bytes of one RGBA frame counted at [`animation::Info::extent`].
fn canvas_bytes(info: &animation::Info, screen: (u32, u32)) -> u64 {
    let (w, h) = info.extent(screen);
    u64::from(w) * u64::from(h) * 4
}

fn settings(job: &Job<'_>) -> Settings {
    Settings {
        format: job.format,
        quality: super::quality::effective_quality(job.format, job.ops.quality),
        background: job.ops.bg.unwrap_or([255, 255, 255]),
        avif_speed: job.avif_speed,
    }
}

/// A prepared watermark and where it goes.
type Watermark = (DynamicImage, (u32, u32));

/// Blur, sharpen, colour filters and the watermark (prepared on the first call, then reused
/// from `watermark`).
fn filter(img: DynamicImage, job: &Job<'_>, watermark: &mut Option<Watermark>) -> Result<DynamicImage, PipelineError> {
    if !effects::any(job.ops) {
        return Ok(img);
    }
    if watermark.is_none() {
        if let (true, Some((bytes, format))) = (job.ops.watermark.is_some(), job.watermark) {
            *watermark = Some(prepare_watermark(bytes, format, (img.width(), img.height()), job)?);
        }
    }
    Ok(effects::apply(img, job.ops, watermark.as_ref().map(|(wm, at)| (wm, *at))))
}

/// Orient, crop + resize, rotate, flip, extract or pad, convert to sRGB. The extract's anchor is
/// taken from `anchor` when set, else computed and stored there (so every frame of an animation
/// is cut at the same place, even with `g_smart`).
fn shape(
    decoded: Decoded,
    job: &Job<'_>,
    plan: &Plan,
    anchor: &mut Option<(u32, u32)>,
) -> Result<DynamicImage, PipelineError> {
    let (img, icc, _) = decoded.into_oriented();
    // Decoded pixels per source pixel (below 1 after shrink-on-load).
    let rx = f64::from(img.width()) / f64::from(job.source_size.0.max(1));
    let ry = f64::from(img.height()) / f64::from(job.source_size.1.max(1));
    let window = plan.crop.map(|c| Window {
        left: f64::from(c.x) * rx,
        top: f64::from(c.y) * ry,
        width: (f64::from(c.width) * rx).max(1.0),
        height: (f64::from(c.height) * ry).max(1.0),
    });
    let turned = matches!(job.ops.rotate, Some(Rotation::R90 | Rotation::R270));
    let target = if turned { (plan.resized.1, plan.resized.0) } else { plan.resized };
    let untouched = window.is_none() && (img.width(), img.height()) == target;
    let mut img = if untouched { img } else { resize::resize(&img, window, target)? };
    img = match job.ops.rotate {
        Some(Rotation::R90) => img.rotate90(),
        Some(Rotation::R180) => img.rotate180(),
        Some(Rotation::R270) => img.rotate270(),
        None => img,
    };
    if job.ops.flip_h {
        img = img.fliph();
    }
    if job.ops.flip_v {
        img = img.flipv();
    }
    if let Some(keep) = plan.extract {
        let (x, y) = *anchor.get_or_insert_with(|| match job.ops.gravity.unwrap_or(Gravity::Center) {
            Gravity::Smart => smart::anchor(&img, keep),
            g => geometry::anchor((img.width(), img.height()), keep, g),
        });
        img = img.crop_imm(x, y, keep.0, keep.1);
    }
    if let Some(icc) = icc {
        color::to_srgb(&mut img, &icc);
    }
    if let Some(canvas) = plan.pad {
        img = pad(img, canvas, job);
    }
    Ok(img)
}

/// Centres `img` on a `canvas` of the `bg` colour, or transparent when the output keeps alpha
/// and no colour was asked for.
fn pad(img: DynamicImage, canvas: (u32, u32), job: &Job<'_>) -> DynamicImage {
    let fill = match job.ops.bg {
        Some([r, g, b]) => Rgba([r, g, b, 255]),
        None if job.format == ImageFormat::Jpeg => Rgba([255, 255, 255, 255]),
        None => Rgba([0, 0, 0, 0]),
    };
    let mut out = RgbaImage::from_pixel(canvas.0, canvas.1, fill);
    let (x, y) = geometry::anchor(canvas, (img.width(), img.height()), Gravity::Center);
    image::imageops::overlay(&mut out, &img.to_rgba8(), i64::from(x), i64::from(y));
    if fill[3] == 255 && !img.color().has_alpha() {
        DynamicImage::ImageRgb8(DynamicImage::ImageRgba8(out).into_rgb8())
    } else {
        DynamicImage::ImageRgba8(out)
    }
}

/// Decodes the watermark and sizes it to a quarter of the output width, bottom-right with a
/// small margin.
fn prepare_watermark(
    bytes: &[u8],
    format: ImageFormat,
    out: (u32, u32),
    job: &Job<'_>,
) -> Result<Watermark, PipelineError> {
    let (mark, icc, _) = decode::decode(bytes, format, 1, job.max_pixels)?.into_oriented();
    let width = (out.0 / 4).max(1);
    let height = to_px(f64::from(mark.height()) * f64::from(width) / f64::from(mark.width().max(1))).min(out.1.max(1));
    let mut mark = resize::resize(&mark, None, (width, height))?;
    if let Some(icc) = icc {
        color::to_srgb(&mut mark, &icc);
    }
    let margin = out.0 / 50;
    let at = (out.0.saturating_sub(width + margin), out.1.saturating_sub(height + margin));
    Ok((mark, at))
}

fn to_px(v: f64) -> u32 {
    // Inputs are bounded by image sizes (≤ 2^32); the cast cannot wrap.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let px = v.ceil().max(1.0) as u32;
    px
}
