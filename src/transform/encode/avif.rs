//! AVIF encoding. Built with the `aom` feature (what `deploy/` ships and `tests/run` tests):
//! libavif + libaom, the encoder Sharp, imgproxy and thumbor run, 4:2:0 below `q_90` as libvips
//! does. Without it (a plain `cargo build`, which needs no cmake): rav1e through ravif, 4:4:4,
//! slower by an order of magnitude. Either way `q` means about what it means in Sharp. Both are
//! compiled in an `aom` build, so one build lints and tests both.

use image::DynamicImage;

use super::PipelineError;

/// Which AV1 encoder this build has: part of the variant key, since the two make different bytes.
pub const ENCODER: &str = if cfg!(feature = "aom") { "aom" } else { "rav1e" };

/// The speed `transform.avif_speed = 0` stands for. libaom: 6, thumbor's (Pillow's) and
/// libavif's own, where a 2 MP photo to 600 px q60 scores an SSIM of 0.921 at Sharp's bytes
/// (Sharp: 0.925) in 2.3 times the time of speed 8 (0.916). rav1e: 8, its ten times slower encoder
/// cannot spend more.
pub const DEFAULT_SPEED: u8 = if cfg!(feature = "aom") { 6 } else { 8 };

/// The encoder speed for `transform.avif_speed`: [`DEFAULT_SPEED`] for 0, else as configured.
pub fn speed(configured: u8) -> u8 {
    if configured == 0 {
        DEFAULT_SPEED
    } else {
        configured
    }
}

/// Encodes `img` (`Rgb8` or `Rgba8`; anything else is converted) at `quality` 1–100 and `speed`
/// 1 (small, slow) to 10 (fast), on one thread: parallelism comes from transforms side by side.
///
/// # Errors
/// [`PipelineError::Encode`] with the encoder's reason.
pub fn encode(img: &DynamicImage, quality: u8, speed: u8) -> Result<Vec<u8>, PipelineError> {
    let quality = quality.clamp(1, 100);
    let (w, h) = (img.width(), img.height());
    let rgba;
    let rgb;
    let (pixels, alpha) = match img {
        DynamicImage::ImageRgba8(buf) => (buf.as_raw().as_slice(), true),
        DynamicImage::ImageRgb8(buf) => (buf.as_raw().as_slice(), false),
        other if other.color().has_alpha() => {
            rgba = other.to_rgba8();
            (rgba.as_raw().as_slice(), true)
        }
        other => {
            rgb = other.to_rgb8();
            (rgb.as_raw().as_slice(), false)
        }
    };
    #[cfg(feature = "aom")]
    let encoded = aom::encode(pixels, (w, h), alpha, quality, speed);
    #[cfg(not(feature = "aom"))]
    let encoded = rav1e::encode(pixels, (w, h), alpha, quality, speed);
    encoded.map_err(|e| PipelineError::Encode(format!("AVIF: {e}")))
}

/// The bytes of one row of `size` packed RGB(A) pixels, when `pixels` is exactly that many
/// rows: the encoders read through raw pointers and must not run past the buffer.
fn packed_row(pixels: &[u8], (w, h): (u32, u32), alpha: bool) -> Result<u32, String> {
    let row = w.checked_mul(if alpha { 4 } else { 3 }).ok_or("too wide")?;
    if w == 0 || h == 0 || pixels.len() != (row as usize) * (h as usize) {
        return Err("the pixels are not width × height".into());
    }
    Ok(row)
}

#[cfg(feature = "aom")]
pub(crate) mod aom {
    use libavif_sys as sys;

    use crate::transform::libavif::{check, Owned};

    pub fn encode(pixels: &[u8], size: (u32, u32), alpha: bool, quality: u8, speed: u8) -> Result<Vec<u8>, String> {
        encode_turned(pixels, size, alpha, quality, speed, 0)
    }

