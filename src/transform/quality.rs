//! Encoder quality: the default of each lossy format, and what applies when `q_` is given or
//! not. Variant identity reads it (the effective quality is part of a variant's key) as well as
//! the encoders.

use crate::format::ImageFormat;

/// Quality used when `q_` is not given, per format; `None` for lossless formats.
pub fn default_quality(format: ImageFormat) -> Option<u8> {
    match format {
        ImageFormat::Jpeg | ImageFormat::Webp | ImageFormat::Jxl => Some(80),
        ImageFormat::Avif => Some(60),
        ImageFormat::Png | ImageFormat::Gif => None,
        // Never an output.
        ImageFormat::Heic => None,
    }
}

/// The quality that applies: the requested one for lossy formats, else the default.
pub fn effective_quality(format: ImageFormat, requested: Option<u8>) -> Option<u8> {
    default_quality(format).map(|d| requested.unwrap_or(d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_defaults_follow_the_spec() {
        assert_eq!(effective_quality(ImageFormat::Jpeg, None), Some(80));
        assert_eq!(effective_quality(ImageFormat::Avif, None), Some(60));
        assert_eq!(effective_quality(ImageFormat::Webp, Some(33)), Some(33));
        assert_eq!(effective_quality(ImageFormat::Png, Some(33)), None);
    }
}
