//! HEIC/HEIF originals (the photos iPhones save), with heic-rs: pure Rust, no `unsafe`, in every
//! build.
//!
//! - [`header`] parses the container alone: the size the limits count (a grid's, from the grid
//!   item's `ispe`), and what a decode will hold. heic-rs itself refuses a file whose coded size
//!   is above the pixel limit before it decodes anything.
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
use image::{DynamicImage, RgbImage, RgbaImage};

use super::heif::{self, Step};
use super::Decoded;
use crate::transform::PipelineError;

/// What the container says (bytes per pixel: heic-rs's 16-bit planes — colour, and the alpha
/// image's luma — and the 8-bit RGB(A) it converts them to).
pub use super::heif::Header;

fn error(what: &str, reason: &dyn std::fmt::Display) -> PipelineError {
    PipelineError::Decode(format!("{what} HEIC: {reason}"))
}

/// Reads the header.
///
/// # Errors
/// [`PipelineError::Decode`] when the container cannot be parsed.
pub fn header(bytes: &[u8]) -> Result<Header, PipelineError> {
    read(bytes).map(|(header, _)| header)
}

/// The header and the primary image's ICC profile, from one parse of the container (and
/// heic-rs's probe of it).
fn read(bytes: &[u8]) -> Result<(Header, Option<&[u8]>), PipelineError> {
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
    let orientation = heif::orientation(steps(&props.transforms));
    Ok((Header { width, height, alpha: info.has_alpha, bytes_per_pixel, orientation }, props.icc))
}

/// HEIF's steps of `transforms`, in their order (`clap` is not applied). heic-rs names the file's
/// axis 0 `LeftRight`; the standard, and libheif, exchange top and bottom on it.
fn steps(transforms: &[Transform]) -> impl Iterator<Item = Step> + '_ {
    transforms.iter().filter_map(|transform| match transform {
        Transform::Rotate(Rotation::None) => Some(Step::Turn(0)),
        Transform::Rotate(Rotation::Ccw90) => Some(Step::Turn(1)),
        Transform::Rotate(Rotation::Ccw180) => Some(Step::Turn(2)),
        Transform::Rotate(Rotation::Ccw270) => Some(Step::Turn(3)),
        Transform::Mirror(Mirror::LeftRight) => Some(Step::Mirror(0)),
        Transform::Mirror(Mirror::TopBottom) => Some(Step::Mirror(1)),
        Transform::Crop(_) => None,
    })
}

/// Decodes the primary image at full size, as 8-bit RGB or RGBA, not yet oriented.
///
/// # Errors
/// [`PipelineError::Decode`] for a corrupt or truncated file, a coding tool heic-rs does not
/// implement, or more than `max_pixels`.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, PipelineError> {
    let (header, icc) = read(bytes)?;
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
    Ok(Decoded { image, orientation: header.orientation, icc: icc.map(<[u8]>::to_vec), scale: 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_axes_are_read_as_the_standard_says() {
        use image::metadata::Orientation::*;
        let orient = |transforms: &[Transform]| heif::orientation(steps(transforms));
        // heic-rs's `LeftRight` is the file's axis 0: top and bottom exchanged.
        assert_eq!(orient(&[Transform::Mirror(Mirror::LeftRight)]), FlipVertical);
        assert_eq!(orient(&[Transform::Mirror(Mirror::TopBottom)]), FlipHorizontal);
        assert_eq!(orient(&[Transform::Rotate(Rotation::Ccw90)]), Rotate270);
        // EXIF 5 and 7 as libheif writes them: three anticlockwise turns, then a flip.
        let three = Transform::Rotate(Rotation::Ccw270);
        assert_eq!(orient(&[three, Transform::Mirror(Mirror::TopBottom)]), Rotate90FlipH);
        assert_eq!(orient(&[three, Transform::Mirror(Mirror::LeftRight)]), Rotate270FlipH);
    }
}
