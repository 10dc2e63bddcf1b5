//! GIF with the `gif` crate: the first frame, placed on the logical screen, streamed row by row
//! into a canvas that is already as small as the output allows. A tiny frame on a huge screen
//! costs the (shrunk) canvas, never a full-size one.

use std::io::Cursor;

use gif::{ColorOutput, DecodeOptions, Decoder};
use image::metadata::Orientation;
use image::{DynamicImage, RgbaImage};

use super::shrink::BoxShrink;
use super::Decoded;
use crate::transform::PipelineError;

/// The logical screen and the first frame's rectangle and layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Screen width.
    pub width: u32,
    /// Screen height.
    pub height: u32,
    /// First frame's width × height, when it is interlaced (then it is decoded whole).
    pub interlaced_frame: Option<(u32, u32)>,
}

/// Reads the screen and the first frame's descriptor; no pixels are decoded.
pub fn layout(bytes: &[u8]) -> Result<Layout, PipelineError> {
    let mut decoder = decoder(bytes)?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let frame = decoder.next_frame_info().map_err(error)?.ok_or_else(no_frames)?;
    let interlaced_frame = frame.interlaced.then(|| (u32::from(frame.width), u32::from(frame.height)));
    Ok(Layout { width, height, interlaced_frame })
}

/// The first frame on the screen, `k` times smaller on each side.
pub fn decode(bytes: &[u8], k: u32) -> Result<Decoded, PipelineError> {
    let mut decoder = decoder(bytes)?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let frame = decoder.next_frame_info().map_err(error)?.ok_or_else(no_frames)?;
    let (left, top) = (usize::from(frame.left), usize::from(frame.top));
    let (frame_width, frame_height, interlaced) =
        (usize::from(frame.width), usize::from(frame.height), frame.interlaced);
    let mut shrink = BoxShrink::new(width, height, k, true);
    let screen = width as usize;
    // Rows of the frame that fall on the screen, and where.
    let visible = frame_width.min(screen.saturating_sub(left));
    shrink.push_transparent(top);
    let mut canvas_row = vec![0u8; screen * 4];
    let mut place = |row: &[u8], shrink: &mut BoxShrink| {
        canvas_row.fill(0);
        if let (Some(dst), Some(src)) = (canvas_row.get_mut(left * 4..(left + visible) * 4), row.get(..visible * 4)) {
            dst.copy_from_slice(src);
        }
        shrink.push(&canvas_row);
    };
    if frame_width == 0 || frame_height == 0 {
        // Nothing to place: the screen stays transparent.
    } else if interlaced {
        // Rows arrive out of order: decode the frame whole, deinterlaced.
        let mut pixels = vec![0u8; decoder.buffer_size()];
        decoder.read_into_buffer(&mut pixels).map_err(error)?;
        for row in pixels.chunks_exact(frame_width * 4) {
            place(row, &mut shrink);
        }
    } else {
        let mut row = vec![0u8; frame_width * 4];
        for _ in 0..frame_height {
            if !decoder.fill_buffer(&mut row).map_err(error)? {
                return Err(PipelineError::Decode("GIF frame ends early".into()));
            }
            place(&row, &mut shrink);
        }
    }
    shrink.push_transparent(height as usize);
    let (w, h, pixels) = shrink.finish();
    let image = RgbaImage::from_raw(w, h, pixels).ok_or(PipelineError::Internal("GIF canvas size"))?;
    Ok(Decoded { image: DynamicImage::ImageRgba8(image), orientation: Orientation::NoTransforms, icc: None, scale: k })
}

/// Decodes every frame row by row without keeping any; returns the screen size and the
/// number of frames.
pub fn check(bytes: &[u8]) -> Result<(u32, u32, u32), PipelineError> {
    let mut decoder = decoder(bytes)?;
    let (width, height) = (u32::from(decoder.width()), u32::from(decoder.height()));
    let mut frames = 0;
    while let Some(frame) = decoder.next_frame_info().map_err(error)? {
        let mut row = vec![0u8; usize::from(frame.width) * 4];
        for _ in 0..frame.height {
            if !decoder.fill_buffer(&mut row).map_err(error)? {
                return Err(PipelineError::Decode("GIF frame ends early".into()));
            }
        }
        frames += 1;
    }
    if frames == 0 {
        return Err(no_frames());
    }
    Ok((width, height, frames))
}

fn decoder(bytes: &[u8]) -> Result<Decoder<Cursor<&[u8]>>, PipelineError> {
    let mut options = DecodeOptions::new();
    options.set_color_output(ColorOutput::RGBA);
    options.read_info(Cursor::new(bytes)).map_err(error)
}

pub(super) fn no_frames() -> PipelineError {
    PipelineError::Decode("GIF has no frames".into())
}

pub(super) fn error(e: gif::DecodingError) -> PipelineError {
    PipelineError::Decode(e.to_string())
}

#[cfg(test)]
mod tests {
    use image::GenericImageView;

    use super::*;

    /// A 2-colour GIF: `screen`, one frame of `frame` size at `at`, every pixel index 1.
    fn gif(screen: (u16, u16), frame: (u16, u16), at: (u16, u16)) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut encoder = gif::Encoder::new(&mut out, screen.0, screen.1, &[0, 0, 0, 255, 0, 0]).unwrap();
            let pixels = vec![1u8; usize::from(frame.0) * usize::from(frame.1)];
            let mut f = gif::Frame::from_indexed_pixels(frame.0, frame.1, pixels, None);
            (f.left, f.top) = at;
            encoder.write_frame(&f).unwrap();
        }
        out
    }

    #[test]
    fn a_small_frame_lands_on_a_shrunk_screen() {
        let bytes = gif((40, 20), (10, 10), (20, 10));
        let decoded = decode(&bytes, 5).unwrap();
        assert_eq!(decoded.image.dimensions(), (8, 4));
        let img = decoded.image.to_rgba8();
        assert_eq!(img.get_pixel(4, 2).0, [255, 0, 0, 255], "the frame's block");
        assert_eq!(img.get_pixel(0, 0).0[3], 0, "the rest of the screen is transparent");
        assert_eq!(layout(&bytes).unwrap(), Layout { width: 40, height: 20, interlaced_frame: None });
    }

    #[test]
    fn frames_past_the_screen_are_clipped() {
        let decoded = decode(&gif((10, 10), (8, 8), (6, 6)), 1).unwrap();
        assert_eq!(decoded.image.dimensions(), (10, 10));
        assert_eq!(decoded.image.to_rgba8().get_pixel(9, 9).0, [255, 0, 0, 255]);
    }

    #[test]
    fn the_check_reads_every_frame() {
        let bytes = gif((16, 16), (16, 16), (0, 0));
        assert_eq!(check(&bytes).unwrap(), (16, 16, 1));
        assert!(check(&bytes[..bytes.len() - 6]).is_err());
    }
}
