//! Variant identity: which output format a request resolves to, and the blake3 key that names
//! the result in every cache tier.

use std::fmt;

use super::geometry::Plan;
use super::grammar::{FormatChoice, Ops};
use super::quality::effective_quality;
use crate::format::ImageFormat;
use crate::ids::ImageId;

/// Bumped when the pipeline's output for the same ops changes, so old variants are not reused.
const PIPELINE_VERSION: &str = "imgedge-pipeline-v1";

/// A format's encoder revision, bumped when the same ops and quality make different bytes in
/// that format alone (empty until then, so the other formats' keys stay as they are): AVIF's
/// `q` was recalibrated to Sharp's scale, and builds with libaom (the `aom` feature) make other
/// bytes than builds with rav1e, so replicas of the two kinds never share an AVIF; JPEG moved
/// from jpeg-encoder to libjpeg; JPEG XL's `q` was calibrated to our JPEG's.
fn encoder_revision(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Avif if cfg!(feature = "aom") => "\0avif-aom",
        ImageFormat::Avif => "\0avif-q-calibrated",
        ImageFormat::Jpeg => "\0jpeg-libjpeg",
        ImageFormat::Jxl => "\0jxl-libjxl-q-calibrated",
        _ => "",
    }
}

/// The most pixels `fmt_auto` makes AVIF or JPEG XL at (2048 × 2048): above it, the slow
/// encoders would take seconds, and `fmt_auto` picks the next format accepted — a final answer,
/// not a stand-in. (`fmt_avif` and `fmt_jxl` are made at any size their formats hold.)
pub const AUTO_SLOW_MAX_PIXELS: u64 = 2048 * 2048;

/// Resolves the output format: an explicit `fmt_`, `fmt_auto` from `Accept`, or the source's.
/// `fmt_auto` keeps an `animated` source animated (WebP when accepted, else GIF), prefers JPEG
/// XL (when built), then AVIF — each up to [`AUTO_SLOW_MAX_PIXELS`] — then WebP, and passes over
/// formats that cannot hold an `output` that large.
pub fn resolve_format(
    choice: Option<FormatChoice>,
    source: ImageFormat,
    has_alpha: bool,
    animated: bool,
    accept: Option<&str>,
    output: (u32, u32),
) -> ImageFormat {
    match choice {
        Some(FormatChoice::Jpeg) => ImageFormat::Jpeg,
        Some(FormatChoice::Png) => ImageFormat::Png,
        Some(FormatChoice::Webp) => ImageFormat::Webp,
        Some(FormatChoice::Avif) => ImageFormat::Avif,
        Some(FormatChoice::Jxl) => ImageFormat::Jxl,
        Some(FormatChoice::Gif) => ImageFormat::Gif,
        Some(FormatChoice::Auto) => auto_format(accept, has_alpha, animated, output, true),
        None if source.is_encodable() && source.holds(output) => source,
        // A source this build cannot write (JPEG XL without `libjxl`, or larger than JPEG XL
        // output may be): what `fmt_auto` gives a browser that asks for none of the newer formats.
        None if has_alpha => ImageFormat::Png,
        None => ImageFormat::Jpeg,
    }
}

/// True when `accept` lists `mime` explicitly with a non-zero q.
pub fn accepts(accept: &str, mime: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let matches = parts.next().is_some_and(|m| m.eq_ignore_ascii_case(mime));
        let zero = parts.any(|p| p.strip_prefix("q=").is_some_and(|q| q.parse::<f32>().is_ok_and(|q| q <= 0.0)));
        matches && !zero
    })
}

/// What `fmt_auto` serves instead of a slow format (AVIF, JPEG XL) while that one is made:
/// the format it would pick without them (at worst PNG or JPEG, which every browser takes).
pub fn cheaper_auto_format(accept: Option<&str>, has_alpha: bool, output: (u32, u32)) -> ImageFormat {
    auto_format(accept, has_alpha, false, output, false)
}

/// `fmt_auto`'s choice; `slow` lets it pick AVIF and JPEG XL.
fn auto_format(accept: Option<&str>, has_alpha: bool, animated: bool, output: (u32, u32), slow: bool) -> ImageFormat {
    let accept = accept.unwrap_or_default();
    let pixels = u64::from(output.0) * u64::from(output.1);
    let takes = |format: ImageFormat| {
        let allowed = !format.is_slow() || (slow && pixels <= AUTO_SLOW_MAX_PIXELS);
        allowed && format.is_encodable() && format.holds(output) && accepts(accept, format.mime())
    };
    if animated {
        if takes(ImageFormat::Webp) {
            ImageFormat::Webp
        } else {
            ImageFormat::Gif
        }
    } else if takes(ImageFormat::Jxl) {
        ImageFormat::Jxl
    } else if takes(ImageFormat::Avif) {
        ImageFormat::Avif
    } else if takes(ImageFormat::Webp) {
        ImageFormat::Webp
    } else if has_alpha {
        ImageFormat::Png
    } else {
        ImageFormat::Jpeg
    }
}

