//! Client hints: `w_auto` and `dpr_auto` take their values from the request's hint headers,
//! snapped to a ladder, so one signed URL serves every screen from a bounded set of variants;
//! `Save-Data: on` lowers the default quality. The answer names in `Vary` exactly the headers
//! it depended on.

use http::{HeaderMap, HeaderValue};

pub use crate::cache::Vary;
use crate::format::ImageFormat;
use crate::transform::quality::default_quality;
use crate::transform::{FormatChoice, Ops};

/// Device pixel ratios `dpr_auto` rounds to, in hundredths.
const RATIOS: [u32; 4] = [100, 150, 200, 300];

/// How much `Save-Data: on` lowers the default quality.
const SAVE_DATA_QUALITY_DROP: u8 = 20;

/// Largest hint read (a longer number is ignored); the ladder caps what is used anyway.
const MAX_HINT_WIDTH: u32 = 100_000;

/// What the client said about its screen.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Hints {
    /// `Sec-CH-Width`, else `Width`: the image's width in device pixels.
    pub width: Option<u32>,
    /// `Sec-CH-DPR`, else `DPR`.
    pub dpr: Option<f64>,
    /// `Save-Data: on`.
    pub save_data: bool,
}

impl Hints {
    /// The hints in `headers`; malformed values count as absent. Of a header sent twice, the
    /// first counts.
    ///
    /// One pass over the headers, not a lookup per name: each lookup of a name `http` does not
    /// know hashes it, and five of them were a tenth of a cache hit's own work.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        // Sec-CH-Width, Width, Sec-CH-DPR, DPR, Save-Data.
        let mut found: [Option<&HeaderValue>; 5] = [None; 5];
        for (name, value) in headers {
            let slot = match name.as_str() {
                "sec-ch-width" => 0,
                "width" => 1,
                "sec-ch-dpr" => 2,
                "dpr" => 3,
                "save-data" => 4,
                _ => continue,
            };
            found[slot].get_or_insert(value);
        }
        let [ch_width, width, ch_dpr, dpr, save_data] = found.map(text);
        let width = ch_width.or(width).and_then(|v| v.parse::<u32>().ok()).filter(|w| (1..=MAX_HINT_WIDTH).contains(w));
        let dpr =
            ch_dpr.or(dpr).and_then(|v| v.parse::<f64>().ok()).filter(|d| d.is_finite() && *d > 0.0 && *d <= 16.0);
        let save_data =
            save_data.is_some_and(|v| v.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("on")));
        Self { width, dpr, save_data }
    }
}

/// `ops` with `w_auto` and `dpr_auto` filled in from `hints`, and what the answer varies by.
///
/// A hinted width is in device pixels already, so it is rounded up to the next step of `ladder`
/// (the top step when above) and no ratio multiplies it. Without a hint the width is `w_auto:N`'s
/// N, or `source_width`, and `dpr_auto`'s ratio (1 without a hint, else the nearest of 1, 1.5, 2
/// and 3) applies as `dpr_` would.
pub fn fill(ops: Ops, hints: &Hints, ladder: &[u32], source_width: u32) -> (Ops, Vary) {
    let mut vary = Vary { accept: ops.format == Some(FormatChoice::Auto), ..Vary::default() };
    if !ops.has_hints() {
        return (ops, vary);
    }
    let hinted_width = ops.width_hint.and(hints.width).map(|w| snap_width(w, ladder));
    let width = ops.width_hint.map(|h| hinted_width.unwrap_or_else(|| h.fallback.unwrap_or(source_width)));
    let dpr = match (ops.dpr_hint, hinted_width) {
        (false, _) | (true, Some(_)) => None,
        (true, None) => Some(snap_ratio(hints.dpr.unwrap_or(1.0))),
    };
    vary.width = ops.width_hint.is_some();
    vary.dpr = ops.dpr_hint;
    (ops.with_hints(width, dpr), vary)
}

/// The quality `Save-Data: on` asks of ops that set none, for a lossy `format`.
pub fn save_data_quality(ops: &Ops, format: ImageFormat) -> Option<u8> {
    if ops.quality.is_some() {
        return None;
    }
    default_quality(format).map(|q| q.saturating_sub(SAVE_DATA_QUALITY_DROP).max(1))
}

/// A hint header's value as text, trimmed; `None` when absent or not text.
fn text(value: Option<&HeaderValue>) -> Option<&str> {
    value.and_then(|v| v.to_str().ok()).map(str::trim)
}

/// The first step of `ladder` at least `width`, or its top; `width` when the ladder is empty.
fn snap_width(width: u32, ladder: &[u32]) -> u32 {
    ladder.iter().copied().find(|&step| step >= width).or(ladder.last().copied()).unwrap_or(width)
}

