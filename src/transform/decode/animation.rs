//! Animated GIF and WebP: how many frames and loops a file has (read without decoding pixels),
//! and its frames one at a time, each composited on the full canvas with its delay.
//!
//! Frames are yielded one by one, so a caller that shapes and encodes each in turn holds a
//! canvas or two, never the whole animation.

use std::io::Cursor;

use image::codecs::gif::GifDecoder;
use image::{AnimationDecoder, RgbaImage};
use libwebp_sys as sys;

use crate::format::ImageFormat;
use crate::transform::PipelineError;

/// How often an animation plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loops {
    /// Over and over.
    Forever,
    /// This many times in all (at least 1).
    Plays(u16),
}

impl Loops {
    /// From a GIF's NETSCAPE count: repetitions after the first play, none without the block.
    pub fn from_gif(repeat: gif::Repeat) -> Self {
        match repeat {
            gif::Repeat::Infinite => Self::Forever,
            gif::Repeat::Finite(n) => Self::Plays(n.saturating_add(1)),
        }
    }

    /// As a GIF's NETSCAPE count.
    pub fn to_gif(self) -> gif::Repeat {
        match self {
            Self::Forever => gif::Repeat::Infinite,
            Self::Plays(n) => gif::Repeat::Finite(n.saturating_sub(1)),
        }
    }

    /// From a WebP `ANIM` loop count: 0 is forever.
    pub fn from_webp(count: u16) -> Self {
        if count == 0 {
            Self::Forever
        } else {
            Self::Plays(count)
        }
    }

    /// As a WebP `ANIM` loop count.
    pub fn to_webp(self) -> u16 {
        match self {
            Self::Forever => 0,
            Self::Plays(n) => n.max(1),
        }
    }
}

/// What the container says about the animation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// Number of frames (1 for a still image).
    pub frames: u32,
    /// Loop count.
    pub loops: Loops,
    /// The widest and the tallest frame rectangle (GIF frames may reach past the screen, and a
    /// decoder allocates and decodes their whole rectangle); (0, 0) where frames always lie
    /// within the canvas.
    pub largest_frame: (u32, u32),
}

impl Info {
    const STILL: Self = Self { frames: 1, loops: Loops::Forever, largest_frame: (0, 0) };

    /// More than one frame.
    pub fn is_animated(&self) -> bool {
        self.frames > 1
    }

    /// What each frame is counted at, for pixels, memory and decode work: the larger of the
    /// `screen` (or canvas) and the largest frame rectangle, on each side.
    pub fn extent(&self, screen: (u32, u32)) -> (u32, u32) {
        (screen.0.max(self.largest_frame.0), screen.1.max(self.largest_frame.1))
    }

    /// Pixels of every frame, each counted at [`Info::extent`].
    pub fn pixels(&self, screen: (u32, u32)) -> u64 {
        let (w, h) = self.extent(screen);
        u64::from(w) * u64::from(h) * u64::from(self.frames)
    }
}

/// Counts the frames and reads the loop count, decoding no pixels (a GIF's compressed blocks are
/// skipped, a WebP's chunks walked). JPEG and PNG are one frame.
///
/// # Errors
/// [`PipelineError::Decode`] when the container is unreadable.
pub fn info(bytes: &[u8], format: ImageFormat) -> Result<Info, PipelineError> {
    match format {
        ImageFormat::Gif => gif_info(bytes),
        ImageFormat::Webp => Ok(webp_info(bytes)),
        _ => Ok(Info::STILL),
    }
}

fn gif_info(bytes: &[u8]) -> Result<Info, PipelineError> {
    let mut options = gif::DecodeOptions::new();
    options.skip_frame_decoding(true);
    let mut decoder = options.read_info(Cursor::new(bytes)).map_err(super::gif::error)?;
    let (mut frames, mut largest_frame) = (0u32, (0, 0));
    // `next_frame_info` skips the previous frame's data without keeping it (`read_next_frame`
    // would reserve a quarter of the frame's area for its compressed bytes: 1 GB for a 20-byte
    // file announcing a 65535×65535 frame).
    while let Some(frame) = decoder.next_frame_info().map_err(super::gif::error)? {
        frames = frames.saturating_add(1);
        largest_frame = (largest_frame.0.max(u32::from(frame.width)), largest_frame.1.max(u32::from(frame.height)));
    }
    if frames == 0 {
        return Err(super::gif::no_frames());
    }
    Ok(Info { frames, loops: Loops::from_gif(decoder.repeat()), largest_frame })
}

