//! Area averaging by an integer factor, fed row by row: an image shrinks on load without ever
//! existing at full size. The PNG and GIF decoders stream their rows into it.
//!
//! Colour is averaged weighted by alpha (premultiplied), so transparent pixels do not darken
//! the edges of what is kept.

/// Most a side may shrink in one pass (keeps the sums of a `k`×`k` block inside `u32`).
pub const MAX_FACTOR: u32 = 64;

/// Accumulates RGBA rows of a `width`×`height` image into one `k` times smaller on each side
/// (rounded up: edge blocks average fewer pixels).
pub struct BoxShrink {
    k: usize,
    width: usize,
    height: usize,
    out_width: usize,
    alpha: bool,
    /// Sums of the output row being built: premultiplied R, G, B and A per output pixel.
    band: Vec<u32>,
    rows_in_band: usize,
    rows_seen: usize,
    out: Vec<u8>,
}

impl BoxShrink {
    /// A shrinker for `width`×`height` RGBA rows by `k` (1..=[`MAX_FACTOR`]); the output keeps
    /// alpha when `alpha`, else it is RGB.
    pub fn new(width: u32, height: u32, k: u32, alpha: bool) -> Self {
        let k = k.clamp(1, MAX_FACTOR) as usize;
        let (width, height) = (width as usize, height as usize);
        let out_width = width.div_ceil(k);
        let out_height = height.div_ceil(k);
        let channels = if alpha { 4 } else { 3 };
        Self {
            k,
            width,
            height,
            out_width,
            alpha,
            band: vec![0; out_width * 4],
            rows_in_band: 0,
            rows_seen: 0,
            out: Vec::with_capacity(out_width * out_height * channels),
        }
    }

    /// Bytes this shrinker holds for a `width`×`height` image at `k`.
    pub fn footprint(width: u32, height: u32, k: u32) -> u64 {
        let k = u64::from(k.clamp(1, MAX_FACTOR));
        let (w, h) = (u64::from(width).div_ceil(k), u64::from(height).div_ceil(k));
        w * h * 4 + w * 16
    }

    /// Adds the next source row, `width` RGBA pixels; rows past the height are ignored.
    pub fn push(&mut self, rgba: &[u8]) {
        if self.rows_seen >= self.height {
            return;
        }
        for (x, px) in rgba.chunks_exact(4).take(self.width).enumerate() {
            let sums = &mut self.band[(x / self.k) * 4..][..4];
            let a = u32::from(px[3]);
            sums[0] += u32::from(px[0]) * a;
            sums[1] += u32::from(px[1]) * a;
            sums[2] += u32::from(px[2]) * a;
            sums[3] += a;
        }
        self.row_done();
    }

    /// Adds `rows` fully transparent source rows.
    pub fn push_transparent(&mut self, rows: usize) {
        for _ in 0..rows.min(self.height - self.rows_seen) {
            self.row_done();
        }
    }

    /// The shrunk pixels, `(width, height, bytes)`, RGBA or RGB as asked.
    pub fn finish(mut self) -> (u32, u32, Vec<u8>) {
        if self.rows_in_band > 0 {
            self.emit();
        }
        let channels = if self.alpha { 4 } else { 3 };
        let height = self.out.len() / (self.out_width * channels).max(1);
        (u32::try_from(self.out_width).unwrap_or(0), u32::try_from(height).unwrap_or(0), self.out)
    }

    fn row_done(&mut self) {
        self.rows_seen += 1;
        self.rows_in_band += 1;
        if self.rows_in_band == self.k || self.rows_seen == self.height {
            self.emit();
        }
    }

    /// Writes the averaged band as one output row and clears it.
    fn emit(&mut self) {
        for ox in 0..self.out_width {
            let cols = self.k.min(self.width - ox * self.k);
            let count = u32::try_from(cols * self.rows_in_band).unwrap_or(u32::MAX).max(1);
            let sums = &mut self.band[ox * 4..][..4];
            let alpha = sums[3];
            let colour = |sum: u32| u8::try_from((sum + alpha / 2) / alpha.max(1)).unwrap_or(u8::MAX);
            self.out.extend_from_slice(&[colour(sums[0]), colour(sums[1]), colour(sums[2])]);
            if self.alpha {
                self.out.push(u8::try_from((alpha + count / 2) / count).unwrap_or(u8::MAX));
            }
            sums.fill(0);
        }
        self.rows_in_band = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shrink(
        width: u32,
        height: u32,
        k: u32,
        alpha: bool,
        pixel: impl Fn(u32, u32) -> [u8; 4],
    ) -> (u32, u32, Vec<u8>) {
        let mut s = BoxShrink::new(width, height, k, alpha);
        for y in 0..height {
            let row: Vec<u8> = (0..width).flat_map(|x| pixel(x, y)).collect();
            s.push(&row);
        }
        s.finish()
    }

    #[test]
    fn blocks_average_and_edges_round_up() {
        // 5x3 by 2: 3x2 output; left column of blocks is red, the rest blue.
        let (w, h, out) = shrink(5, 3, 2, false, |x, _| if x < 2 { [255, 0, 0, 255] } else { [0, 0, 255, 255] });
        assert_eq!((w, h), (3, 2));
        assert_eq!(&out[..9], &[255, 0, 0, 0, 0, 255, 0, 0, 255]);
        assert_eq!(out.len(), 3 * 2 * 3);
    }

    #[test]
    fn colour_is_weighted_by_alpha() {
        // Half transparent black, half opaque white: the colour is white, the alpha half.
        let (_, _, out) = shrink(2, 1, 2, true, |x, _| if x == 0 { [0, 0, 0, 0] } else { [255, 255, 255, 255] });
        assert_eq!(out, vec![255, 255, 255, 128]);
    }

    #[test]
    fn transparent_rows_count_without_pixels() {
        let mut s = BoxShrink::new(4, 4, 2, true);
        s.push_transparent(2);
        s.push(&[9; 16]);
        s.push(&[9; 16]);
        let (w, h, out) = s.finish();
        assert_eq!((w, h), (2, 2));
        assert_eq!(&out[..8], &[0; 8]);
        assert_eq!(&out[8..], &[9, 9, 9, 9, 9, 9, 9, 9]);
    }

    #[test]
    fn a_factor_of_one_copies() {
        let (w, h, out) = shrink(3, 2, 1, true, |x, y| [x as u8, y as u8, 7, 255]);
        assert_eq!((w, h), (3, 2));
        assert_eq!(&out[4..8], &[1, 0, 7, 255]);
    }
}