/// `ops` without the tokens that cannot change this image's output, so they make no variant of
/// their own: `bg_` when nothing is padded and no alpha is flattened onto it, `still` when
/// there is no animation to stop (a still source, or an output that cannot animate). When
/// nothing is left ([`Ops::is_identity`]) the original is the answer. (A `fmt_` naming the
/// source's own format stays: re-encoding still strips metadata and applies orientation and
/// colour.)
pub fn relative_to_image(mut ops: Ops, plan: &Plan, has_alpha: bool, animated: bool, output: ImageFormat) -> Ops {
    let flattens = has_alpha && output == ImageFormat::Jpeg;
    if plan.pad.is_none() && !flattens {
        ops.bg = None;
    }
    if !animated || !output.can_animate() {
        ops.still = false;
    }
    ops
}

/// blake3 of what a transform produces: the image id, the ops that shape pixels, the geometry
/// as the plan resolved it, the resolved format and the effective quality.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VariantKey([u8; 32]);

/// Hashed as its first eight bytes: it is a digest already (see [`crate::cache::Digested`]).
impl std::hash::Hash for VariantKey {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        let [a, b, c, d, e, f, g, h, ..] = self.0;
        state.write_u64(u64::from_le_bytes([a, b, c, d, e, f, g, h]));
    }
}

impl VariantKey {
    /// The key of `ops`, whose geometry is `plan`, applied to `image` and encoded as `format`.
    ///
    /// Variants are named by what they are, not by how they were asked for: the box, ratio and
    /// fit enter as the sizes the plan made of them, so `w_300,dpr_2` and `w_600`, or every width
    /// above a small source, are one variant; format and quality enter resolved, so `w_300` and
    /// `w_300,fmt_jpeg,q_80` on a JPEG are one, while `fmt_auto` splits by what the client takes.
    pub fn new(image: &ImageId, ops: &Ops, plan: &Plan, format: ImageFormat) -> Self {
        let quality = effective_quality(format, ops.quality).map_or(0, super::quality::Quality::key);
        let mut hasher = blake3::Hasher::new();
        hasher.update(PIPELINE_VERSION.as_bytes());
        hasher.update(b"\0");
        hasher.update(image.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(produced(ops, plan).as_bytes());
        hasher.update(b"\0");
        hasher.update(format.as_str().as_bytes());
        hasher.update(&quality.to_le_bytes());
        hasher.update(encoder_revision(format).as_bytes());
        Self(*hasher.finalize().as_bytes())
    }

    /// The key after the image's variants were purged `purges` times (0: the key itself), so
    /// that a purge makes every cached copy, in every replica and the store, unreachable.
    #[must_use]
    pub fn purged(self, purges: u32) -> Self {
        if purges == 0 {
            return self;
        }
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.0);
        hasher.update(b"\0purged");
        hasher.update(&purges.to_le_bytes());
        Self(*hasher.finalize().as_bytes())
    }

    /// The key of the same ops when the output keeps the source's animation. (Before animations
    /// were kept, the plain key held the first frame; this keeps the two apart in every tier.)
    #[must_use]
    pub fn animated(self) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.0);
        hasher.update(b"\0animated");
        Self(*hasher.finalize().as_bytes())
    }

    /// 64 hex characters.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// A strong ETag: the first 128 bits in hex, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", hex::encode(&self.0[..16]))
    }
}

impl fmt::Debug for VariantKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VariantKey({})", &self.hex()[..16])
    }
}

