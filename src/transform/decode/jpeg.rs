//! JPEG: DCT-scaled decoding with libjpeg (mozjpeg), and what the frame header says about the
//! memory a decode takes.

use image::metadata::Orientation;
use image::DynamicImage;

use super::Decoded;

/// DCT-scaled decode (1/2, 1/4, 1/8) with libjpeg; `None` when this decoder cannot handle the file (CMYK,
/// a libjpeg error), so the full decoder decides.
pub fn decode_scaled(bytes: &[u8], k: u32, max_pixels: u64) -> Option<Decoded> {
    // libjpeg reports errors by panicking through the C frames (mozjpeg-sys `unwinding`).
    std::panic::catch_unwind(|| {
        let markers = [mozjpeg::Marker::APP(1), mozjpeg::Marker::APP(2)];
        let mut jpeg = mozjpeg::Decompress::with_markers(&markers).from_mem(bytes).ok()?;
        let (w, h) = (jpeg.width() as u64, jpeg.height() as u64);
        let rgb_source = matches!(
            jpeg.color_space(),
            mozjpeg_sys::J_COLOR_SPACE::JCS_YCbCr
                | mozjpeg_sys::J_COLOR_SPACE::JCS_RGB
                | mozjpeg_sys::J_COLOR_SPACE::JCS_GRAYSCALE
        );
        if w * h > max_pixels || !rgb_source {
            return None;
        }
        let mut orientation = Orientation::NoTransforms;
        let mut icc_chunks: Vec<(u8, &[u8])> = Vec::new();
        for marker in jpeg.markers() {
            if let Some(exif) = marker.data.strip_prefix(b"Exif\0\0") {
                orientation = Orientation::from_exif_chunk(exif).unwrap_or(orientation);
            } else if let Some([seq, _count, data @ ..]) = marker.data.strip_prefix(b"ICC_PROFILE\0") {
                icc_chunks.push((*seq, data));
            }
        }
        icc_chunks.sort_by_key(|(seq, _)| *seq);
        let icc = (!icc_chunks.is_empty()).then(|| icc_chunks.iter().flat_map(|(_, d)| d.iter().copied()).collect());
        // libjpeg scales by numerator/8.
        jpeg.scale(u8::try_from(8 / k).ok()?);
        let mut started = jpeg.rgb().ok()?;
        let (w, h) = (u32::try_from(started.width()).ok()?, u32::try_from(started.height()).ok()?);
        let pixels = started.read_scanlines::<u8>().ok()?;
        started.finish().ok()?;
        let image = DynamicImage::ImageRgb8(image::RgbImage::from_raw(w, h, pixels)?);
        Some(Decoded { image, orientation, icc, scale: k })
    })
    .ok()
    .flatten()
}

/// The frame header: size, components with their sampling, and whether the scans are
/// progressive (then libjpeg keeps every coefficient until the last scan).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Horizontal and vertical sampling factors per component.
    pub sampling: Vec<(u8, u8)>,
    /// Progressive (SOF2, SOF6, SOF10, SOF14).
    pub progressive: bool,
}

impl Frame {
    /// Bytes of DCT coefficients a decoder keeps for the whole image (progressive only).
    pub fn coefficient_bytes(&self) -> u64 {
        if !self.progressive {
            return 0;
        }
        let (hmax, vmax) =
            self.sampling.iter().fold((1u64, 1u64), |(h, v), &(sh, sv)| (h.max(u64::from(sh)), v.max(u64::from(sv))));
        let (w, h) = (u64::from(self.width), u64::from(self.height));
        self.sampling
            .iter()
            .map(|&(sh, sv)| {
                let blocks_x = (w * u64::from(sh)).div_ceil(hmax * 8);
                let blocks_y = (h * u64::from(sv)).div_ceil(vmax * 8);
                blocks_x * blocks_y * 64 * 2
            })
            .sum()
    }
}

/// Reads the frame header (SOFn) by walking the marker segments before it.
pub fn frame(bytes: &[u8]) -> Option<Frame> {
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        if marker == 0xFF {
            at += 1;
            continue;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let segment = bytes.get(at + 4..at + 2 + len)?;
        if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
            let [_precision, h1, h0, w1, w0, components, ..] = *segment else { return None };
            let (height, width) = (u16::from_be_bytes([h1, h0]), u16::from_be_bytes([w1, w0]));
            let components = usize::from(components);
            let sampling = (0..components)
                .map(|i| segment.get(6 + i * 3 + 1).map(|s| (s >> 4, s & 0x0F)))
                .collect::<Option<Vec<_>>>()?;
            if sampling.iter().any(|&(h, v)| h == 0 || v == 0) {
                return None;
            }
            let progressive = matches!(marker, 0xC2 | 0xC6 | 0xCA | 0xCE);
            return Some(Frame { width: width.into(), height: height.into(), sampling, progressive });
        }
        at += 2 + len;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_headers_give_size_sampling_and_mode() {
        // SOI, SOF2 (progressive) 16x8 with Y 2x2 and Cb, Cr 1x1, EOI.
        let sof = [0xFF, 0xD8, 0xFF, 0xC2, 0, 17, 8, 0, 8, 0, 16, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, 0xFF, 0xD9];
        let frame = frame(&sof).unwrap();
        assert_eq!((frame.width, frame.height, frame.progressive), (16, 8, true));
        assert_eq!(frame.sampling, vec![(2, 2), (1, 1), (1, 1)]);
        // Y: 2x1 blocks, Cb and Cr: 1x1 each (4:2:0), 64 coefficients of 2 bytes.
        assert_eq!(frame.coefficient_bytes(), (2 + 1 + 1) * 128);
        assert!(super::frame(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 2]).is_none(), "truncated");
    }
}
