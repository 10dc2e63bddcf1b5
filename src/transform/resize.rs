//! Resampling with fast_image_resize (SIMD Lanczos3), cropping in the same pass.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::DynamicImage;

use super::PipelineError;

/// A source window in (possibly fractional) pixels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// Left edge.
    pub left: f64,
    /// Top edge.
    pub top: f64,
    /// Width.
    pub width: f64,
    /// Height.
    pub height: f64,
}

/// Resamples `window` of `img` (the whole image when `None`) to `to` pixels. `img` must be
/// `Rgb8` or `Rgba8`; alpha is premultiplied while filtering so edges do not darken.
///
/// # Errors
/// [`PipelineError::Internal`] if the buffers do not match their sizes (a bug).
pub fn resize(img: &DynamicImage, window: Option<Window>, to: (u32, u32)) -> Result<DynamicImage, PipelineError> {
    let (pixel_type, bytes) = match img {
        DynamicImage::ImageRgb8(buf) => (PixelType::U8x3, buf.as_raw().as_slice()),
        DynamicImage::ImageRgba8(buf) => (PixelType::U8x4, buf.as_raw().as_slice()),
        _ => return Err(PipelineError::Internal("resize expects 8-bit RGB or RGBA")),
    };
    let src = ImageRef::new(img.width(), img.height(), bytes, pixel_type)
        .map_err(|_| PipelineError::Internal("source buffer size"))?;
    let mut dst = Image::new(to.0.max(1), to.1.max(1), pixel_type);
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if let Some(w) = window {
        options = options.crop(w.left, w.top, w.width, w.height);
    }
    Resizer::new().resize(&src, &mut dst, &options).map_err(|_| PipelineError::Internal("resize failed"))?;
    let (w, h) = (dst.width(), dst.height());
    let out = dst.into_vec();
    let image = match pixel_type {
        PixelType::U8x3 => image::RgbImage::from_raw(w, h, out).map(DynamicImage::ImageRgb8),
        _ => image::RgbaImage::from_raw(w, h, out).map(DynamicImage::ImageRgba8),
    };
    image.ok_or(PipelineError::Internal("resized buffer size"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizes_rgb_and_rgba_to_the_exact_size() {
        let rgb = DynamicImage::ImageRgb8(image::RgbImage::from_pixel(40, 30, image::Rgb([200, 10, 10])));
        let out = resize(&rgb, None, (8, 6)).unwrap();
        assert_eq!((out.width(), out.height()), (8, 6));
        assert_eq!(out.as_rgb8().unwrap().get_pixel(4, 3).0, [200, 10, 10]);
        let rgba = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(40, 30, image::Rgba([0, 0, 255, 128])));
        let out = resize(&rgba, Some(Window { left: 10.0, top: 10.0, width: 20.0, height: 10.0 }), (4, 2)).unwrap();
        assert_eq!(out.as_rgba8().unwrap().get_pixel(1, 1).0, [0, 0, 255, 128]);
    }
}
