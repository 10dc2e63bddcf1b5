//! AVIF originals, with libavif and libaom's AV1 decoder (`--features aom`, what `deploy/`
//! ships; a build without it takes no AVIF upload).
//!
//! - [`header`] reads the container alone (libavif's parse decodes no pixel): the size the
//!   limits count, from the `ispe` box, and what a decode will hold. A bitstream whose frames
//!   are larger than its header says is refused by libavif after the decode, and libaom itself
//!   refuses frames over 16384 pixels a side (`LIB_AOM_DECODE_*_LIMIT` in `.cargo/config.toml`),
//!   so a lying header costs at most one bounded decode.
//! - Orientation is HEIF's: the `irot` box, then `imir`, as the format orders them (an AVIF's
//!   EXIF orientation is ignored, as browsers do). A clean-aperture crop (`clap`) is not applied.
//! - A sequence (`avis`) is served by its first image; 10- and 12-bit images become 8-bit.

use std::marker::PhantomData;

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use libavif_sys as sys;

use super::heif::{self, Step};
use super::Decoded;
use crate::transform::libavif::{check, Owned};
use crate::transform::PipelineError;

/// What the container says (bytes per pixel: libaom's frame buffers, libavif's alpha plane and
/// our 8-bit RGB(A) copy).
pub use super::heif::Header;

/// A decoder that has parsed `bytes`, which it reads until it is dropped.
struct Parsed<'a> {
    decoder: Owned<*mut sys::avifDecoder, fn(&mut *mut sys::avifDecoder)>,
    _bytes: PhantomData<&'a [u8]>,
}

fn destroy(decoder: &mut *mut sys::avifDecoder) {
    // SAFETY: the pointer came from `avifDecoderCreate`, was checked for null, and is
    // destroyed once, here.
    unsafe { sys::avifDecoderDestroy(*decoder) }
}

fn error(what: &str, reason: &str) -> PipelineError {
    PipelineError::Decode(format!("{what} AVIF: {reason}"))
}

impl<'a> Parsed<'a> {
    /// Parses the container; `max_pixels` (0: libavif's default) bounds what it will decode.
    fn new(bytes: &'a [u8], max_pixels: u64) -> Result<Self, PipelineError> {
        // SAFETY: the decoder is created, checked for null, and owned by the guard from here on.
        let decoder = unsafe { sys::avifDecoderCreate() };
        if decoder.is_null() {
            return Err(PipelineError::Internal("libavif could not allocate a decoder"));
        }
        let parsed = Self { decoder: Owned(decoder, destroy as fn(&mut _)), _bytes: PhantomData };
        // SAFETY: `decoder` is valid; libavif reads `bytes` only through the memory IO set
        // here, and `bytes` outlives `Parsed` (the lifetime 'a), which destroys the decoder.
        unsafe {
            (*decoder).codecChoice = sys::AVIF_CODEC_CHOICE_AOM;
            (*decoder).maxThreads = 1;
            (*decoder).ignoreExif = 1;
            (*decoder).ignoreXMP = 1;
            if max_pixels > 0 {
                (*decoder).imageSizeLimit = u32::try_from(max_pixels).unwrap_or(u32::MAX);
            }
            check(sys::avifDecoderSetIOMemory(decoder, bytes.as_ptr(), bytes.len()))
                .map_err(|e| error("unreadable", &e))?;
            check(sys::avifDecoderParse(decoder)).map_err(|e| error("unreadable", &e))?;
        }
        Ok(parsed)
    }

    /// The image the decoder describes (after [`Parsed::new`], its header; after a decode,
    /// its planes too).
    fn image(&self) -> Result<&sys::avifImage, PipelineError> {
        // SAFETY: the decoder is valid; its `image` is null or owned by it, and borrowed no
        // longer than `self`.
        unsafe { (*self.decoder.0).image.as_ref() }.ok_or(PipelineError::Internal("libavif gave no image"))
    }

