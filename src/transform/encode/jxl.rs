//! JPEG XL output through libjxl (the `libjxl` feature): lossy VarDCT, sRGB, 8 bits per sample,
//! alpha kept. `q_N` is calibrated to JPEG's scale ([`jxl_quality`]), then goes through libjxl's
//! own map from a quality to its distance (`JxlEncoderDistanceFromQuality`: 90 → 1.0, the
//! visually lossless target; 78, what `q_80` becomes, → 2.08).

use std::ffi::c_void;
use std::mem::MaybeUninit;
use std::ptr;

use image::DynamicImage;
use jxl_sys::{
    JxlBasicInfo, JxlColorEncoding, JxlColorEncodingSetToSRGB, JxlDataType, JxlEncoder, JxlEncoderAddImageFrame,
    JxlEncoderCloseInput, JxlEncoderCreate, JxlEncoderDestroy, JxlEncoderDistanceFromQuality, JxlEncoderFrameSettingId,
    JxlEncoderFrameSettingsCreate, JxlEncoderFrameSettingsSetOption, JxlEncoderInitBasicInfo, JxlEncoderProcessOutput,
    JxlEncoderSetBasicInfo, JxlEncoderSetColorEncoding, JxlEncoderSetFrameDistance, JxlEncoderStatus, JxlEndianness,
    JxlPixelFormat,
};

use super::PipelineError;

/// libjxl's effort, 1 (fastest) to 10. A variant is made while a browser waits: on a 1200×800
/// photo at q 80 (distance 1.9, one core of the development machine) effort 4 took 37 ms and
/// 47.3 KB, effort 7 (cjxl's default) 387 ms and 45.5 KB, effort 5 216 ms and 43.7 KB.
const EFFORT: i64 = 4;

/// Requested `q` → libjxl's quality, so that a number means about what it means for our JPEG:
/// measured on three photos of the bench corpus at 300 and 1200 px (luma SSIM against a Lanczos
/// reference, `benches/quality.py`), JPEG at q 30, 40, 50, 60, 70, 80, 90, 95 matches libjxl at
/// 39, 49, 56, 62, 69, 78, 87, 94 (with 15–20 % fewer bytes). Linear between those points and
/// towards 1 and 100.
pub fn jxl_quality(q: u8) -> f32 {
    const POINTS: [(f32, f32); 10] = [
        (1.0, 1.0),
        (30.0, 39.0),
        (40.0, 49.0),
        (50.0, 56.0),
        (60.0, 62.0),
        (70.0, 69.0),
        (80.0, 78.0),
        (90.0, 87.0),
        (95.0, 94.0),
        (100.0, 100.0),
    ];
    crate::transform::quality::calibrated(&POINTS, q)
}