/// Walks the RIFF chunks: `ANIM` holds the loop count, each `ANMF` is a frame. A file without
/// them is a still.
fn webp_info(bytes: &[u8]) -> Info {
    let (mut frames, mut loops) = (0u32, Loops::Forever);
    let mut at = 12;
    while let (Some(kind), Some(len)) = (bytes.get(at..at + 4), bytes.get(at + 4..at + 8)) {
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        match kind {
            b"ANIM" => {
                if let Some(count) = bytes.get(at + 12..at + 14) {
                    loops = Loops::from_webp(u16::from_le_bytes([count[0], count[1]]));
                }
            }
            b"ANMF" => frames = frames.saturating_add(1),
            _ => {}
        }
        at = at.saturating_add(8).saturating_add(len).saturating_add(len & 1);
    }
    if frames > 1 {
        // libwebp refuses frames that leave the canvas.
        Info { frames, loops, largest_frame: (0, 0) }
    } else {
        Info::STILL
    }
}

/// One frame: the whole canvas after it is drawn, and how long it shows.
pub struct Frame {
    /// The canvas, RGBA.
    pub image: RgbaImage,
    /// Display time in milliseconds.
    pub delay_ms: u32,
}

/// The frames of an animated GIF or WebP, in order. The GIF decoder allocates at most
/// `max_alloc` bytes at once (its canvases and a frame's rectangle): a frame past it is an error,
/// not an allocation.
///
/// # Errors
/// [`PipelineError::Decode`] when the file cannot be opened; each frame may fail on its own.
pub fn frames<'a>(
    bytes: &'a [u8],
    format: ImageFormat,
    max_alloc: u64,
) -> Result<Box<dyn Iterator<Item = Result<Frame, PipelineError>> + 'a>, PipelineError> {
    match format {
        ImageFormat::Gif => {
            let mut decoder = GifDecoder::new(Cursor::new(bytes)).map_err(super::decode_error)?;
            let mut limits = image::Limits::default();
            limits.max_alloc = Some(max_alloc);
            image::ImageDecoder::set_limits(&mut decoder, limits).map_err(super::decode_error)?;
            Ok(Box::new(decoder.into_frames().map(|frame| {
                let frame = frame.map_err(super::decode_error)?;
                let (numer, denom) = frame.delay().numer_denom_ms();
                Ok(Frame { delay_ms: numer / denom.max(1), image: frame.into_buffer() })
            })))
        }
        ImageFormat::Webp => Ok(Box::new(WebpFrames::new(bytes)?)),
        _ => Err(PipelineError::Internal("frames of a format without animation")),
    }
}

/// libwebp's animation decoder: it composites each frame onto its own canvas.
struct WebpFrames<'a> {
    decoder: *mut sys::WebPAnimDecoder,
    width: u32,
    height: u32,
    /// End time of the previous frame.
    elapsed: i32,
    _bytes: std::marker::PhantomData<&'a [u8]>,
}

// SAFETY: the decoder is owned by this value alone and libwebp keeps no thread-local state.
unsafe impl Send for WebpFrames<'_> {}

