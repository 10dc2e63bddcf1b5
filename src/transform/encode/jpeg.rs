//! JPEG encoding with libjpeg (mozjpeg's library in its libjpeg-turbo mode: baseline, no
//! trellis, SIMD when nasm was there at build time), Huffman tables optimised per image.

use super::PipelineError;

/// How the chroma planes are sampled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// Half size on each axis (4:2:0): what outputs use.
    Half,
    /// Full size (4:4:4): what working copies use, so nothing is lost twice.
    Full,
}

/// Encodes `rgb` (8-bit, `width` × `height`, rows packed) at `quality` 1–100.
///
/// # Errors
/// [`PipelineError::Encode`] when libjpeg refuses (a side past 65535, say).
pub fn encode(rgb: &[u8], width: u32, height: u32, quality: u8, chroma: Chroma) -> Result<Vec<u8>, PipelineError> {
    let refused = |what: &str| PipelineError::Encode(format!("libjpeg: {what}"));
    if width == 0 || height == 0 || width > 65_535 || height > 65_535 {
        return Err(refused("a side outside 1 to 65535"));
    }
    let expected = (width as usize) * (height as usize) * 3;
    if rgb.len() != expected {
        return Err(PipelineError::Internal("JPEG input is not width × height RGB"));
    }
    // libjpeg reports errors by unwinding through its C frames (mozjpeg-sys `unwinding`).
    std::panic::catch_unwind(|| {
        let mut jpeg = mozjpeg::Compress::new(mozjpeg::ColorSpace::JCS_RGB);
        jpeg.set_fastest_defaults();
        jpeg.set_size(width as usize, height as usize);
        jpeg.set_quality(f32::from(quality.clamp(1, 100)));
        let sampling = match chroma {
            Chroma::Half => (2, 2),
            Chroma::Full => (1, 1),
        };
        jpeg.set_chroma_sampling_pixel_sizes(sampling, sampling);
        jpeg.set_optimize_coding(true);
        let mut started = jpeg.start_compress(Vec::with_capacity(expected / 8))?;
        started.write_scanlines(rgb)?;
        started.finish()
    })
    .map_err(|_| refused("the encoder failed"))?
    .map_err(|e| refused(&e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_what_decoders_read_back() {
        let (w, h) = (96u32, 40u32);
        // Smooth ramps: what photos are made of, and what 4:2:0 keeps.
        let rgb: Vec<u8> = (0..w * h).flat_map(|i| [((i % w) * 2) as u8, ((i / w) * 5) as u8, 128]).collect();
        for chroma in [Chroma::Half, Chroma::Full] {
            let bytes = encode(&rgb, w, h, 90, chroma).unwrap();
            let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
            assert_eq!(back.dimensions(), (w, h));
            let diff = back.as_raw().iter().zip(&rgb).map(|(a, b)| u64::from(a.abs_diff(*b))).sum::<u64>();
            assert!(diff / u64::from(w * h * 3) < 3, "{chroma:?}: mean difference {}", diff / u64::from(w * h * 3));
        }
        assert!(encode(&rgb, w, h + 1, 90, Chroma::Half).is_err(), "wrong length");
    }
}
