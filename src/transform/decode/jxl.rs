//! JPEG XL originals, with jxl-oxide (pure Rust: in every build).
//!
//! - [`header`] parses the image header alone: the upright size the limits count, and what a
//!   decode will hold. Everything runs under jxl-oxide's allocation tracker: the header's parse
//!   capped at twice the file's size, the decode at twice what the header allows, so a file
//!   whose sections or frames claim more than that cannot take more memory (found by the fuzzer:
//!   a 424-byte file whose table of contents claimed 843 MB).
//! - The renderer applies the header's orientation, and converts to sRGB through moxcms (the
//!   colour engine the rest of the pipeline uses): the pixels come out upright and in sRGB.
//! - An animation is served by its first frame; grey becomes RGB, 16-bit and float samples
//!   8-bit.

use jxl_oxide::{AllocTracker, EnumColourEncoding, JxlImage, JxlThreadPool, Moxcms, RenderingIntent};

use super::Decoded;
use crate::transform::PipelineError;

/// What the image header says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Width once the header's orientation is applied (the decode is upright).
    pub width: u32,
    /// Height once the orientation is applied.
    pub height: u32,
    /// Whether an alpha channel comes with the image.
    pub alpha: bool,
    /// Lossy (XYB colours, as VarDCT images are): a working copy loses nothing it keeps.
    pub lossy: bool,
    /// Bytes per pixel a decode holds at its peak: jxl-oxide's 32-bit planes (colour, alpha,
    /// and as much again for its work buffers) and our 8-bit RGB(A) copy.
    pub bytes_per_pixel: u64,
}

fn error(what: &str, reason: &dyn std::fmt::Display) -> PipelineError {
    PipelineError::Decode(format!("{what} JPEG XL: {reason}"))
}

/// Parses the header of `bytes` (and reads the frames' sections into memory), every allocation
/// counted by a tracker that refuses past `limit` bytes: a table of contents claiming
/// gigabytes of sections is refused, not reserved.
fn parse(bytes: &[u8], limit: usize) -> Result<JxlImage, PipelineError> {
    let builder = JxlImage::builder().pool(JxlThreadPool::none()).alloc_tracker(AllocTracker::with_limit(limit));
    let mut uninit = builder.build_uninit();
    uninit.feed_bytes(bytes).map_err(|e| error("unreadable", &e))?;
    match uninit.try_init().map_err(|e| error("unreadable", &e))? {
        jxl_oxide::InitializeResult::Initialized(image) => Ok(image),
        jxl_oxide::InitializeResult::NeedMoreData(_) => Err(error("unreadable", &"the header is cut short")),
    }
}

fn describe(image: &JxlImage) -> Result<Header, PipelineError> {
    let (width, height) = (image.width(), image.height());
    if width == 0 || height == 0 {
        return Err(error("unreadable", &"no size in the header"));
    }
    let alpha = image.pixel_format().has_alpha();
    let channels: u64 = if alpha { 4 } else { 3 };
    let lossy = image.image_header().metadata.xyb_encoded;
    Ok(Header { width, height, alpha, lossy, bytes_per_pixel: channels * 4 * 2 + channels })
}

/// Reads the header.
///
/// # Errors
/// [`PipelineError::Decode`] when the header cannot be parsed.
pub fn header(bytes: &[u8]) -> Result<Header, PipelineError> {
    // The sections hold at most the file's own bytes.
    describe(&parse(bytes, bytes.len().saturating_mul(2).saturating_add(16 << 20))?)
}

/// Decodes the first frame, upright and in sRGB, as 8-bit RGB or RGBA.
///
/// # Errors
/// [`PipelineError::Decode`] for a corrupt or truncated file, more than `max_pixels`, or a
/// decode that would take more memory than its header lets it.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, PipelineError> {
    let header = header(bytes)?;
    let (w, h) = (header.width, header.height);
    let pixels = u64::from(w) * u64::from(h);
    if pixels > max_pixels {
        return Err(PipelineError::Decode(format!("{w}x{h} is more pixels than allowed")));
    }
    let budget = usize::try_from(pixels * header.bytes_per_pixel * 2).unwrap_or(usize::MAX);
    let mut image = parse(bytes, budget.saturating_add(bytes.len()))?;
    image.feed_bytes(&[]).map_err(|e| error("unreadable", &e))?;
    image.set_cms(Moxcms);
    image.request_color_encoding(EnumColourEncoding::srgb(RenderingIntent::Relative));
    if image.num_loaded_keyframes() == 0 {
        return Err(error("cannot decode", &"no complete frame"));
    }
    let render = image.render_frame(0).map_err(|e| error("cannot decode", &e))?;
    let mut stream = if header.alpha { render.stream() } else { render.stream_no_alpha() };
    let channels = stream.channels();
    if (stream.width(), stream.height()) != (w, h) || !(1..=4).contains(&channels) {
        return Err(error("cannot decode", &format!("{channels} channels of {}x{}", stream.width(), stream.height())));
    }
    let mut out = vec![0u8; w as usize * h as usize * channels as usize];
    if stream.write_to_buffer(&mut out) != out.len() {
        return Err(error("cannot decode", &"the frame ended early"));
    }
    let image = match channels {
        1 => image::GrayImage::from_raw(w, h, out).map(|g| image::DynamicImage::ImageLuma8(g).into_rgb8().into()),
        2 => {
            image::GrayAlphaImage::from_raw(w, h, out).map(|g| image::DynamicImage::ImageLumaA8(g).into_rgba8().into())
        }
        3 => image::RgbImage::from_raw(w, h, out).map(image::DynamicImage::ImageRgb8),
        _ => image::RgbaImage::from_raw(w, h, out).map(image::DynamicImage::ImageRgba8),
    };
    let image = image.ok_or(PipelineError::Internal("decoded JPEG XL buffer size"))?;
    Ok(Decoded { image, orientation: image::metadata::Orientation::NoTransforms, icc: None, scale: 1 })
}

#[cfg(test)]
mod tests {
    use image::GenericImageView;

    use super::*;

    /// The fuzzer's find: 424 bytes whose table of contents claims a section of 843 MB. Before
    /// the header's parse was tracked, that much was reserved; now the parse refuses it.
    #[test]
    fn a_section_larger_than_the_file_allows_is_refused_not_reserved() {
        let bytes =
            include_bytes!("../../../tests/fuzz/regressions/image/oom-cbf1ebe85e2db0ea36ddb537fccacef34d946425");
        assert!(matches!(header(bytes), Err(PipelineError::Decode(_))));
        assert!(decode(bytes, 50_000_000).is_err());
    }

    #[test]
    fn the_fixtures_decode_upright_at_their_size() {
        let bytes = include_bytes!("../../../tests/fixtures/halves-96x64.jxl");
        let h = header(bytes).unwrap();
        assert_eq!((h.width, h.height, h.alpha, h.lossy), (96, 64, false, true));
        assert_eq!(decode(bytes, 1 << 20).unwrap().image.dimensions(), (96, 64));
        assert!(decode(bytes, 96 * 64 - 1).is_err(), "the pixel limit");
    }
}