    fn header(&self) -> Result<Header, PipelineError> {
        let image = self.image()?;
        // SAFETY: the decoder is valid.
        let alpha = unsafe { (*self.decoder.0).alphaPresent } != 0;
        if image.width == 0 || image.height == 0 {
            return Err(error("unreadable", "no size in the header"));
        }
        let sample = if image.depth > 8 { 2 } else { 1 };
        // Twice the planes, in halves of a plane per pixel: libaom holds the frame it decodes
        // into and the one it hands out.
        let half_planes = match image.yuvFormat {
            sys::AVIF_PIXEL_FORMAT_YUV444 => 6,
            sys::AVIF_PIXEL_FORMAT_YUV422 => 4,
            sys::AVIF_PIXEL_FORMAT_YUV400 => 2,
            _ => 3,
        };
        let bytes_per_pixel = sample * half_planes + if alpha { sample * 2 + 4 } else { 3 };
        Ok(Header { width: image.width, height: image.height, alpha, bytes_per_pixel, orientation: orientation(image) })
    }
}

/// `irot` then `imir`, the order libavif applies them in.
fn orientation(image: &sys::avifImage) -> Orientation {
    let flags = image.transformFlags;
    let turn = (flags & sys::AVIF_TRANSFORM_IROT != 0).then_some(Step::Turn(image.irot.angle));
    let mirror = (flags & sys::AVIF_TRANSFORM_IMIR != 0).then_some(Step::Mirror(image.imir.axis));
    heif::orientation(turn.into_iter().chain(mirror))
}

/// Reads the header.
///
/// # Errors
/// [`PipelineError::Decode`] when the container cannot be parsed.
pub fn header(bytes: &[u8]) -> Result<Header, PipelineError> {
    Parsed::new(bytes, 0)?.header()
}

/// Decodes the first image at full size, as 8-bit RGB or RGBA.
///
/// # Errors
/// [`PipelineError::Decode`] for a corrupt or truncated file, or more than `max_pixels`.
pub fn decode(bytes: &[u8], max_pixels: u64) -> Result<Decoded, PipelineError> {
    let parsed = Parsed::new(bytes, max_pixels)?;
    let header = parsed.header()?;
    let (w, h) = (header.width, header.height);
    if u64::from(w) * u64::from(h) > max_pixels {
        return Err(PipelineError::Decode(format!("{w}x{h} is more pixels than allowed")));
    }
    // SAFETY: the decoder is valid and parsed.
    check(unsafe { sys::avifDecoderNextImage(parsed.decoder.0) }).map_err(|e| error("cannot decode", &e))?;
    let image = parsed.image()?;
    if (image.width, image.height) != (w, h) {
        return Err(error("cannot decode", "the frame is not the size its header says"));
    }
    let channels: u32 = if header.alpha { 4 } else { 3 };
    let row = w * channels;
    let mut pixels = vec![0u8; row as usize * h as usize];
    let mut rgb = sys::avifRGBImage::default();
    // SAFETY: `image` is the decoder's decoded image; `rgb.pixels` is `pixels`, exactly
    // `rowBytes` × `height` bytes for an 8-bit RGB(A) image of its size, alive across the call.
    unsafe {
        sys::avifRGBImageSetDefaults(&mut rgb, image);
        rgb.format = if header.alpha { sys::AVIF_RGB_FORMAT_RGBA } else { sys::AVIF_RGB_FORMAT_RGB };
        rgb.depth = 8;
        rgb.alphaPremultiplied = 0;
        rgb.maxThreads = 1;
        rgb.pixels = pixels.as_mut_ptr();
        rgb.rowBytes = row;
        check(sys::avifImageYUVToRGB(image, &mut rgb)).map_err(|e| error("cannot convert", &e))?;
    }
    let icc = (!image.icc.data.is_null() && image.icc.size > 0).then(|| {
        // SAFETY: libavif owns `size` bytes at `data` until the decoder is destroyed.
        unsafe { std::slice::from_raw_parts(image.icc.data, image.icc.size) }.to_vec()
    });
    let image = if header.alpha {
        RgbaImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(w, h, pixels).map(DynamicImage::ImageRgb8)
    };
    let image = image.ok_or(PipelineError::Internal("decoded AVIF buffer size"))?;
    Ok(Decoded { image, orientation: header.orientation, icc, scale: 1 })
}

