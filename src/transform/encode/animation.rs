//! Animated GIF (the `gif` crate, a palette per frame) and animated WebP (libwebp's animation
//! encoder), fed one frame at a time so no caller holds the whole animation.

use image::DynamicImage;
use libwebp_sys as sys;

use super::{check_size, Settings};
use crate::format::ImageFormat;
use crate::transform::decode::animation::Loops;
use crate::transform::PipelineError;

/// NeuQuant's speed for each frame's palette (1 best … 30 fastest), as the still GIF encoder.
const GIF_SPEED: i32 = 10;

/// An animation being written.
pub struct Encoder {
    size: (u32, u32),
    inner: Inner,
}

enum Inner {
    Gif(gif::Encoder<Vec<u8>>),
    Webp(WebpAnimation),
}

impl Encoder {
    /// Starts an animation of `size` in `settings.format` (GIF or WebP) that plays `loops`.
    ///
    /// # Errors
    /// [`PipelineError::Encode`] for another format or a size the format cannot hold.
    pub fn new(settings: &Settings, size: (u32, u32), loops: Loops) -> Result<Self, PipelineError> {
        let (w, h) = size;
        check_size(settings.format, size)?;
        let inner = match settings.format {
            ImageFormat::Gif => {
                let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
                    return Err(PipelineError::Internal("a GIF side past the format's limit"));
                };
                let mut encoder = gif::Encoder::new(Vec::new(), w16, h16, &[]).map_err(encode_error)?;
                encoder.set_repeat(loops.to_gif()).map_err(encode_error)?;
                Inner::Gif(encoder)
            }
            ImageFormat::Webp => {
                Inner::Webp(WebpAnimation::new(size, loops, settings.quality.map_or(80, |q| q.fixed_or(80)))?)
            }
            other => return Err(PipelineError::Encode(format!("{other} cannot hold an animation"))),
        };
        Ok(Self { size, inner })
    }

    /// Appends a frame shown for `delay_ms`.
    ///
    /// # Errors
    /// [`PipelineError::Encode`] when the frame is not the animation's size or the encoder fails.
    pub fn add(&mut self, frame: &DynamicImage, delay_ms: u32) -> Result<(), PipelineError> {
        if (frame.width(), frame.height()) != self.size {
            return Err(PipelineError::Internal("animation frames differ in size"));
        }
        let mut rgba = frame.to_rgba8().into_raw();
        match &mut self.inner {
            Inner::Gif(encoder) => {
                // The size was checked against u16 in `new`.
                let (w, h) = (u16::try_from(self.size.0).unwrap_or(0), u16::try_from(self.size.1).unwrap_or(0));
                let mut gif_frame = gif::Frame::from_rgba_speed(w, h, &mut rgba, GIF_SPEED);
                // Hundredths of a second.
                gif_frame.delay = u16::try_from(delay_ms.div_ceil(10)).unwrap_or(u16::MAX);
                encoder.write_frame(&gif_frame).map_err(encode_error)
            }
            // Browsers show a GIF frame of 10 ms or less for 100 ms; a WebP frame needs a
            // duration, and this one keeps what viewers saw.
            Inner::Webp(animation) => animation.add(&rgba, if delay_ms <= 10 { 100 } else { delay_ms }),
        }
    }

    /// The finished file.
    ///
    /// # Errors
    /// [`PipelineError::Encode`] when the encoder fails.
    pub fn finish(self) -> Result<Vec<u8>, PipelineError> {
        match self.inner {
            Inner::Gif(encoder) => encoder.into_inner().map_err(encode_error),
            Inner::Webp(animation) => animation.finish(),
        }
    }
}

/// `WebPAnimEncoder`: it encodes each frame as it is added (keeping only the previous canvas and
/// the compressed frames), and chooses per frame between a full frame and a sub-rectangle.
struct WebpAnimation {
    encoder: *mut sys::WebPAnimEncoder,
    config: sys::WebPConfig,
    size: (u32, u32),
    /// Start time of the next frame, in milliseconds.
    timestamp: i32,
}

// SAFETY: the encoder is owned by this value alone and libwebp keeps no thread-local state.
unsafe impl Send for WebpAnimation {}

