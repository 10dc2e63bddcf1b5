//! HEIC/HEIF originals (the photos iPhones save), with heic-rs: pure Rust, no `unsafe`, in every
//! build.
//!
//! - [`header`] parses the container alone: the upright size the limits count (a grid's output
//!   size, from its `grid` box), and what a decode will hold. heic-rs itself refuses a file whose
//!   coded size is above the pixel limit before it decodes anything.
//! - Orientation is HEIF's `irot` and `imir`, composed in the order the file associates them
//!   (an EXIF orientation inside a HEIF is ignored, as browsers and libheif do). We apply it
//!   ourselves, with the rest of the pipeline's orientation, rather than asking heic-rs to: its
//!   0.1.4 reads `imir`'s axis the wrong way round (ISO/IEC 23008-12:2022: axis 0 exchanges top
//!   and bottom). A clean-aperture crop (`clap`) is not applied, as for AVIF.
//! - The ICC profile of `colr` is applied downstream, as for a JPEG (iPhones embed Display P3).
//! - One thread per decode, as every decoder here: the worker pool is the parallelism.
//! - 10- and 12-bit images become 8-bit; an auxiliary alpha image becomes the alpha channel.

use heic_rs::context::Context;
use heic_rs::props::Transform;
use heic_rs::{ChromaFormat, DecodeOptions, Mirror, PixelLayout, Rotation};
use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};

use super::Decoded;
use crate::transform::PipelineError;

/// What the container says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Stored width (before `irot`).
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// Whether an auxiliary alpha image comes with the picture.
    pub alpha: bool,
    /// Bytes per pixel a decode holds at its peak: heic-rs's 16-bit planes (colour, and the
    /// alpha image's luma), and the 8-bit RGB(A) it converts them to.
    pub bytes_per_pixel: u64,
    /// What `irot` and `imir` ask for.
    pub orientation: Orientation,
}

fn error(what: &str, reason: &dyn std::fmt::Display) -> PipelineError {
    PipelineError::Decode(format!("{what} HEIC: {reason}"))
}

/// Reads the header.
///
/// # Errors
/// [`PipelineError::Decode`] when the container cannot be parsed.
pub fn header(bytes: &[u8]) -> Result<Header, PipelineError> {
    let info = heic_rs::probe(bytes).map_err(|e| error("unreadable", &e))?;
    let (width, height) = (info.coded_width, info.coded_height);
    if width == 0 || height == 0 {
        return Err(error("unreadable", &"no size in the header"));
    }
    // Luma and chroma as u16, in quarters of a luma plane.
    let chroma_quarters = match info.chroma {
        ChromaFormat::Monochrome => 0,
        ChromaFormat::Yuv420 => 2,
        ChromaFormat::Yuv422 => 4,
        ChromaFormat::Yuv444 => 8,
    };
    let planes = (4 + chroma_quarters) * 2 / 4;
    let bytes_per_pixel = planes + if info.has_alpha { 2 + 4 } else { 3 };
    let ctx = Context::open(bytes).map_err(|e| error("unreadable", &e))?;
    let props = ctx.props(ctx.meta.primary).map_err(|e| error("unreadable", &e))?;
    Ok(Header { width, height, alpha: info.has_alpha, bytes_per_pixel, orientation: orientation(&props.transforms) })
}

/// The orientation that does what `transforms` ask, in their order (`clap` is not applied).
fn orientation(transforms: &[Transform]) -> Orientation {
    // An element of the square's symmetry group: flip left-right first (when `.1`), then turn
    // `.0` quarter turns clockwise.
    let mut turns_flip = (0u8, false);
    for transform in transforms {
        let (turns, flip) = turns_flip;
        turns_flip = match transform {
            Transform::Rotate(r) => {
                let anticlockwise = match r {
                    Rotation::None => 0,
                    Rotation::Ccw90 => 1,
                    Rotation::Ccw180 => 2,
                    Rotation::Ccw270 => 3,
                };
                ((turns + 4 - anticlockwise) % 4, flip)
            }
            // heic-rs names the file's axis 0 `LeftRight`; the standard says axis 0 exchanges
            // top and bottom, which is what libheif does. A flip after a turn is the flip
            // before the opposite turn; top-bottom is left-right then a half turn.
            Transform::Mirror(Mirror::LeftRight) => ((6 - turns) % 4, !flip),
            Transform::Mirror(Mirror::TopBottom) => ((4 - turns) % 4, !flip),
            Transform::Crop(_) => turns_flip,
        };
    }
    match turns_flip {
        (0, false) => Orientation::NoTransforms,
        (1, false) => Orientation::Rotate90,
        (2, false) => Orientation::Rotate180,
        (3, false) => Orientation::Rotate270,
        (0, true) => Orientation::FlipHorizontal,
        (2, true) => Orientation::FlipVertical,
        // `Rotate90FlipH` turns and then flips, which is flipping and then turning back.
        (3, true) => Orientation::Rotate90FlipH,
        _ => Orientation::Rotate270FlipH,
    }
}

