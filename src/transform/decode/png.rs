//! PNG with the `png` crate: rows are reduced to 8 bits as they are read, and — when the image
//! will shrink — averaged into a smaller image on the way, so a large PNG headed for a thumbnail
//! never exists at full size.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};
use png::{BitDepth, ColorType, Transformations};

use super::shrink::BoxShrink;
use super::Decoded;
use crate::transform::PipelineError;

/// What the header says about decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Samples per pixel once rows are 8-bit (gray 1, gray+alpha 2, RGB 3, RGBA 4).
    pub channels: u32,
    /// Whether the decoded pixels have alpha (including a palette's transparency).
    pub alpha: bool,
    /// Adam7: rows come out of order.
    pub interlaced: bool,
}

/// Reads the chunks before the image data.
pub fn header(bytes: &[u8]) -> Result<Header, PipelineError> {
    let reader = reader(bytes)?;
    let info = reader.info();
    let (color, _) = reader.output_color_type();
    Ok(Header {
        width: info.width,
        height: info.height,
        channels: u32::try_from(color.samples()).unwrap_or(4),
        alpha: matches!(color, ColorType::GrayscaleAlpha | ColorType::Rgba),
        interlaced: info.interlaced,
    })
}

/// Decodes, `k` times smaller on each side when `k` > 1 and the rows come in order.
pub fn decode(bytes: &[u8], k: u32) -> Result<Decoded, PipelineError> {
    let mut reader = reader(bytes)?;
    let info = reader.info();
    let (width, height, interlaced) = (info.width, info.height, info.interlaced);
    let icc = info.icc_profile.as_ref().map(|p| p.to_vec());
    let orientation = orientation(info);
    let (color, depth) = reader.output_color_type();
    if depth != BitDepth::Eight {
        return Err(PipelineError::Internal("PNG rows were not reduced to 8 bits"));
    }
    let alpha = matches!(color, ColorType::GrayscaleAlpha | ColorType::Rgba);
    let (image, scale) = if k > 1 && !interlaced {
        let mut shrink = BoxShrink::new(width, height, k, alpha);
        let mut rgba = vec![0u8; width as usize * 4];
        while let Some(row) = reader.next_row().map_err(error)? {
            to_rgba(row.data(), color, &mut rgba);
            shrink.push(&rgba);
        }
        let (w, h, pixels) = shrink.finish();
        (image_from(w, h, pixels, alpha)?, k)
    } else {
        let mut pixels = vec![0u8; reader.output_buffer_size().ok_or(PipelineError::Decode("PNG too large".into()))?];
        reader.next_frame(&mut pixels).map_err(error)?;
        let pixels = match color {
            ColorType::Rgb | ColorType::Rgba => pixels,
            gray => {
                let channels = gray.samples();
                let mut rgb = Vec::with_capacity(pixels.len() / channels * if alpha { 4 } else { 3 });
                for p in pixels.chunks_exact(channels) {
                    rgb.extend_from_slice(&[p[0], p[0], p[0]]);
                    if alpha {
                        rgb.push(p[1]);
                    }
                }
                rgb
            }
        };
        (image_from(width, height, pixels, alpha)?, 1)
    };
    Ok(Decoded { image, orientation, icc, scale })
}

fn orientation(info: &png::Info<'_>) -> Orientation {
    info.exif_metadata.as_ref().and_then(|exif| Orientation::from_exif_chunk(exif)).unwrap_or(Orientation::NoTransforms)
}

fn reader(bytes: &[u8]) -> Result<png::Reader<Cursor<&[u8]>>, PipelineError> {
    let mut decoder = png::Decoder::new(Cursor::new(bytes));
    // Palettes and low bit depths expand to 8 bits, 16 bits strip to 8: per row, as read.
    decoder.set_transformations(Transformations::normalize_to_color8());
    decoder.read_info().map_err(error)
}

/// One decoded row (8-bit gray, gray+alpha, RGB or RGBA) as RGBA.
fn to_rgba(row: &[u8], color: ColorType, out: &mut [u8]) {
    let channels = color.samples();
    for (src, dst) in row.chunks_exact(channels).zip(out.chunks_exact_mut(4)) {
        let rgba = match (channels, src) {
            (1, [v]) => [*v, *v, *v, 255],
            (2, [v, a]) => [*v, *v, *v, *a],
            (3, [r, g, b]) => [*r, *g, *b, 255],
            (_, [r, g, b, a, ..]) => [*r, *g, *b, *a],
            _ => [0, 0, 0, 0],
        };
        dst.copy_from_slice(&rgba);
    }
}

fn image_from(width: u32, height: u32, pixels: Vec<u8>, alpha: bool) -> Result<DynamicImage, PipelineError> {
    let image = if alpha {
        RgbaImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(width, height, pixels).map(DynamicImage::ImageRgb8)
    };
    image.ok_or(PipelineError::Internal("decoded PNG buffer size"))
}

fn error(e: png::DecodingError) -> PipelineError {
    PipelineError::Decode(e.to_string())
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, GenericImageView, ImageFormat, Rgba};

    use super::*;

    fn encode(img: DynamicImage) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).unwrap();
        out.into_inner()
    }

    #[test]
    fn rows_average_down_while_they_are_read() {
        let img =
            image::RgbaImage::from_fn(9, 4, |x, _| if x < 4 { Rgba([200, 0, 0, 255]) } else { Rgba([0, 0, 200, 0]) });
        let decoded = decode(&encode(DynamicImage::ImageRgba8(img)), 2).unwrap();
        assert_eq!((decoded.image.dimensions(), decoded.scale), ((5, 2), 2));
        let out = decoded.image.to_rgba8();
        assert_eq!(out.get_pixel(0, 0).0, [200, 0, 0, 255]);
        assert_eq!(out.get_pixel(2, 1).0[3], 0, "transparent stays transparent");
    }

    #[test]
    fn gray_and_sixteen_bits_come_out_as_8_bit_rgb() {
        let gray = image::ImageBuffer::from_pixel(4, 4, image::Luma([0x1234u16]));
        for k in [1, 2] {
            let decoded = decode(&encode(DynamicImage::ImageLuma16(gray.clone())), k).unwrap();
            assert_eq!(decoded.image.color(), image::ColorType::Rgb8);
            assert_eq!(decoded.image.to_rgb8().get_pixel(0, 0).0, [0x12; 3], "k = {k}");
        }
        let header = header(&encode(DynamicImage::ImageLuma16(gray))).unwrap();
        assert_eq!((header.channels, header.alpha, header.interlaced), (1, false, false));
    }

    #[test]
    fn truncated_image_data_fails_the_check() {
        let png =
            encode(DynamicImage::ImageRgb8(image::RgbImage::from_fn(64, 64, |x, y| image::Rgb([x as u8, y as u8, 7]))));
        for k in [1, 4] {
            assert!(decode(&png, k).is_ok());
            assert!(decode(&png[..png.len() - 40], k).is_err(), "k = {k}");
        }
    }
}