impl WebpAnimation {
    fn new(size: (u32, u32), loops: Loops, quality: u8) -> Result<Self, PipelineError> {
        let config = sys::WebPConfig::new_with_preset(sys::WebPPreset::WEBP_PRESET_DEFAULT, f32::from(quality))
            .map_err(|()| PipelineError::Internal("libwebp version"))?;
        let (w, h) = (side(size.0)?, side(size.1)?);
        let mut options = std::mem::MaybeUninit::<sys::WebPAnimEncoderOptions>::uninit();
        // SAFETY: the options are initialised by libwebp before they are read or changed.
        let encoder = unsafe {
            let version = sys::WebPGetMuxABIVersion();
            if sys::WebPAnimEncoderOptionsInitInternal(options.as_mut_ptr(), version) == 0 {
                return Err(PipelineError::Internal("libwebp mux version"));
            }
            let mut options = options.assume_init();
            options.anim_params.loop_count = i32::from(loops.to_webp());
            // A transparent background, as the canvas of the frames we read.
            options.anim_params.bgcolor = 0;
            sys::WebPAnimEncoderNewInternal(w, h, &options, version)
        };
        if encoder.is_null() {
            return Err(PipelineError::Encode("libwebp cannot start an animation".into()));
        }
        Ok(Self { encoder, config, size, timestamp: 0 })
    }

    fn add(&mut self, rgba: &[u8], delay_ms: u32) -> Result<(), PipelineError> {
        let mut picture = sys::WebPPicture::new().map_err(|()| PipelineError::Internal("libwebp version"))?;
        picture.use_argb = 1;
        picture.width = side(self.size.0)?;
        picture.height = side(self.size.1)?;
        let stride = side(self.size.0.saturating_mul(4))?;
        // SAFETY: `rgba` is width × height × 4 bytes (checked by the caller through the frame's
        // size); the picture owns what the import allocates and is freed below, after the
        // encoder has copied it (WebPAnimEncoderAdd does not keep the picture).
        let ok = unsafe {
            let imported = sys::WebPPictureImportRGBA(&mut picture, rgba.as_ptr(), stride);
            let added =
                imported != 0 && sys::WebPAnimEncoderAdd(self.encoder, &mut picture, self.timestamp, &self.config) != 0;
            sys::WebPPictureFree(&mut picture);
            added
        };
        if !ok {
            return Err(PipelineError::Encode(format!("libwebp refused an animation frame: {}", self.error())));
        }
        self.timestamp = self.timestamp.saturating_add(i32::try_from(delay_ms).unwrap_or(i32::MAX));
        Ok(())
    }

    fn finish(self) -> Result<Vec<u8>, PipelineError> {
        let mut data = sys::WebPData::default();
        // SAFETY: a null frame marks the end (its timestamp is the last frame's end); `data` is
        // filled by libwebp and freed with WebPDataClear after the copy.
        let ok = unsafe {
            sys::WebPAnimEncoderAdd(self.encoder, std::ptr::null_mut(), self.timestamp, std::ptr::null()) != 0
                && sys::WebPAnimEncoderAssemble(self.encoder, &mut data) != 0
        };
        if !ok || data.bytes.is_null() {
            return Err(PipelineError::Encode(format!("libwebp cannot finish the animation: {}", self.error())));
        }
        // SAFETY: `data` holds `size` bytes allocated by libwebp.
        let bytes = unsafe { std::slice::from_raw_parts(data.bytes, data.size) }.to_vec();
        // SAFETY: frees what Assemble allocated, once.
        unsafe { sys::WebPDataClear(&mut data) };
        Ok(bytes)
    }

    fn error(&self) -> String {
        // SAFETY: the encoder is live; the message is a NUL-terminated string it owns.
        let message = unsafe { sys::WebPAnimEncoderGetError(self.encoder) };
        if message.is_null() {
            return "unknown error".into();
        }
        // SAFETY: as above.
        unsafe { std::ffi::CStr::from_ptr(message) }.to_string_lossy().into_owned()
    }
}

impl Drop for WebpAnimation {
    fn drop(&mut self) {
        // SAFETY: created by WebPAnimEncoderNew, deleted once.
        unsafe { sys::WebPAnimEncoderDelete(self.encoder) };
    }
}

fn side(v: u32) -> Result<i32, PipelineError> {
    i32::try_from(v).map_err(|_| PipelineError::Encode("animation too large".into()))
}

fn encode_error(e: impl std::fmt::Display) -> PipelineError {
    PipelineError::Encode(e.to_string())
}