/// Decodes the primary image at full size, as 8-bit RGB or RGBA, not yet oriented.
///
/// # Errors
/// [`PipelineError::Decode`] for a corrupt or truncated file, a coding tool heic-rs does not
/// implement, or more than `max_pixels`.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, PipelineError> {
    let header = header(bytes)?;
    let (w, h) = (header.width, header.height);
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(PipelineError::Decode(format!("{w}x{h} is more pixels than allowed")));
    }
    let layout = if header.alpha { PixelLayout::Rgba8 } else { PixelLayout::Rgb8 };
    let options = DecodeOptions::default()
        .with_layout(layout)
        .with_max_pixels(Some(max_pixels))
        .with_transforms(false)
        .with_threads(Some(1));
    let decoded = heic_rs::decode(bytes, &options).map_err(|e| error("cannot decode", &e))?;
    let (width, height) = (decoded.width, decoded.height);
    if (width, height) != (w, h) {
        return Err(error("cannot decode", &format!("{width}x{height} pixels where the header says {w}x{h}")));
    }
    let mismatch = || PipelineError::Internal("heic-rs returned fewer samples than its size");
    let image = if header.alpha {
        DynamicImage::ImageRgba8(RgbaImage::from_raw(width, height, decoded.data).ok_or_else(mismatch)?)
    } else {
        DynamicImage::ImageRgb8(RgbImage::from_raw(width, height, decoded.data).ok_or_else(mismatch)?)
    };
    let icc = Context::open(bytes)
        .and_then(|ctx| ctx.props(ctx.meta.primary))
        .ok()
        .and_then(|props| props.icc.map(<[u8]>::to_vec));
    Ok(Decoded { image, orientation: header.orientation, icc, scale: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn turn(r: Rotation) -> Transform {
        Transform::Rotate(r)
    }

    #[test]
    fn transforms_compose_in_order() {
        use Orientation::*;
        let mirror_tb = Transform::Mirror(Mirror::LeftRight); // the file's axis 0
        let mirror_lr = Transform::Mirror(Mirror::TopBottom); // axis 1
        assert_eq!(orientation(&[]), NoTransforms);
        assert_eq!(orientation(&[turn(Rotation::Ccw90)]), Rotate270);
        assert_eq!(orientation(&[turn(Rotation::Ccw270)]), Rotate90);
        assert_eq!(orientation(&[turn(Rotation::Ccw180)]), Rotate180);
        assert_eq!(orientation(&[mirror_lr]), FlipHorizontal);
        assert_eq!(orientation(&[mirror_tb]), FlipVertical);
        // EXIF 5 (transpose) and 7 (transverse), as libheif writes them: three anticlockwise
        // turns, then a flip.
        assert_eq!(orientation(&[turn(Rotation::Ccw270), mirror_lr]), Rotate90FlipH);
        assert_eq!(orientation(&[turn(Rotation::Ccw270), mirror_tb]), Rotate270FlipH);
        // The same, written the other way round.
        assert_eq!(orientation(&[turn(Rotation::Ccw90), mirror_tb]), Rotate90FlipH);
        assert_eq!(orientation(&[turn(Rotation::Ccw90), mirror_lr]), Rotate270FlipH);
        assert_eq!(orientation(&[mirror_lr, mirror_lr]), NoTransforms);
        assert_eq!(orientation(&[mirror_lr, mirror_tb]), Rotate180);
    }
}