    /// [`encode`], with an `irot` box of `turns` anticlockwise quarter turns when not 0 (what
    /// a camera writes instead of turning the pixels).
    pub fn encode_turned(
        pixels: &[u8],
        (w, h): (u32, u32),
        alpha: bool,
        quality: u8,
        speed: u8,
        turns: u8,
    ) -> Result<Vec<u8>, String> {
        let row = super::packed_row(pixels, (w, h), alpha)?;
        // libavif's own auto mode: chroma at full size only where it would be seen.
        let yuv = if quality >= 90 { sys::AVIF_PIXEL_FORMAT_YUV444 } else { sys::AVIF_PIXEL_FORMAT_YUV420 };
        // SAFETY: every pointer below comes from libavif's own constructors, is checked for null,
        // is freed exactly once by its `Owned` guard, and `pixels` outlives the one call that reads
        // it (`avifImageRGBToYUV` only reads through `rgb.pixels`).
        unsafe {
            let image =
                Owned(sys::avifImageCreate(w, h, 8, yuv), |p: &mut *mut sys::avifImage| sys::avifImageDestroy(*p));
            if image.0.is_null() {
                return Err("out of memory".into());
            }
            (*image.0).yuvRange = sys::AVIF_RANGE_FULL;
            (*image.0).colorPrimaries = sys::AVIF_COLOR_PRIMARIES_BT709 as sys::avifColorPrimaries;
            (*image.0).transferCharacteristics =
                sys::AVIF_TRANSFER_CHARACTERISTICS_SRGB as sys::avifTransferCharacteristics;
            (*image.0).matrixCoefficients = sys::AVIF_MATRIX_COEFFICIENTS_BT601 as sys::avifMatrixCoefficients;
            if turns % 4 != 0 {
                (*image.0).transformFlags |= sys::AVIF_TRANSFORM_IROT;
                (*image.0).irot.angle = turns % 4;
            }
            let mut rgb = sys::avifRGBImage::default();
            sys::avifRGBImageSetDefaults(&mut rgb, image.0);
            rgb.format = if alpha { sys::AVIF_RGB_FORMAT_RGBA } else { sys::AVIF_RGB_FORMAT_RGB };
            rgb.depth = 8;
            rgb.pixels = pixels.as_ptr().cast_mut();
            rgb.rowBytes = row;
            check(sys::avifImageRGBToYUV(image.0, &rgb))?;

            let encoder = Owned(sys::avifEncoderCreate(), |p: &mut *mut sys::avifEncoder| sys::avifEncoderDestroy(*p));
            if encoder.0.is_null() {
                return Err("out of memory".into());
            }
            (*encoder.0).codecChoice = sys::AVIF_CODEC_CHOICE_AOM;
            (*encoder.0).maxThreads = 1;
            (*encoder.0).speed = i32::from(speed.clamp(1, 10));
            (*encoder.0).quality = i32::from(quality);
            (*encoder.0).qualityAlpha = i32::from(quality);
            check(sys::avifEncoderAddImage(encoder.0, image.0, 1, sys::AVIF_ADD_IMAGE_FLAG_SINGLE))?;
            let mut output = Owned(sys::avifRWData::default(), |d: &mut sys::avifRWData| sys::avifRWDataFree(d));
            check(sys::avifEncoderFinish(encoder.0, &mut output.0))?;
            if output.0.data.is_null() || output.0.size == 0 {
                return Err("the encoder wrote nothing".into());
            }
            Ok(std::slice::from_raw_parts(output.0.data, output.0.size).to_vec())
        }
    }
}

#[cfg_attr(feature = "aom", allow(dead_code))]
mod rav1e {
    use rgb::FromSlice;

    /// Requested `q` → ravif's quality, so that a number means about what it means in Sharp
    /// (libheif + aom): rav1e's scale is harsher. Measured with `benches/avif-calibrate.sh` (2 MP
    /// photo → w600, luma SSIM against a Lanczos reference): Sharp at q 50, 60, 70, 80 matches
    /// ravif at 65, 82, 88, 94. Linear between those points and towards 1 and 100.
    pub fn ravif_quality(q: u8) -> f32 {
        const POINTS: [(f32, f32); 6] =
            [(1.0, 1.0), (50.0, 65.0), (60.0, 82.0), (70.0, 88.0), (80.0, 94.0), (100.0, 100.0)];
        crate::transform::quality::calibrated(&POINTS, q)
    }