/// Encodes `img` (RGB or RGBA, 8 bits) at `quality` 1–100.
///
/// # Errors
/// [`PipelineError::Encode`] when libjxl refuses a step.
pub fn encode(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, PipelineError> {
    let converted;
    let (pixels, channels): (&[u8], u32) = match img {
        DynamicImage::ImageRgb8(buf) => (buf.as_raw(), 3),
        DynamicImage::ImageRgba8(buf) => (buf.as_raw(), 4),
        other if other.color().has_alpha() => {
            converted = DynamicImage::ImageRgba8(other.to_rgba8());
            (converted.as_bytes(), 4)
        }
        other => {
            converted = DynamicImage::ImageRgb8(other.to_rgb8());
            (converted.as_bytes(), 3)
        }
    };
    let encoder = Encoder::new()?;
    encoder.write(pixels, img.width(), img.height(), channels, quality)
}

/// An encoder, destroyed when dropped.
struct Encoder(*mut JxlEncoder);

impl Encoder {
    fn new() -> Result<Self, PipelineError> {
        // SAFETY: a null memory manager asks for libjxl's default allocator.
        let enc = unsafe { JxlEncoderCreate(ptr::null()) };
        if enc.is_null() {
            return Err(PipelineError::Encode("libjxl: cannot create an encoder".into()));
        }
        Ok(Self(enc))
    }

    fn write(
        self,
        pixels: &[u8],
        width: u32,
        height: u32,
        channels: u32,
        quality: u8,
    ) -> Result<Vec<u8>, PipelineError> {
        let expected = u64::from(width) * u64::from(height) * u64::from(channels);
        if pixels.len() as u64 != expected {
            return Err(PipelineError::Internal("JPEG XL encode: the buffer does not match its size"));
        }
        // SAFETY: every call gets the live encoder `self.0` and pointers to values that live on
        // this stack frame (or `pixels`, borrowed for the call) for the duration of the call;
        // libjxl copies what it keeps. The output loop writes only within `out`'s length.
        unsafe {
            // Zeroed bytes, then libjxl's defaults in every field (its enums have no zero
            // variant, so the value is only read once libjxl has written it).
            let mut info = MaybeUninit::<JxlBasicInfo>::zeroed();
            JxlEncoderInitBasicInfo(info.as_mut_ptr());
            let mut info = info.assume_init();
            info.xsize = width;
            info.ysize = height;
            info.bits_per_sample = 8;
            info.num_color_channels = 3;
            info.uses_original_profile = 0; // lossy: XYB
            if channels == 4 {
                info.num_extra_channels = 1;
                info.alpha_bits = 8;
            }
            check(JxlEncoderSetBasicInfo(self.0, &raw const info), "basic info")?;
            let mut color = MaybeUninit::<JxlColorEncoding>::zeroed();
            JxlColorEncodingSetToSRGB(color.as_mut_ptr(), 0);
            let color = color.assume_init();
            check(JxlEncoderSetColorEncoding(self.0, &raw const color), "colour encoding")?;
            let settings = JxlEncoderFrameSettingsCreate(self.0, ptr::null());
            if settings.is_null() {
                return Err(PipelineError::Encode("libjxl: cannot create frame settings".into()));
            }
            let effort = JxlEncoderFrameSettingId::JXL_ENC_FRAME_SETTING_EFFORT;
            check(JxlEncoderFrameSettingsSetOption(settings, effort, EFFORT), "effort")?;
            let distance = JxlEncoderDistanceFromQuality(jxl_quality(quality));
            check(JxlEncoderSetFrameDistance(settings, distance), "distance")?;
            let format = JxlPixelFormat {
                num_channels: channels,
                data_type: JxlDataType::JXL_TYPE_UINT8,
                endianness: JxlEndianness::JXL_NATIVE_ENDIAN,
                align: 0,
            };
            let buffer = pixels.as_ptr().cast::<c_void>();
            check(JxlEncoderAddImageFrame(settings, &raw const format, buffer, pixels.len()), "frame")?;
            JxlEncoderCloseInput(self.0);
            let mut out = vec![0u8; 64 * 1024 + pixels.len() / 8];
            let mut written = 0usize;
            loop {
                let mut next = out.as_mut_ptr().add(written);
                let mut avail = out.len() - written;
                let status = JxlEncoderProcessOutput(self.0, &raw mut next, &raw mut avail);
                written = out.len() - avail;
                match status {
                    JxlEncoderStatus::JXL_ENC_SUCCESS => break,
                    JxlEncoderStatus::JXL_ENC_NEED_MORE_OUTPUT => out.resize(out.len() * 2, 0),
                    _ => return Err(PipelineError::Encode("libjxl: encoding failed".into())),
                }
            }
            out.truncate(written);
            Ok(out)
        }
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: `self.0` came from JxlEncoderCreate and is destroyed once, here.
        unsafe { JxlEncoderDestroy(self.0) }
    }
}

fn check(status: JxlEncoderStatus, step: &str) -> Result<(), PipelineError> {
    if status == JxlEncoderStatus::JXL_ENC_SUCCESS {
        Ok(())
    } else {
        Err(PipelineError::Encode(format!("libjxl refused the {step}")))
    }
}

#[cfg(test)]
mod tests {
    use image::{GenericImageView, Rgb, RgbImage, Rgba, RgbaImage};

    use super::*;

    /// Decoded by jxl-oxide, the decoder JPEG XL originals go through: not libjxl's own.
    fn decoded(bytes: &[u8]) -> DynamicImage {
        crate::transform::decode::jxl::decode(bytes, 1 << 24).expect("jxl-oxide reads libjxl's output").image
    }

    #[test]
    fn rgb_and_rgba_round_trip_through_an_independent_decoder() {
        let rgb = RgbImage::from_fn(64, 40, |x, _| if x < 32 { Rgb([220, 30, 30]) } else { Rgb([30, 30, 220]) });
        let bytes = encode(&DynamicImage::ImageRgb8(rgb), 80).unwrap();
        assert_eq!(crate::format::ImageFormat::sniff(&bytes), Some(crate::format::ImageFormat::Jxl));
        let image = decoded(&bytes);
        assert_eq!(image.dimensions(), (64, 40));
        let (left, right) = (image.get_pixel(8, 20), image.get_pixel(56, 20));
        assert!(left[0] > 180 && left[2] < 70, "red stays red: {left:?}");
        assert!(right[2] > 180 && right[0] < 70, "blue stays blue: {right:?}");

        let rgba = RgbaImage::from_fn(16, 16, |x, _| Rgba([10, 200, 10, if x < 8 { 0 } else { 255 }]));
        let image = decoded(&encode(&DynamicImage::ImageRgba8(rgba), 80).unwrap());
        assert!(image.color().has_alpha(), "alpha is kept");
        assert!(image.get_pixel(2, 8)[3] < 16 && image.get_pixel(14, 8)[3] > 240);
    }

    #[test]
    fn jxl_quality_keeps_its_points_and_its_order() {
        assert!((jxl_quality(80) - 78.0).abs() < 1e-3);
        assert!((jxl_quality(35) - 44.0).abs() < 1e-3, "halfway between 30 and 40");
        assert!((jxl_quality(1) - 1.0).abs() < 1e-3 && (jxl_quality(100) - 100.0).abs() < 1e-3);
        assert!((1..100).all(|n| jxl_quality(n) < jxl_quality(n + 1)), "monotone");
    }

    #[test]
    fn lower_quality_makes_fewer_bytes() {
        let img = RgbImage::from_fn(96, 96, |x, y| Rgb([(x * 2) as u8, (y * 2) as u8, ((x * y) % 256) as u8]));
        let img = DynamicImage::ImageRgb8(img);
        let (high, low) = (encode(&img, 95).unwrap(), encode(&img, 30).unwrap());
        assert!(low.len() < high.len(), "{} < {}", low.len(), high.len());
    }
}