/// The nearest of [`RATIOS`] to `dpr`, in hundredths (ties round up).
fn snap_ratio(dpr: f64) -> u32 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 1..=16 above
    let wanted = (dpr.clamp(1.0, 16.0) * 100.0).round() as u32;
    RATIOS.into_iter().min_by_key(|&r| (r.abs_diff(wanted), u32::MAX - r)).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::parse;

    const LADDER: [u32; 4] = [100, 200, 400, 800];

    fn hints(width: Option<u32>, dpr: Option<f64>) -> Hints {
        Hints { width, dpr, save_data: false }
    }

    fn filled(ops: &str, h: Hints) -> (String, Vary) {
        let (ops, vary) = fill(parse(ops, 8192).unwrap(), &h, &LADDER, 1000);
        (ops.to_string(), vary)
    }

    #[test]
    fn widths_snap_up_the_ladder_and_fall_back_without_a_hint() {
        assert_eq!(filled("w_auto", hints(Some(150), None)).0, "w_200");
        assert_eq!(filled("w_auto", hints(Some(200), None)).0, "w_200");
        assert_eq!(filled("w_auto", hints(Some(5000), None)).0, "w_800", "the top step");
        assert_eq!(filled("w_auto:300", hints(None, None)).0, "w_300");
        assert_eq!(filled("w_auto", hints(None, None)).0, "w_1000", "the source width");
        let (_, vary) = filled("w_auto,fmt_auto", hints(Some(150), None));
        assert_eq!(vary.header().unwrap(), "Accept, Sec-CH-Width, Width");
    }

    #[test]
    fn ratios_round_to_four_steps_and_skip_hinted_widths() {
        for (dpr, expected) in
            [(1.0, "w_100"), (1.2, "w_100"), (1.3, "w_100,dpr_1.5"), (2.6, "w_100,dpr_3"), (9.0, "w_100,dpr_3")]
        {
            assert_eq!(filled("w_100,dpr_auto", hints(None, Some(dpr))).0, expected, "dpr {dpr}");
        }
        assert_eq!(filled("w_100,dpr_auto", hints(None, None)).0, "w_100");
        // Sec-CH-Width counts device pixels already.
        assert_eq!(filled("w_auto,dpr_auto", hints(Some(300), Some(2.0))).0, "w_400");
        assert_eq!(filled("w_auto:300,dpr_auto", hints(None, Some(2.0))).0, "w_300,dpr_2");
        let (_, vary) = filled("w_100,dpr_auto", hints(None, Some(2.0)));
        assert_eq!(vary.header().unwrap(), "Sec-CH-DPR, DPR");
        assert_eq!(filled("w_100", hints(Some(300), Some(2.0))), ("w_100".to_owned(), Vary::default()));
    }

    #[test]
    fn headers_are_read_with_the_standard_names_first() {
        let mut h = HeaderMap::new();
        h.insert("width", HeaderValue::from_static("320"));
        h.insert("dpr", HeaderValue::from_static("2"));
        assert_eq!(Hints::from_headers(&h), Hints { width: Some(320), dpr: Some(2.0), save_data: false });
        h.insert("sec-ch-width", HeaderValue::from_static("640"));
        h.insert("sec-ch-dpr", HeaderValue::from_static("1.5"));
        h.insert("save-data", HeaderValue::from_static("on"));
        assert_eq!(Hints::from_headers(&h), Hints { width: Some(640), dpr: Some(1.5), save_data: true });
        let mut bad = HeaderMap::new();
        bad.insert("sec-ch-width", HeaderValue::from_static("-3"));
        bad.insert("sec-ch-dpr", HeaderValue::from_static("NaN"));
        bad.insert("save-data", HeaderValue::from_static("off"));
        assert_eq!(Hints::from_headers(&bad), Hints::default());
        // The first of a repeated header counts; a value that is not text counts as absent, so
        // the older name answers; `Save-Data` takes parameters.
        let mut repeated = HeaderMap::new();
        repeated.append("sec-ch-width", HeaderValue::from_bytes(b"\xff").unwrap());
        repeated.append("sec-ch-width", HeaderValue::from_static("800"));
        repeated.insert("width", HeaderValue::from_static(" 480 "));
        repeated.append("dpr", HeaderValue::from_static("3"));
        repeated.append("dpr", HeaderValue::from_static("1"));
        repeated.insert("save-data", HeaderValue::from_static("On; x=1"));
        assert_eq!(Hints::from_headers(&repeated), Hints { width: Some(480), dpr: Some(3.0), save_data: true });
    }

    #[test]
    fn save_data_lowers_only_a_default_lossy_quality() {
        let ops = parse("w_100", 8192).unwrap();
        assert_eq!(save_data_quality(&ops, ImageFormat::Jpeg), Some(60));
        assert_eq!(save_data_quality(&ops, ImageFormat::Avif), Some(40));
        assert_eq!(save_data_quality(&ops, ImageFormat::Png), None);
        assert_eq!(save_data_quality(&parse("w_100,q_90", 8192).unwrap(), ImageFormat::Jpeg), None);
    }
}