#[cfg(test)]
mod tests {
    use image::GenericImageView;

    use super::*;
    use crate::transform::encode::avif;

    fn two_halves(alpha: u8) -> DynamicImage {
        DynamicImage::ImageRgba8(RgbaImage::from_fn(48, 32, |x, _| {
            if x < 24 {
                image::Rgba([230, 30, 30, alpha])
            } else {
                image::Rgba([30, 30, 230, alpha])
            }
        }))
    }

    #[test]
    fn what_the_encoder_writes_decodes_back_with_its_colours_and_alpha() {
        for (img, alpha) in [(DynamicImage::ImageRgb8(two_halves(255).to_rgb8()), false), (two_halves(128), true)] {
            let bytes = avif::encode(&img, 90, 10).unwrap();
            let h = header(&bytes).unwrap();
            assert_eq!((h.width, h.height, h.alpha), (48, 32, alpha));
            assert_eq!(h.orientation, Orientation::NoTransforms);
            let decoded = decode(&bytes, 1 << 20).unwrap();
            assert_eq!(decoded.image.dimensions(), (48, 32));
            assert_eq!(decoded.image.color().has_alpha(), alpha);
            let px = decoded.image.to_rgba8();
            let (left, right) = (px.get_pixel(4, 16).0, px.get_pixel(44, 16).0);
            assert!(left[0] > 180 && left[2] < 80, "{left:?}");
            assert!(right[2] > 180 && right[0] < 80, "{right:?}");
            if alpha {
                assert!((120..=136).contains(&left[3]), "{left:?}");
            }
        }
    }

    #[test]
    fn a_turned_image_is_decoded_upright() {
        let stored = two_halves(255).to_rgb8();
        // A quarter turn anticlockwise: the red left half ends at the bottom.
        let bytes = avif::aom::encode_turned(stored.as_raw(), (48, 32), false, 90, 10, 1).unwrap();
        let h = header(&bytes).unwrap();
        assert_eq!((h.width, h.height, h.orientation), (48, 32, Orientation::Rotate270));
        let (upright, _, _) = decode(&bytes, 1 << 20).unwrap().into_oriented();
        assert_eq!(upright.dimensions(), (32, 48));
        let px = upright.to_rgb8();
        let (top, bottom) = (px.get_pixel(16, 4).0, px.get_pixel(16, 44).0);
        assert!(top[2] > 180 && top[0] < 80, "{top:?}");
        assert!(bottom[0] > 180 && bottom[2] < 80, "{bottom:?}");
    }

    #[test]
    fn the_pixel_limit_and_garbage_are_decode_errors() {
        let bytes = avif::encode(&two_halves(255), 60, 10).unwrap();
        assert!(matches!(decode(&bytes, 48 * 32 - 1), Err(PipelineError::Decode(_))));
        assert!(matches!(decode(&bytes[..bytes.len() / 2], 1 << 20), Err(PipelineError::Decode(_))));
        assert!(matches!(header(b"\0\0\0\x1cftypavif\0\0\0\0garbage"), Err(PipelineError::Decode(_))));
    }

    #[test]
    fn irot_and_imir_are_read_in_that_order() {
        let mut image = sys::avifImage {
            transformFlags: sys::AVIF_TRANSFORM_IROT | sys::AVIF_TRANSFORM_IMIR,
            irot: sys::avifImageRotation { angle: 1 },
            imir: sys::avifImageMirror { axis: 0 },
            ..Default::default()
        };
        assert_eq!(orientation(&image), heif::orientation([Step::Turn(1), Step::Mirror(0)]));
        image.transformFlags = sys::AVIF_TRANSFORM_IMIR;
        assert_eq!(orientation(&image), Orientation::FlipVertical, "no irot flag: the angle is not read");
        image.transformFlags = 0;
        assert_eq!(orientation(&image), Orientation::NoTransforms);
    }
}