impl<'a> WebpFrames<'a> {
    fn new(bytes: &'a [u8]) -> Result<Self, PipelineError> {
        let data = sys::WebPData { bytes: bytes.as_ptr(), size: bytes.len() };
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimDecoderOptions>::uninit();
        // SAFETY: `options` is initialised by the call before it is read; `data` points into
        // `bytes`, which outlives the decoder (the lifetime 'a), and libwebp only reads it.
        let decoder = unsafe {
            if sys::WebPAnimDecoderOptionsInit(options.as_mut_ptr()) == 0 {
                return Err(PipelineError::Internal("libwebp demux version"));
            }
            let mut options = options.assume_init();
            options.color_mode = sys::WEBP_CSP_MODE::MODE_RGBA;
            options.use_threads = 0;
            sys::WebPAnimDecoderNew(&data, &options)
        };
        if decoder.is_null() {
            return Err(PipelineError::Decode("cannot open the WebP animation".into()));
        }
        let mut info = sys::WebPAnimInfo::default();
        // SAFETY: `decoder` is a live decoder; `info` is a plain out-parameter.
        let ok = unsafe { sys::WebPAnimDecoderGetInfo(decoder, &mut info) };
        let frames = Self {
            decoder,
            width: info.canvas_width,
            height: info.canvas_height,
            elapsed: 0,
            _bytes: std::marker::PhantomData,
        };
        if ok == 0 {
            return Err(PipelineError::Decode("unreadable WebP animation header".into()));
        }
        Ok(frames)
    }
}

impl Iterator for WebpFrames<'_> {
    type Item = Result<Frame, PipelineError>;

    fn next(&mut self) -> Option<Self::Item> {
        // SAFETY: `decoder` is live until drop.
        if unsafe { sys::WebPAnimDecoderHasMoreFrames(self.decoder) } == 0 {
            return None;
        }
        let (mut canvas, mut timestamp) = (std::ptr::null_mut::<u8>(), 0);
        // SAFETY: out-parameters; on success `canvas` points at width × height × 4 bytes owned by
        // the decoder and valid until the next call, which is after the copy below.
        let ok = unsafe { sys::WebPAnimDecoderGetNext(self.decoder, &mut canvas, &mut timestamp) };
        if ok == 0 || canvas.is_null() {
            return Some(Err(PipelineError::Decode("cannot decode a WebP animation frame".into())));
        }
        let len = self.width as usize * self.height as usize * 4;
        // SAFETY: see above; the canvas is exactly `len` bytes (RGBA at the canvas size).
        let pixels = unsafe { std::slice::from_raw_parts(canvas, len) }.to_vec();
        let delay_ms = u32::try_from(timestamp.saturating_sub(self.elapsed)).unwrap_or(0);
        self.elapsed = timestamp;
        Some(
            RgbaImage::from_raw(self.width, self.height, pixels)
                .map(|image| Frame { image, delay_ms })
                .ok_or(PipelineError::Internal("WebP canvas size")),
        )
    }
}

impl Drop for WebpFrames<'_> {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimDecoderNew, deleted once.
        unsafe { sys::WebPAnimDecoderDelete(self.decoder) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loop_counts_are_kept_as_plays() {
        for repeat in [gif::Repeat::Infinite, gif::Repeat::Finite(0), gif::Repeat::Finite(2)] {
            assert_eq!(Loops::from_gif(repeat).to_gif(), repeat);
        }
        assert_eq!(Loops::from_gif(gif::Repeat::Finite(2)).to_webp(), 3, "twice more after the first play");
        assert_eq!(Loops::from_gif(gif::Repeat::Finite(0)).to_webp(), 1, "no NETSCAPE block: once");
        assert_eq!(Loops::from_webp(0), Loops::Forever);
        assert_eq!(Loops::from_webp(1).to_gif(), gif::Repeat::Finite(0));
    }

    #[test]
    fn stills_and_garbage_are_one_frame_or_an_error() {
        assert_eq!(info(b"\xFF\xD8\xFF", ImageFormat::Jpeg).unwrap(), Info::STILL);
        assert_eq!(info(b"RIFF\x04\0\0\0WEBP", ImageFormat::Webp).unwrap(), Info::STILL);
        // A chunk length that runs past the end stops the walk.
        assert_eq!(info(b"RIFF\xff\xff\xff\xffWEBPANMF\xff\xff\xff\xff", ImageFormat::Webp).unwrap(), Info::STILL);
        assert!(info(b"GIF89a\x01\0\x01\0", ImageFormat::Gif).is_err());
    }
}
