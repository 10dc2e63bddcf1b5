//! WebP with libwebp: still images decode straight to the scaled size (libwebp's rescaler works
//! row by row, so a lossy thumbnail never needs a full-size buffer); animations go through
//! image-webp for their first frame.

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use libwebp_sys as sys;

use super::Decoded;
use crate::transform::PipelineError;

/// What the bitstream header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Width (of the canvas, for animations).
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Whether any pixel may be transparent.
    pub alpha: bool,
    /// An animation (decoded by image-webp).
    pub animated: bool,
    /// Lossless (VP8L): libwebp keeps the whole image as ARGB while decoding.
    pub lossless: bool,
}

/// Reads the header.
pub fn features(bytes: &[u8]) -> Result<Features, PipelineError> {
    let mut config = sys::WebPDecoderConfig::new().map_err(|()| PipelineError::Internal("libwebp version"))?;
    // SAFETY: `bytes` is valid for its length and `config.input` is a plain out-parameter.
    let status = unsafe {
        sys::WebPGetFeaturesInternal(bytes.as_ptr(), bytes.len(), &mut config.input, sys::WEBP_DECODER_ABI_VERSION as _)
    };
    if status != sys::VP8StatusCode::VP8_STATUS_OK {
        return Err(PipelineError::Decode(format!("unreadable WebP header ({status:?})")));
    }
    let input = config.input;
    let size = |v: i32| u32::try_from(v).map_err(|_| PipelineError::Decode("negative WebP size".into()));
    Ok(Features {
        width: size(input.width)?,
        height: size(input.height)?,
        alpha: input.has_alpha != 0,
        animated: input.has_animation != 0,
        lossless: input.format == 2,
    })
}

/// Decodes a still WebP `k` times smaller on each side (rounded up); `None` for animations.
pub fn decode(bytes: &[u8], k: u32) -> Result<Option<Decoded>, PipelineError> {
    let features = features(bytes)?;
    if features.animated {
        return Ok(None);
    }
    let k = k.max(1);
    let (width, height) = (features.width.div_ceil(k), features.height.div_ceil(k));
    let channels = if features.alpha { 4 } else { 3 };
    let stride = width as usize * channels;
    let mut pixels = vec![0u8; stride * height as usize];
    let mut config = sys::WebPDecoderConfig::new().map_err(|()| PipelineError::Internal("libwebp version"))?;
    let dimension = |v: u32| i32::try_from(v).map_err(|_| PipelineError::Decode("WebP too large".into()));
    if k > 1 {
        config.options.use_scaling = 1;
        config.options.scaled_width = dimension(width)?;
        config.options.scaled_height = dimension(height)?;
    }
    config.output.colorspace =
        if features.alpha { sys::WEBP_CSP_MODE::MODE_RGBA } else { sys::WEBP_CSP_MODE::MODE_RGB };
    config.output.is_external_memory = 1;
    config.output.u.RGBA = sys::WebPRGBABuffer {
        rgba: pixels.as_mut_ptr(),
        stride: dimension(u32::try_from(stride).unwrap_or(u32::MAX))?,
        size: pixels.len(),
    };
    // SAFETY: the output buffer is `pixels`, exactly `stride` × `height` bytes, alive until the
    // call returns; libwebp checks that it is large enough and allocates nothing else for it.
    let status = unsafe { sys::WebPDecode(bytes.as_ptr(), bytes.len(), &mut config) };
    // SAFETY: frees only what libwebp may have allocated inside `output` (nothing, as the
    // memory is external); `pixels` is ours.
    unsafe { sys::WebPFreeDecBuffer(&mut config.output) };
    if status != sys::VP8StatusCode::VP8_STATUS_OK {
        return Err(PipelineError::Decode(format!("cannot decode WebP ({status:?})")));
    }
    let image = if features.alpha {
        RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    };
    let image = image.ok_or(PipelineError::Internal("decoded WebP buffer size"))?;
    let (orientation, icc) = metadata(bytes);
    Ok(Some(Decoded { image, orientation, icc, scale: k }))
}

/// The EXIF orientation and ICC profile of the RIFF container's `EXIF` and `ICCP` chunks.
fn metadata(bytes: &[u8]) -> (Orientation, Option<Vec<u8>>) {
    let (mut orientation, mut icc) = (Orientation::NoTransforms, None);
    let mut at = 12;
    while let (Some(kind), Some(len)) = (bytes.get(at..at + 4), bytes.get(at + 4..at + 8)) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let Some(data) = bytes.get(at + 8..(at + 8).saturating_add(len)) else { break };
        match kind {
            b"ICCP" => icc = Some(data.to_vec()),
            b"EXIF" => {
                let exif = data.strip_prefix(b"Exif\0\0").unwrap_or(data);
                orientation = Orientation::from_exif_chunk(exif).unwrap_or(orientation);
            }
            _ => {}
        }
        at += 8 + len + (len & 1);
    }
    (orientation, icc)
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use image::GenericImageView;

    use super::*;

    fn webp(img: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::WebP).unwrap();
        out.into_inner()
    }

    #[test]
    fn stills_decode_scaled() {
        let img = RgbImage::from_fn(
            40,
            20,
            |x, _| if x < 20 { image::Rgb([220, 20, 20]) } else { image::Rgb([20, 20, 220]) },
        );
        let bytes = webp(DynamicImage::ImageRgb8(img));
        let f = features(&bytes).unwrap();
        assert_eq!((f.width, f.height, f.animated), (40, 20, false));
        let decoded = decode(&bytes, 4).unwrap().unwrap();
        assert_eq!(decoded.image.dimensions(), (10, 5));
        let left = decoded.image.to_rgb8().get_pixel(1, 2).0;
        assert!(left[0] > 150 && left[2] < 100, "{left:?}");
        assert_eq!(decode(&bytes, 1).unwrap().unwrap().image.dimensions(), (40, 20));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(features(b"RIFF\x10\0\0\0WEBPVP8 \x04\0\0\0abcd").is_err());
        let bytes = webp(DynamicImage::ImageRgb8(RgbImage::from_pixel(64, 64, image::Rgb([1, 2, 3]))));
        assert!(decode(&bytes[..bytes.len() / 2], 2).is_err());
    }
}
