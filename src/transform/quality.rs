//! Encoder quality: the default of each lossy format, what applies when `q_` is given or not,
//! and `q_auto`'s levels. Variant identity reads it (the effective quality is part of a
//! variant's key) as well as the encoders.

use crate::format::ImageFormat;

/// What `q_` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quality {
    /// `q_N`: the encoder's quality N, 1–100.
    Fixed(u8),
    /// `q_auto[:level]`: the lowest quality whose output reaches the level's perceptual score
    /// ([`crate::transform::encode::auto`]).
    Auto(AutoLevel),
}

/// `q_auto`'s levels: the SSIMULACRA2 score each output must reach against the pixels it
/// was encoded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AutoLevel {
    /// `q_auto:best`.
    Best,
    /// `q_auto` and `q_auto:good`.
    Good,
    /// `q_auto:eco`.
    Eco,
}

impl AutoLevel {
    /// Every level, from the most bytes to the fewest.
    pub const ALL: [Self; 3] = [Self::Best, Self::Good, Self::Eco];

    /// The word after `q_auto:`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Best => "best",
            Self::Good => "good",
            Self::Eco => "eco",
        }
    }

    /// The SSIMULACRA2 score an output must reach (90 is about what people cannot tell apart
    /// side by side, 70 "high quality", 50 "medium": the metric's own scale). `good` is about
    /// what a fixed `q_80` JPEG scores on photos on average (78.2–78.8 on the README's corpus),
    /// so that the photos `q_80` serves worst get more bytes and those it over-serves fewer.
    pub fn target(self) -> f64 {
        match self {
            Self::Best => 85.0,
            Self::Good => 77.0,
            Self::Eco => 70.0,
        }
    }
}

impl std::str::FromStr for AutoLevel {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|l| l.as_str() == s).ok_or(())
    }
}

/// A requested `q` (1–100) on an encoder's own scale: linear between `points` (requested,
/// encoder's), which start at 1 and end at 100, so that a number means about the same in every
/// format (each table is measured by the bench harness's SSIM).
pub fn calibrated(points: &[(f32, f32)], q: u8) -> f32 {
    let q = f32::from(q.clamp(1, 100));
    points
        .windows(2)
        .find(|w| q <= w[1].0)
        .map_or(100.0, |w| w[0].1 + (q - w[0].0) * (w[1].1 - w[0].1) / (w[1].0 - w[0].0))
}

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
pub fn effective_quality(format: ImageFormat, requested: Option<Quality>) -> Option<Quality> {
    default_quality(format).map(|d| requested.unwrap_or(Quality::Fixed(d)))
}

impl Quality {
    /// N of `q_N`; `default` for `q_auto`, where no search is made (animations).
    pub fn fixed_or(self, default: u8) -> u8 {
        match self {
            Self::Fixed(q) => q,
            Self::Auto(_) => default,
        }
    }

    /// The number a variant's key holds: N for `q_N`, 256 and up for the `q_auto` levels (which
    /// make other bytes than any fixed N).
    pub fn key(self) -> u16 {
        match self {
            Self::Fixed(q) => u16::from(q),
            Self::Auto(level) => 256 + level as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quality_defaults_follow_the_spec() {
        assert_eq!(effective_quality(ImageFormat::Jpeg, None), Some(Quality::Fixed(80)));
        assert_eq!(effective_quality(ImageFormat::Avif, None), Some(Quality::Fixed(60)));
        assert_eq!(effective_quality(ImageFormat::Webp, Some(Quality::Fixed(33))), Some(Quality::Fixed(33)));
        assert_eq!(effective_quality(ImageFormat::Png, Some(Quality::Fixed(33))), None);
        let auto = Some(Quality::Auto(AutoLevel::Eco));
        assert_eq!(effective_quality(ImageFormat::Webp, auto), auto);
        assert_eq!(effective_quality(ImageFormat::Gif, auto), None);
    }

    #[test]
    fn every_quality_has_its_own_key() {
        let keys: std::collections::HashSet<u16> =
            (1..=100).map(Quality::Fixed).chain(AutoLevel::ALL.map(Quality::Auto)).map(Quality::key).collect();
        assert_eq!(keys.len(), 103);
    }
}