/// What shapes the pixels, in one spelling: the ops other than the box, ratio, fit, gravity,
/// format and quality (crop, rotation and flips stay: they move pixels the plan does not
/// record), then the resampled size when it differs from the region, the window `cover` keeps
/// (with the gravity that places it) and the canvas `contain` pads to. Without a resize this is
/// the canonical ops alone, as it always was.
fn produced(ops: &Ops, plan: &Plan) -> String {
    use std::fmt::Write as _;
    let shaping = Ops {
        width: None,
        width_hint: None,
        height: None,
        dpr: None,
        dpr_hint: false,
        fit: None,
        gravity: None,
        format: None,
        quality: None,
        ..ops.clone()
    };
    let mut out = shaping.to_string();
    if plan.resized != plan.region {
        let _ = write!(out, "|resized_{}x{}", plan.resized.0, plan.resized.1);
    }
    if let Some((w, h)) = plan.extract {
        let gravity = ops.gravity.unwrap_or(super::grammar::Gravity::Center).token();
        let _ = write!(out, "|extract_{w}x{h}|{gravity}");
    }
    if let Some((w, h)) = plan.pad {
        let _ = write!(out, "|pad_{w}x{h}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transform::grammar::parse;

    /// A key hashes as its first eight bytes, as it is a digest already (`cache::Digested`);
    /// keys that share them are still two keys to a map.
    #[test]
    fn keys_hash_as_their_first_eight_bytes() {
        use std::hash::BuildHasher;
        let state = crate::cache::DigestedState::default();
        let a = key_on((1200, 800), "w_300", ImageFormat::Webp);
        let head = |key: &VariantKey| u64::from_le_bytes(key.0[..8].try_into().unwrap());
        assert_eq!(state.hash_one(a), head(&a));
        let mut b = a;
        b.0[31] ^= 1;
        assert_eq!(state.hash_one(b), state.hash_one(a));
        let map: std::collections::HashMap<_, _, crate::cache::DigestedState> = [(a, 1), (b, 2)].into_iter().collect();
        assert_eq!((map[&a], map[&b]), (1, 2));
    }

    /// The key of `ops` on a `source`-sized image.
    fn key_on(source: (u32, u32), ops: &str, format: ImageFormat) -> VariantKey {
        let id = ImageId::parse("AAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let ops = parse(ops, 8192).unwrap();
        let plan = crate::transform::geometry::plan(source, &ops, 8192).unwrap();
        VariantKey::new(&id, &ops, &plan, format)
    }

    fn key(ops: &str, format: ImageFormat) -> VariantKey {
        key_on((4000, 3000), ops, format)
    }

    /// `resolve_format` for an output of 300×200.
    fn resolve(
        choice: Option<FormatChoice>,
        source: ImageFormat,
        alpha: bool,
        animated: bool,
        accept: Option<&str>,
    ) -> ImageFormat {
        resolve_format(choice, source, alpha, animated, accept, (300, 200))
    }

    #[test]
    fn token_order_and_defaults_do_not_change_the_key() {
        assert_eq!(key("w_300,fmt_webp", ImageFormat::Webp), key("fmt_webp,w_300", ImageFormat::Webp));
        assert_eq!(key("w_300", ImageFormat::Jpeg), key("w_300,q_80,fmt_jpeg", ImageFormat::Jpeg));
        assert_eq!(key("w_300,q_10", ImageFormat::Png), key("w_300", ImageFormat::Png));
    }

    #[test]
    fn different_output_means_a_different_key() {
        assert_ne!(key("w_300", ImageFormat::Webp), key("w_300", ImageFormat::Avif));
        assert_ne!(key("w_300,q_70", ImageFormat::Webp), key("w_300", ImageFormat::Webp));
        assert_ne!(key("w_300", ImageFormat::Webp), key("w_301", ImageFormat::Webp));
    }

    #[test]
    fn keys_match_vectors_computed_with_the_reference_blake3() {
        // python3 -c "import blake3; print(blake3.blake3(b'imgedge-pipeline-v1\0' + ID
        //   + b'\0|resized_300x225\0webp' + (80).to_bytes(2, 'little')).hexdigest())"
        //   (the Python `blake3` package; ID is 22 × 'A', the source 4000×3000)
        let webp = key("w_300", ImageFormat::Webp);
        assert_eq!(webp.hex(), "5f914c9ed351cf04ce5b70d5ef07fb05e97e083bc70c1acf722e8569c955e9f1");
        assert_eq!(webp.etag(), "\"5f914c9ed351cf04ce5b70d5ef07fb05\"");
        // b'\0|resized_300x225|extract_300x200|g_center\0png' + (0).to_bytes(2, 'little')
        let png = key("h_200,w_300", ImageFormat::Png);
        assert_eq!(png.hex(), "5ff61544db46ee0f19cb50c82040bb6db2915d96d8d95c769de451f18b57b873");
        // Without a resize only the ops are hashed, as they always were (JPEG's encoder revision
        // follows): b'\0gray\0jpeg' + (80).to_bytes(2, 'little') + b'\0jpeg-libjpeg'.
        let gray = key("gray", ImageFormat::Jpeg);
        assert_eq!(gray.hex(), "f6187d0ad8f8e8a883003661f8550afab607cd180c6fc6df1b4f433abd7af49c");
    }

    #[test]
    fn tokens_that_change_nothing_drop_out() {
        let relative_animated = |ops: &str, alpha, animated, output| {
            let ops = parse(ops, 8192).unwrap();
            let plan = crate::transform::geometry::plan((40, 20), &ops, 8192).unwrap();
            relative_to_image(ops, &plan, alpha, animated, output).to_string()
        };
        let relative = |ops: &str, alpha, output| relative_animated(ops, alpha, false, output);
        let (jpeg, png) = (ImageFormat::Jpeg, ImageFormat::Png);
        assert_eq!(relative("bg_ffffff", false, jpeg), "");
        assert_eq!(relative("w_10,bg_ff0000,fmt_jpeg", false, jpeg), "w_10,fmt_jpeg");
        assert_eq!(relative("bg_ff0000,fmt_jpeg", true, jpeg), "bg_ff0000,fmt_jpeg", "alpha flattens onto it");
        assert_eq!(relative("bg_ff0000", true, png), "", "PNG keeps the alpha");
        assert_eq!(relative("w_10,h_10,fit_contain,bg_ff0000", false, jpeg), "w_10,h_10,fit_contain,bg_ff0000");
        assert_eq!(relative("fmt_jpeg", false, jpeg), "fmt_jpeg", "a re-encode strips metadata");
        let (gif, webp) = (ImageFormat::Gif, ImageFormat::Webp);
        assert_eq!(relative("still,w_10", false, gif), "w_10", "nothing to stop");
        assert_eq!(relative_animated("still,w_10", true, true, gif), "still,w_10");
        assert_eq!(relative_animated("still,w_10", true, true, webp), "still,w_10");
        assert_eq!(relative_animated("still,w_10", true, true, png), "w_10", "PNG takes the first frame anyway");
    }

    #[test]
    fn sizes_that_cannot_enlarge_are_one_variant() {
        let small = |ops: &str| key_on((120, 80), ops, ImageFormat::Jpeg);
        // Every width at or above the source's makes the source's size: one re-encoded variant.
        assert_eq!(small("w_144"), small("w_4096"));
        assert_eq!(small("w_144"), small("w_60,dpr_2"));
        assert_eq!(small("w_144"), small("fmt_jpeg"));
        assert_eq!(small("w_144,h_500,fit_inside"), small("h_80"));
        assert_ne!(small("w_144"), small("w_112"));
        // Ratios and boxes are named by the sizes they make.
        assert_eq!(key("w_300,dpr_2", ImageFormat::Webp), key("w_600", ImageFormat::Webp));
        assert_eq!(key("w_300,h_2000,fit_inside", ImageFormat::Webp), key("w_300", ImageFormat::Webp));
        assert_eq!(key("w_300,h_225", ImageFormat::Webp), key("w_300", ImageFormat::Webp), "cover cuts nothing");
        // What a resize cannot tell apart still is apart: the cut, its gravity, the padding.
        assert_ne!(key("w_300,h_300", ImageFormat::Webp), key("w_300,h_300,g_north", ImageFormat::Webp));
        assert_ne!(key("w_300,h_300,fit_fill", ImageFormat::Webp), key("w_300,h_300", ImageFormat::Webp));
        assert_ne!(key("w_300,h_300,fit_contain", ImageFormat::Webp), key("w_300,h_225", ImageFormat::Webp));
    }

    #[test]
    fn auto_passes_over_formats_too_small_for_the_output() {
        let chrome = Some("image/avif,image/webp,*/*");
        let auto = Some(FormatChoice::Auto);
        assert_eq!(resolve_format(auto, ImageFormat::Jpeg, false, false, chrome, (16_384, 10)), ImageFormat::Avif);
        assert_eq!(resolve_format(auto, ImageFormat::Jpeg, false, false, chrome, (16_385, 10)), ImageFormat::Jpeg);
        assert_eq!(resolve_format(auto, ImageFormat::Png, true, false, chrome, (10, 16_400)), ImageFormat::Png);
        assert_eq!(
            resolve_format(Some(FormatChoice::Webp), ImageFormat::Png, true, false, chrome, (10, 16_400)),
            ImageFormat::Webp,
            "an explicit format is refused later, not replaced"
        );
    }

    #[test]
    fn auto_makes_the_slow_formats_up_to_a_size_and_names_a_cheaper_one() {
        let chrome = Some("image/avif,image/webp,*/*");
        let auto = Some(FormatChoice::Auto);
        assert_eq!(resolve_format(auto, ImageFormat::Jpeg, false, false, chrome, (2048, 2048)), ImageFormat::Avif);
        assert_eq!(resolve_format(auto, ImageFormat::Jpeg, false, false, chrome, (2049, 2048)), ImageFormat::Webp);
        assert_eq!(
            resolve_format(Some(FormatChoice::Avif), ImageFormat::Jpeg, false, false, chrome, (4000, 4000)),
            ImageFormat::Avif
        );
        assert_eq!(cheaper_auto_format(chrome, false, (300, 200)), ImageFormat::Webp);
        assert_eq!(cheaper_auto_format(Some("image/avif,*/*"), true, (300, 200)), ImageFormat::Png);
        assert_eq!(cheaper_auto_format(Some("image/avif,*/*"), false, (300, 200)), ImageFormat::Jpeg);
    }

    #[test]
    fn etag_is_quoted_hex() {
        let etag = key("w_1", ImageFormat::Png).etag();
        assert_eq!(etag.len(), 34);
        assert!(etag.starts_with('"') && etag.ends_with('"'));
    }

    #[test]
    fn auto_prefers_jpeg_xl_when_it_is_built_and_accepted() {
        let jxl = "image/jxl,image/avif,image/webp,*/*";
        let auto = resolve(Some(FormatChoice::Auto), ImageFormat::Jpeg, false, false, Some(jxl));
        let source = resolve(None, ImageFormat::Jxl, false, false, None);
        if cfg!(feature = "libjxl") {
            assert_eq!((auto, source), (ImageFormat::Jxl, ImageFormat::Jxl));
        } else {
            assert_eq!((auto, source), (ImageFormat::Avif, ImageFormat::Jpeg), "skipped when not built");
        }
        // An animation stays WebP, and `image/jxl;q=0` is a refusal.
        assert_eq!(resolve(Some(FormatChoice::Auto), ImageFormat::Gif, false, true, Some(jxl)), ImageFormat::Webp);
        let refused = "image/jxl;q=0,image/webp";
        assert_eq!(
            resolve(Some(FormatChoice::Auto), ImageFormat::Jpeg, false, false, Some(refused)),
            ImageFormat::Webp
        );
        assert_eq!(resolve(Some(FormatChoice::Jxl), ImageFormat::Png, true, false, None), ImageFormat::Jxl);
        // Past 4096 px a side JPEG XL is not written: `fmt_auto` and a JPEG XL source fall back.
        let auto = Some(FormatChoice::Auto);
        assert_eq!(resolve_format(auto, ImageFormat::Jpeg, false, false, Some(jxl), (4097, 10)), ImageFormat::Avif);
        assert_eq!(resolve_format(None, ImageFormat::Jxl, false, false, None, (4097, 10)), ImageFormat::Jpeg);
    }

    #[test]
    fn auto_follows_accept() {
        let chrome = "image/avif,image/webp,image/apng,image/*,*/*;q=0.8";
        assert_eq!(resolve(Some(FormatChoice::Auto), ImageFormat::Jpeg, false, false, Some(chrome)), ImageFormat::Avif);
        let webp_only = "image/webp,*/*";
        assert_eq!(
            resolve(Some(FormatChoice::Auto), ImageFormat::Jpeg, false, false, Some(webp_only)),
            ImageFormat::Webp
        );
        let refused = "image/avif;q=0, image/webp";
        assert_eq!(resolve(Some(FormatChoice::Auto), ImageFormat::Png, true, false, Some(refused)), ImageFormat::Webp);
        assert_eq!(resolve(Some(FormatChoice::Auto), ImageFormat::Png, true, false, Some("*/*")), ImageFormat::Png);
        assert_eq!(resolve(Some(FormatChoice::Auto), ImageFormat::Png, false, false, None), ImageFormat::Jpeg);
        assert_eq!(resolve(None, ImageFormat::Gif, false, false, Some(chrome)), ImageFormat::Gif);
        let auto = Some(FormatChoice::Auto);
        assert_eq!(resolve(auto, ImageFormat::Gif, true, true, Some(chrome)), ImageFormat::Webp, "animation");
        assert_eq!(resolve(auto, ImageFormat::Gif, true, true, Some("image/avif")), ImageFormat::Gif);
        assert_eq!(resolve(auto, ImageFormat::Webp, true, true, None), ImageFormat::Gif);
    }
}
