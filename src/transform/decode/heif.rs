//! What AVIF and HEIC originals share, both being HEIF files: the header the limits read before
//! any pixel is decoded, and HEIF's `irot` and `imir` as the orientation that does the same.

use image::metadata::Orientation;

/// What the container says, before any pixel is decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Stored width (before `irot`).
    pub width: u32,
    /// Stored height.
    pub height: u32,
    /// Whether an alpha plane (an auxiliary alpha image) comes with the picture.
    pub alpha: bool,
    /// Bytes per pixel a decode holds at its peak: the decoder's planes and our 8-bit RGB(A).
    pub bytes_per_pixel: u64,
    /// What `irot` and `imir` ask for.
    pub orientation: Orientation,
}

/// One of HEIF's transformative properties, as the file lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `irot`: anticlockwise quarter turns.
    Turn(u8),
    /// `imir`: axis 0 exchanges top and bottom, 1 left and right (ISO/IEC 23008-12:2022, as
    /// libheif and libavif read it).
    Mirror(u8),
}

/// The orientation that does what `steps` ask, in their order.
pub fn orientation(steps: impl IntoIterator<Item = Step>) -> Orientation {
    // An element of the square's symmetry group: flip left-right first (when `.1`), then turn
    // `.0` quarter turns clockwise.
    let mut turns_flip = (0u8, false);
    for step in steps {
        let (turns, flip) = turns_flip;
        turns_flip = match step {
            Step::Turn(anticlockwise) => ((turns + 4 - anticlockwise % 4) % 4, flip),
            // A flip after a turn is the flip before the opposite turn; top-bottom is
            // left-right then a half turn.
            Step::Mirror(0) => ((6 - turns) % 4, !flip),
            Step::Mirror(_) => ((4 - turns) % 4, !flip),
        };
    }
    match turns_flip {
        (0, false) => Orientation::NoTransforms,
        (1, false) => Orientation::Rotate90,
        (2, false) => Orientation::Rotate180,
        (3, false) => Orientation::Rotate270,
        (0, true) => Orientation::FlipHorizontal,
        (2, true) => Orientation::FlipVertical,
        // `Rotate90FlipH` turns and then flips, which is flipping and then turning back.
        (3, true) => Orientation::Rotate90FlipH,
        _ => Orientation::Rotate270FlipH,
    }
}

#[cfg(test)]
mod tests {
    use image::{DynamicImage, RgbImage};

    use super::*;

    #[test]
    fn transforms_compose_in_order() {
        use Orientation::*;
        let (tb, lr) = (Step::Mirror(0), Step::Mirror(1));
        assert_eq!(orientation([]), NoTransforms);
        assert_eq!(orientation([Step::Turn(1)]), Rotate270);
        assert_eq!(orientation([Step::Turn(3)]), Rotate90);
        assert_eq!(orientation([Step::Turn(2)]), Rotate180);
        assert_eq!(orientation([lr]), FlipHorizontal);
        assert_eq!(orientation([tb]), FlipVertical);
        // EXIF 5 (transpose) and 7 (transverse), as libheif writes them: three anticlockwise
        // turns, then a flip.
        assert_eq!(orientation([Step::Turn(3), lr]), Rotate90FlipH);
        assert_eq!(orientation([Step::Turn(3), tb]), Rotate270FlipH);
        // The same, written the other way round.
        assert_eq!(orientation([Step::Turn(1), tb]), Rotate90FlipH);
        assert_eq!(orientation([Step::Turn(1), lr]), Rotate270FlipH);
        assert_eq!(orientation([lr, lr]), NoTransforms);
        assert_eq!(orientation([lr, tb]), Rotate180);
    }

    #[test]
    fn irot_and_imir_become_the_orientation_that_does_the_same() {
        // Six distinct pixels, so every one of the eight orientations looks different.
        let strip = DynamicImage::ImageRgb8(RgbImage::from_fn(3, 2, |x, y| image::Rgb([(x + 3 * y) as u8, 0, 0])));
        let done = |steps: &[Step]| {
            steps.iter().fold(strip.clone(), |img, step| match *step {
                Step::Turn(turns) => (0..turns).fold(img, |img, _| img.rotate270()), // anticlockwise
                Step::Mirror(0) => img.flipv(),
                Step::Mirror(_) => img.fliph(),
            })
        };
        let steps = [0, 1, 2, 3].map(Step::Turn).into_iter().chain([Step::Mirror(0), Step::Mirror(1)]);
        let pairs: Vec<[Step; 2]> = steps.clone().flat_map(|a| steps.clone().map(move |b| [a, b])).collect();
        for pair in pairs {
            for listed in [&pair[..1], &pair[..]] {
                let mut oriented = strip.clone();
                oriented.apply_orientation(orientation(listed.iter().copied()));
                assert_eq!(oriented, done(listed), "{listed:?}");
            }
        }
    }
}