    pub fn encode(pixels: &[u8], (w, h): (u32, u32), alpha: bool, quality: u8, speed: u8) -> Result<Vec<u8>, String> {
        super::packed_row(pixels, (w, h), alpha)?;
        let (w, h) = (w as usize, h as usize);
        let quality = ravif_quality(quality);
        let encoder = ravif::Encoder::new()
            .with_quality(quality)
            .with_alpha_quality(quality)
            .with_speed(speed)
            .with_num_threads(Some(1));
        let encoded = if alpha {
            encoder.encode_rgba(ravif::Img::new(pixels.as_rgba(), w, h))
        } else {
            encoder.encode_rgb(ravif::Img::new(pixels.as_rgb(), w, h))
        };
        Ok(encoded.map_err(|e| e.to_string())?.avif_file)
    }

    #[cfg(test)]
    mod tests {
        /// The table's claim (that a number means what it means in Sharp) is measured by
        /// `benches/avif-calibrate.sh`; here, that the mapping keeps its points and its order.
        #[test]
        fn ravif_quality_interpolates_its_points_in_order() {
            use super::ravif_quality as q;
            assert!((q(60) - 82.0).abs() < 1e-3);
            assert!((q(55) - 73.5).abs() < 1e-3, "halfway between 50 and 60");
            assert!((q(1) - 1.0).abs() < 1e-3 && (q(100) - 100.0).abs() < 1e-3);
            assert!((1..100).all(|n| q(n) < q(n + 1)), "monotone");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Backend = fn(&[u8], (u32, u32), bool, u8, u8) -> Result<Vec<u8>, String>;

    /// Every encoder this build has.
    fn backends() -> Vec<(&'static str, Backend)> {
        vec![
            ("rav1e", super::rav1e::encode),
            #[cfg(feature = "aom")]
            ("aom", super::aom::encode),
        ]
    }

    #[test]
    fn encodes_what_decoders_read_back_with_and_without_alpha() {
        let ramp = image::RgbaImage::from_fn(40, 24, |x, y| image::Rgba([(x * 6) as u8, (y * 10) as u8, 90, 128]));
        let rgb = DynamicImage::ImageRgba8(ramp.clone()).into_rgb8();
        for (name, backend) in backends() {
            for (pixels, alpha) in [(ramp.as_raw(), true), (rgb.as_raw(), false)] {
                let bytes = backend(pixels, (40, 24), alpha, 60, 10).unwrap();
                assert_eq!(crate::format::ImageFormat::sniff(&bytes), Some(crate::format::ImageFormat::Avif));
                let size = imagesize::blob_size(&bytes).unwrap();
                assert_eq!((size.width, size.height), (40, 24), "{name}");
                // An alpha plane is an auxiliary item: its `auxC` box names it.
                let has_alpha_item = bytes.windows(4).any(|w| w == b"auxC");
                assert_eq!(has_alpha_item, alpha, "{name}: alpha {alpha}");
            }
        }
        assert!(encode(&DynamicImage::ImageRgba8(ramp), 60, 10).is_ok());
    }

    #[test]
    fn pixels_of_the_wrong_length_are_refused() {
        for (name, backend) in backends() {
            assert!(backend(&[0; 10], (4, 4), false, 60, 10).is_err(), "{name}");
        }
    }

    #[test]
    fn lower_quality_makes_fewer_bytes() {
        let noise = image::RgbImage::from_fn(64, 64, |x, y| {
            let v = (x.wrapping_mul(2_654_435_761).wrapping_add(y.wrapping_mul(40_503)) >> 7) as u8;
            image::Rgb([v, v.wrapping_mul(3), 128])
        });
        for (name, backend) in backends() {
            let size = |q| backend(noise.as_raw(), (64, 64), false, q, 10).unwrap().len();
            assert!(size(30) < size(90), "{name}");
        }
    }
}
