//! Image formats: the names used in the API and in `fmt_` tokens, MIME types, and recognising
//! a format from the first bytes of a file (never from what the client claims).

use std::fmt;
use std::str::FromStr;

/// An image format, judged from content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ImageFormat {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// WebP.
    Webp,
    /// GIF (first frame is used for transforms).
    Gif,
    /// AVIF (an input only in a build with `--features aom`).
    Avif,
    /// JPEG XL (an output only in a build with `--features libjxl`).
    Jxl,
    /// HEIC/HEIF: an input only (no build writes it).
    Heic,
}

impl ImageFormat {
    /// Lowercase name as used in the API and in `fmt_` tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Jpeg => "jpeg",
            Self::Png => "png",
            Self::Webp => "webp",
            Self::Gif => "gif",
            Self::Avif => "avif",
            Self::Jxl => "jxl",
            Self::Heic => "heic",
        }
    }

    /// MIME type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Webp => "image/webp",
            Self::Gif => "image/gif",
            Self::Avif => "image/avif",
            Self::Jxl => "image/jxl",
            Self::Heic => "image/heic",
        }
    }

    /// File extension for object keys.
    pub fn extension(self) -> &'static str {
        match self {
            Self::Jpeg => "jpg",
            other => other.as_str(),
        }
    }

    /// Recognises a format from the first bytes of a file, whatever the client claimed.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        match bytes {
            [0xFF, 0xD8, 0xFF, ..] => Some(Self::Jpeg),
            [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some(Self::Png),
            [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some(Self::Gif),
            [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'E', b'B', b'P', ..] => Some(Self::Webp),
            [_, _, _, _, b'f', b't', b'y', b'p', ..] => Self::sniff_heif(bytes),
            // A bare codestream, or the ISO BMFF container's signature box.
            [0xFF, 0x0A, ..] | [0, 0, 0, 0x0C, b'J', b'X', b'L', b' ', 0x0D, 0x0A, 0x87, 0x0A, ..] => Some(Self::Jxl),
            _ => None,
        }
    }

    /// AVIF or HEIC from an ISO BMFF `ftyp` box: its major brand, else the first compatible
    /// brand that names one of them (a file branded only `mif1` says nothing of its codec).
    fn sniff_heif(bytes: &[u8]) -> Option<Self> {
        let size = u32::from_be_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let brands = bytes.get(8..size.min(bytes.len()).min(256))?;
        // Major brand, minor version (skipped), compatible brands.
        let major = brands.get(..4).into_iter();
        let compatible = brands.get(8..).unwrap_or_default().chunks_exact(4);
        major.chain(compatible).find_map(|brand| match brand {
            b"avif" | b"avis" => Some(Self::Avif),
            b"heic" | b"heix" | b"heim" | b"heis" | b"hevc" | b"hevx" => Some(Self::Heic),
            _ => None,
        })
    }

    /// True when this build can decode the format (AVIF needs `--features aom`).
    pub fn is_decodable(self) -> bool {
        !matches!(self, Self::Avif) || cfg!(feature = "aom")
    }

    /// True when this build can encode the format (see [`ImageFormat::missing_encoder`]).
    pub fn is_encodable(self) -> bool {
        self != Self::Heic && self.missing_encoder().is_none()
    }

    /// The cargo feature that would build this format's encoder, when this build has none
    /// (JPEG XL without `--features libjxl`).
    pub fn missing_encoder(self) -> Option<&'static str> {
        (matches!(self, Self::Jxl) && !cfg!(feature = "libjxl")).then_some("libjxl")
    }

    /// The longest side an output in this format may have: what its encoders and the
    /// browsers' decoders take (WebP 16383; AVIF 16384, libavif's default; JPEG and GIF their
    /// 16-bit sizes; PNG's 2^31 - 1).
    pub fn max_side(self) -> u32 {
        match self {
            Self::Jpeg | Self::Gif => 65_535,
            Self::Webp => 16_383,
            Self::Avif => 16_384,
            // Ours, not the codestream's (2^30): libjxl holds about 13 bytes a pixel while it
            // encodes (220 MB at 4096 × 4096, measured), so larger outputs are refused (and
            // `fmt_auto` picks another format) rather than letting one request take gigabytes.
            Self::Jxl => 4096,
            // Never written; what a grid of HEVC tiles may describe.
            Self::Heic => 65_535,
            Self::Png => i32::MAX.unsigned_abs(),
        }
    }

    /// True when a `width` × `height` output fits this format.
    pub fn holds(self, (width, height): (u32, u32)) -> bool {
        width.max(height) <= self.max_side()
    }

    /// True for the formats whose encoders take seconds on large outputs (AVIF, JPEG XL), which
    /// `fmt_auto` makes only within a size and a time budget.
    pub fn is_slow(self) -> bool {
        matches!(self, Self::Avif | Self::Jxl)
    }

    /// True for the formats that hold animations (as sources and as outputs).
    pub fn can_animate(self) -> bool {
        matches!(self, Self::Gif | Self::Webp)
    }
}

impl fmt::Display for ImageFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ImageFormat {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "jpeg" | "jpg" => Ok(Self::Jpeg),
            "png" => Ok(Self::Png),
            "webp" => Ok(Self::Webp),
            "gif" => Ok(Self::Gif),
            "avif" => Ok(Self::Avif),
            "jxl" => Ok(Self::Jxl),
            "heic" => Ok(Self::Heic),
            _ => Err(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_sniffed_from_magic_bytes() {
        assert_eq!(ImageFormat::sniff(&[0xFF, 0xD8, 0xFF, 0xE0]), Some(ImageFormat::Jpeg));
        assert_eq!(ImageFormat::sniff(b"\x89PNG\r\n\x1a\n...."), Some(ImageFormat::Png));
        assert_eq!(ImageFormat::sniff(b"GIF89a...."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"GIF87a...."), Some(ImageFormat::Gif));
        assert_eq!(ImageFormat::sniff(b"RIFF\0\0\0\0WEBPVP8 "), Some(ImageFormat::Webp));
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x1cftypavif"), Some(ImageFormat::Avif));
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x18ftypmif1\0\0\0\0mif1avif"), Some(ImageFormat::Avif));
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x18ftypheic\0\0\0\0mif1heic"), Some(ImageFormat::Heic));
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x18ftypmif1\0\0\0\0mif1heix"), Some(ImageFormat::Heic));
        // A brand past the box's own size is not the file's.
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x10ftypmif1\0\0\0\0heic"), None);
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x14ftypisom\0\0\0\0mp41"), None);
        assert_eq!(ImageFormat::sniff(b"\xFF\x0A\xFA\x7F"), Some(ImageFormat::Jxl));
        assert_eq!(ImageFormat::sniff(b"\0\0\0\x0cJXL \r\n\x87\n\0\0"), Some(ImageFormat::Jxl));
    }

    #[test]
    fn lookalikes_are_not_images() {
        for bytes in [&b""[..], b"\xFF\xD8", b"RIFF\0\0\0\0WAVEfmt ", b"<svg xmlns=", b"%PDF-1.7", b"GIF90a"] {
            assert_eq!(ImageFormat::sniff(bytes), None, "{bytes:?}");
        }
    }

    #[test]
    fn format_names_round_trip() {
        for f in [
            ImageFormat::Jpeg,
            ImageFormat::Png,
            ImageFormat::Webp,
            ImageFormat::Gif,
            ImageFormat::Avif,
            ImageFormat::Jxl,
            ImageFormat::Heic,
        ] {
            assert_eq!(f.as_str().parse::<ImageFormat>(), Ok(f));
        }
    }
}
