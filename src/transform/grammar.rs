//! The ops grammar: `w_300,h_200,fit_cover,fmt_webp` → [`Ops`], and back in canonical form.
//!
//! Tokens are comma-separated, each `name_value` or a bare name, in any order. A duplicate,
//! unknown or out-of-range token is an error naming it. [`Ops`] is normalised while parsing
//! (defaults dropped, values in one spelling), and its `Display` prints the canonical string in
//! pipeline order, so `parse(canonical(x)) == x` and token order never changes the result.

use std::fmt::{self, Write as _};

use super::quality::{AutoLevel, Quality};
use super::OpsError;
use crate::ids::ImageId;

/// Longest accepted ops string.
pub const MAX_OPS_LEN: usize = 1024;

/// A token of the grammar as it is written, for people: its forms and what it does. The one
/// list every description of the grammar is held to (the README, docs/api.md, the OpenAPI
/// document, the console and the schemathesis dictionary are checked against it by
/// `tests/api/grammar_docs.rs`); the words of the enumerated values come from the tables below,
/// which parsing and printing use too.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    /// The name, before `_` (or the whole of a bare token).
    pub name: &'static str,
    /// How its value is written: `N`, a word list's name, `""` for a bare token.
    pub forms: &'static [&'static str],
    /// What it does, in a few words.
    pub meaning: &'static str,
}

/// Every token, in canonical order.
pub const TOKENS: &[Token] = &[
    Token { name: "still", forms: &[""], meaning: "the first frame of an animation only" },
    Token { name: "crop", forms: &["X:Y:W:H"], meaning: "cut this source region first" },
    Token { name: "rot", forms: &["90", "180", "270"], meaning: "rotate clockwise" },
    Token { name: "flip", forms: &["h", "v"], meaning: "mirror left-right, top-bottom" },
    Token { name: "w", forms: &["N", "auto", "auto:N"], meaning: "box width, or from the Sec-CH-Width hint" },
    Token { name: "h", forms: &["N"], meaning: "box height" },
    Token { name: "dpr", forms: &["X", "auto"], meaning: "multiplies the box, or from the Sec-CH-DPR hint" },
    Token {
        name: "fit",
        forms: &["cover", "contain", "fill", "inside", "outside"],
        meaning: "how the image fills the box",
    },
    Token {
        name: "g",
        forms: &[
            "center",
            "north",
            "south",
            "east",
            "west",
            "northeast",
            "northwest",
            "southeast",
            "southwest",
            "smart",
        ],
        meaning: "where cover crops",
    },
    Token { name: "blur", forms: &["S"], meaning: "Gaussian blur, sigma 0.3 to 100" },
    Token { name: "sharpen", forms: &["S"], meaning: "unsharp mask, sigma 0.3 to 10" },
    Token { name: "gray", forms: &[""], meaning: "grayscale" },
    Token { name: "sepia", forms: &[""], meaning: "sepia" },
    Token { name: "bg", forms: &["RRGGBB"], meaning: "padding colour, and what alpha is flattened onto" },
    Token { name: "wm", forms: &["ID"], meaning: "watermark with another image of the owner" },
    Token {
        name: "q",
        forms: &["N", "auto", "auto:best", "auto:good", "auto:eco"],
        meaning: "quality 1 to 100, or the lowest that reaches a perceptual score",
    },
    Token { name: "fmt", forms: &["jpeg", "png", "webp", "avif", "jxl", "gif", "auto"], meaning: "output format" },
    Token { name: "p", forms: &["NAME"], meaning: "the owner's preset" },
];

/// `fit_` words, in [`TOKENS`]' order.
const FITS: [(&str, Fit); 5] = [
    ("cover", Fit::Cover),
    ("contain", Fit::Contain),
    ("fill", Fit::Fill),
    ("inside", Fit::Inside),
    ("outside", Fit::Outside),
];

/// `g_` words; the first spelling of a value is the one printed (`centre` is read too).
const GRAVITIES: [(&str, Gravity); 11] = [
    ("center", Gravity::Center),
    ("north", Gravity::North),
    ("south", Gravity::South),
    ("east", Gravity::East),
    ("west", Gravity::West),
    ("northeast", Gravity::NorthEast),
    ("northwest", Gravity::NorthWest),
    ("southeast", Gravity::SouthEast),
    ("southwest", Gravity::SouthWest),
    ("smart", Gravity::Smart),
    ("centre", Gravity::Center),
];

/// `rot_` values.
const ROTATIONS: [(&str, Rotation); 3] = [("90", Rotation::R90), ("180", Rotation::R180), ("270", Rotation::R270)];

/// `fmt_` words; `jpg` is read as `jpeg`.
const FORMATS: [(&str, FormatChoice); 8] = [
    ("jpeg", FormatChoice::Jpeg),
    ("png", FormatChoice::Png),
    ("webp", FormatChoice::Webp),
    ("avif", FormatChoice::Avif),
    ("jxl", FormatChoice::Jxl),
    ("gif", FormatChoice::Gif),
    ("auto", FormatChoice::Auto),
    ("jpg", FormatChoice::Jpeg),
];

/// The value `word` stands for in `table`.
fn read<T: Copy>(table: &[(&str, T)], word: &str) -> Option<T> {
    table.iter().find(|(w, _)| *w == word).map(|(_, v)| *v)
}

/// The first spelling of `value` in `table`.
fn spelling<T: PartialEq>(table: &[(&'static str, T)], value: &T) -> &'static str {
    table.iter().find(|(_, v)| v == value).map_or("", |(w, _)| w)
}

impl Gravity {
    /// The `g_` token.
    pub fn token(self) -> String {
        format!("g_{}", spelling(&GRAVITIES, &self))
    }
}

/// How the image fills the `w`×`h` box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fit {
    /// Fill the box and crop the rest (default when both w and h are given).
    Cover,
    /// Fit inside the box and pad with `bg`.
    Contain,
    /// Stretch to the box.
    Fill,
    /// Fit inside the box (default otherwise).
    Inside,
    /// Cover the box without cropping.
    Outside,
}

/// Where `cover` crops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Gravity {
    /// Middle (default).
    Center,
    /// Top edge.
    North,
    /// Bottom edge.
    South,
    /// Right edge.
    East,
    /// Left edge.
    West,
    /// Top-right corner.
    NorthEast,
    /// Top-left corner.
    NorthWest,
    /// Bottom-right corner.
    SouthEast,
    /// Bottom-left corner.
    SouthWest,
    /// The most interesting region (edges, saturation, skin tones).
    Smart,
}

/// Requested output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FormatChoice {
    /// JPEG.
    Jpeg,
    /// PNG.
    Png,
    /// Lossy WebP.
    Webp,
    /// AVIF.
    Avif,
    /// JPEG XL.
    Jxl,
    /// GIF.
    Gif,
    /// Best format the client's `Accept` allows.
    Auto,
}

/// A source rectangle in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rect {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width (≥ 1).
    pub width: u32,
    /// Height (≥ 1).
    pub height: u32,
}

/// Clockwise rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// 90° clockwise.
    R90,
    /// 180°.
    R180,
    /// 270° clockwise.
    R270,
}

/// A parsed, normalised transformation.
///
/// Decimals (`dpr`, sigmas) are kept in hundredths so they compare and print exactly.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Ops {
    /// `still`: the first frame of an animation only.
    pub still: bool,
    /// Source region cut first.
    pub crop: Option<Rect>,
    /// Rotation after the crop.
    pub rotate: Option<Rotation>,
    /// Mirror left-right.
    pub flip_h: bool,
    /// Mirror top-bottom.
    pub flip_v: bool,
    /// Target box width.
    pub width: Option<u32>,
    /// `w_auto[:N]`: the width comes from the client's hint (N, or the source width, without).
    pub width_hint: Option<WidthHint>,
    /// Target box height.
    pub height: Option<u32>,
    /// Device pixel ratio in hundredths (101..=400); `None` means 1.
    pub dpr: Option<u32>,
    /// `dpr_auto`: the ratio comes from the client's hint.
    pub dpr_hint: bool,
    /// Fit mode, when not the default for the given box.
    pub fit: Option<Fit>,
    /// Cover gravity, when not `center` and cover applies.
    pub gravity: Option<Gravity>,
    /// Gaussian blur sigma in hundredths.
    pub blur: Option<u32>,
    /// Sharpen sigma in hundredths.
    pub sharpen: Option<u32>,
    /// Grayscale filter.
    pub gray: bool,
    /// Sepia filter.
    pub sepia: bool,
    /// Padding / flattening colour.
    pub bg: Option<[u8; 3]>,
    /// Watermark image.
    pub watermark: Option<ImageId>,
    /// Encoder quality: 1–100, or `q_auto`'s level.
    pub quality: Option<Quality>,
    /// Output format.
    pub format: Option<FormatChoice>,
}

/// `w_auto` and its width when the client sends no hint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WidthHint {
    /// N of `w_auto:N`; without it, the source's width.
    pub fallback: Option<u32>,
}

impl Ops {
    /// The fit mode that applies, defaults included.
    pub fn effective_fit(&self) -> Fit {
        match (self.fit, self.has_width(), self.height) {
            (Some(fit), _, _) => fit,
            (None, true, Some(_)) => Fit::Cover,
            (None, _, _) => Fit::Inside,
        }
    }

    /// A preset's ops with `self`'s tokens on top: each token given here replaces the preset's
    /// (`w_` and `w_auto` are one slot, as are `dpr_` and `dpr_auto`); flags add up. Both are
    /// taken as written (not normalised), so a `fit_` given alone still applies to the preset's box.
    fn over(self, preset: Ops) -> Self {
        let (width, width_hint) =
            if self.has_width() { (self.width, self.width_hint) } else { (preset.width, preset.width_hint) };
        let (dpr, dpr_hint) =
            if self.dpr.is_some() || self.dpr_hint { (self.dpr, self.dpr_hint) } else { (preset.dpr, preset.dpr_hint) };
        let mut ops = Ops {
            still: self.still || preset.still,
            crop: self.crop.or(preset.crop),
            rotate: self.rotate.or(preset.rotate),
            flip_h: self.flip_h || preset.flip_h,
            flip_v: self.flip_v || preset.flip_v,
            width,
            width_hint,
            height: self.height.or(preset.height),
            dpr,
            dpr_hint,
            fit: self.fit.or(preset.fit),
            gravity: self.gravity.or(preset.gravity),
            blur: self.blur.or(preset.blur),
            sharpen: self.sharpen.or(preset.sharpen),
            gray: self.gray || preset.gray,
            sepia: self.sepia || preset.sepia,
            bg: self.bg.or(preset.bg),
            watermark: self.watermark.or(preset.watermark),
            quality: self.quality.or(preset.quality),
            format: self.format.or(preset.format),
        };
        normalise(&mut ops);
        ops
    }

    /// True when a width is given, as a number or by `w_auto`.
    fn has_width(&self) -> bool {
        self.width.is_some() || self.width_hint.is_some()
    }

    /// True when the width or the ratio waits for the client's hints.
    pub fn has_hints(&self) -> bool {
        self.width_hint.is_some() || self.dpr_hint
    }

    /// These ops with the hinted values filled in: `width` for `w_auto`, `dpr` (hundredths)
    /// for `dpr_auto`; normalised again, so they compare equal to the same ops written out.
    pub fn with_hints(mut self, width: Option<u32>, dpr: Option<u32>) -> Self {
        if self.width_hint.take().is_some() {
            self.width = width;
        }
        if std::mem::take(&mut self.dpr_hint) {
            self.dpr = dpr;
        }
        normalise(&mut self);
        self
    }

    /// True when nothing changes the pixels or the format: the original can be served as is.
    pub fn is_identity(&self) -> bool {
        *self == Self::default()
    }
}

/// Parses an ops string.
///
/// # Errors
/// [`OpsError`] naming the first bad token: empty, unknown, duplicate, malformed or out of
/// range; or the whole string when it is longer than [`MAX_OPS_LEN`].
pub fn parse(input: &str, max_dimension: u32) -> Result<Ops, OpsError> {
    let mut ops = parse_as_written(input, max_dimension)?;
    normalise(&mut ops);
    Ok(ops)
}

/// Parses `input` on top of a preset's ops (see [`Ops::over`]: tokens given replace the
/// preset's), then normalises the result.
///
/// # Errors
/// As [`parse`], for either string.
pub fn parse_with_preset(input: &str, preset: &str, max_dimension: u32) -> Result<Ops, OpsError> {
    let preset = parse_as_written(preset, max_dimension)?;
    Ok(parse_as_written(input, max_dimension)?.over(preset))
}

/// The tokens given beside a preset, checked but not normalised: each may override the
/// preset's (a `dpr_2` beside `p_card` scales the card's box, a `fit_` its fit), so none may be
/// dropped. Their `Display` is still the canonical order and spelling.
///
/// # Errors
/// As [`parse`].
pub fn parse_beside_preset(input: &str, max_dimension: u32) -> Result<Ops, OpsError> {
    parse_as_written(input, max_dimension)
}

/// The tokens of `input`, checked but not normalised.
fn parse_as_written(input: &str, max_dimension: u32) -> Result<Ops, OpsError> {
    if input.len() > MAX_OPS_LEN {
        return Err(OpsError::TooLong { len: input.len(), max: MAX_OPS_LEN });
    }
    let mut ops = Ops::default();
    if input.is_empty() {
        // The canonical form of "no change" (e.g. `dpr_2` alone) is the empty string.
        return Ok(ops);
    }
    let mut seen = Seen::default();
    for token in input.split(',') {
        parse_token(token, &mut ops, &mut seen, max_dimension)?;
    }
    Ok(ops)
}

/// Takes the `p_NAME` token (at most one) out of an ops string: the preset's name and the
/// other tokens, for [`parse`].
///
/// # Errors
/// [`OpsError::TooLong`], [`OpsError::Duplicate`] for a second `p_`, [`OpsError::Invalid`] for a
/// name that is not [`is_preset_name`].
pub fn split_preset(input: &str) -> Result<(Option<&str>, String), OpsError> {
    if input.len() > MAX_OPS_LEN {
        return Err(OpsError::TooLong { len: input.len(), max: MAX_OPS_LEN });
    }
    if !input.starts_with("p_") && !input.contains(",p_") {
        return Ok((None, input.to_owned()));
    }
    let (mut name, mut rest) = (None, Vec::new());
    for token in input.split(',') {
        match token.strip_prefix("p_") {
            Some(_) if name.is_some() => return Err(OpsError::Duplicate(token.to_owned())),
            Some(n) if is_preset_name(n) => name = Some(n),
            Some(_) => return Err(OpsError::Invalid(token.to_owned())),
            None => rest.push(token),
        }
    }
    Ok((name, rest.join(",")))
}

/// The ops of a URL that names preset `name` with `rest` on top: `p_NAME` first, then the
/// other tokens in canonical form (the inverse of [`split_preset`]).
pub fn with_preset(name: &str, rest: &Ops) -> String {
    let rest = rest.to_string();
    if rest.is_empty() {
        format!("p_{name}")
    } else {
        format!("p_{name},{rest}")
    }
}

/// `[a-z0-9_-]{1,32}`.
pub fn is_preset_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Which token names were already given (duplicates are errors).
#[derive(Default)]
struct Seen(u32);

impl Seen {
    fn first(&mut self, bit: u32, token: &str) -> Result<(), OpsError> {
        if self.0 & (1 << bit) != 0 {
            return Err(OpsError::Duplicate(token.to_owned()));
        }
        self.0 |= 1 << bit;
        Ok(())
    }
}

fn parse_token(token: &str, ops: &mut Ops, seen: &mut Seen, max_dim: u32) -> Result<(), OpsError> {
    if token.is_empty() {
        return Err(OpsError::Empty);
    }
    let (name, value) = token.split_once('_').unwrap_or((token, ""));
    let bad = || OpsError::Invalid(token.to_owned());
    let range = |range: &'static str| OpsError::OutOfRange { token: token.to_owned(), range };
    match (name, value) {
        ("w", "auto") => {
            seen.first(0, token)?;
            ops.width_hint = Some(WidthHint { fallback: None });
        }
        ("w", v) if v.starts_with("auto:") => {
            seen.first(0, token)?;
            let n = integer(&v[5..], 1, max_dim).map_err(|e| e.or(bad(), range("1 to the max dimension")))?;
            ops.width_hint = Some(WidthHint { fallback: Some(n) });
        }
        ("w", v) => {
            seen.first(0, token)?;
            ops.width = Some(integer(v, 1, max_dim).map_err(|e| e.or(bad(), range("1 to the max dimension")))?);
        }
        ("h", v) => {
            seen.first(1, token)?;
            ops.height = Some(integer(v, 1, max_dim).map_err(|e| e.or(bad(), range("1 to the max dimension")))?);
        }
        ("dpr", "auto") => {
            seen.first(2, token)?;
            ops.dpr_hint = true;
        }
        ("dpr", v) => {
            seen.first(2, token)?;
            ops.dpr = Some(hundredths(v, 100, 400).map_err(|e| e.or(bad(), range("1 to 4")))?);
        }
        ("fit", v) => {
            seen.first(3, token)?;
            ops.fit = Some(read(&FITS, v).ok_or_else(bad)?);
        }
        ("g", v) => {
            seen.first(4, token)?;
            ops.gravity = Some(read(&GRAVITIES, v).ok_or_else(bad)?);
        }
        ("crop", v) => {
            seen.first(5, token)?;
            ops.crop = Some(rect(v).ok_or_else(bad)?);
        }
        ("rot", v) => {
            seen.first(6, token)?;
            ops.rotate = Some(match read(&ROTATIONS, v) {
                Some(r) => r,
                None if v.bytes().all(|b| b.is_ascii_digit()) && !v.is_empty() => return Err(range("90, 180 or 270")),
                None => return Err(bad()),
            });
        }
        ("flip", "h") => {
            seen.first(7, token)?;
            ops.flip_h = true;
        }
        ("flip", "v") => {
            seen.first(8, token)?;
            ops.flip_v = true;
        }
        ("blur", v) => {
            seen.first(9, token)?;
            ops.blur = Some(hundredths(v, 30, 10_000).map_err(|e| e.or(bad(), range("0.3 to 100")))?);
        }
        ("sharpen", v) => {
            seen.first(10, token)?;
            ops.sharpen = Some(hundredths(v, 30, 1_000).map_err(|e| e.or(bad(), range("0.3 to 10")))?);
        }
        ("gray", "") => {
            seen.first(11, token)?;
            ops.gray = true;
        }
        ("sepia", "") => {
            seen.first(12, token)?;
            ops.sepia = true;
        }
        ("still", "") => {
            seen.first(17, token)?;
            ops.still = true;
        }
        ("bg", v) => {
            seen.first(13, token)?;
            ops.bg = Some(color(v).ok_or_else(bad)?);
        }
        ("wm", v) => {
            seen.first(14, token)?;
            ops.watermark = Some(ImageId::parse(v).ok_or_else(bad)?);
        }
        ("q", "auto") => {
            seen.first(15, token)?;
            ops.quality = Some(Quality::Auto(AutoLevel::Good));
        }
        ("q", v) if v.starts_with("auto:") => {
            seen.first(15, token)?;
            ops.quality = Some(Quality::Auto(v[5..].parse().map_err(|()| bad())?));
        }
        ("q", v) => {
            seen.first(15, token)?;
            let q = integer(v, 1, 100).map_err(|e| e.or(bad(), range("1 to 100")))?;
            ops.quality = Some(Quality::Fixed(u8::try_from(q).map_err(|_| bad())?));
        }
        ("fmt", v) => {
            seen.first(16, token)?;
            ops.format = Some(read(&FORMATS, v).ok_or_else(bad)?);
        }
        _ => return Err(OpsError::Unknown(token.to_owned())),
    }
    Ok(())
}

/// Drops values equal to their defaults so equivalent ops compare (and hash) equal.
fn normalise(ops: &mut Ops) {
    if !ops.has_width() && ops.height.is_none() {
        // Without a box there is nothing to scale, fit or crop towards.
        ops.dpr = None;
        ops.dpr_hint = false;
        ops.fit = None;
        ops.gravity = None;
    }
    if ops.dpr == Some(100) {
        ops.dpr = None;
    }
    let default_fit = if ops.has_width() && ops.height.is_some() { Fit::Cover } else { Fit::Inside };
    if ops.fit == Some(default_fit) {
        ops.fit = None;
    }
    if ops.gravity == Some(Gravity::Center) || ops.effective_fit() != Fit::Cover {
        ops.gravity = None;
    }
}

/// Why a number did not parse: not a number at all, or a number outside its range.
enum NumError {
    Malformed,
    OutOfRange,
}

impl NumError {
    fn or(self, malformed: OpsError, out_of_range: OpsError) -> OpsError {
        match self {
            Self::Malformed => malformed,
            Self::OutOfRange => out_of_range,
        }
    }
}

fn integer(v: &str, min: u32, max: u32) -> Result<u32, NumError> {
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumError::Malformed);
    }
    let n: u32 = v.parse().map_err(|_| NumError::Malformed)?;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(NumError::OutOfRange)
    }
}

/// A decimal with at most two fraction digits, in hundredths.
fn hundredths(v: &str, min: u32, max: u32) -> Result<u32, NumError> {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    if v.ends_with('.') || frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumError::Malformed);
    }
    let whole = integer(whole, 0, 1_000_000).map_err(|_| NumError::Malformed)?;
    let frac = match frac.len() {
        0 => 0,
        1 => integer(frac, 0, 9).map_err(|_| NumError::Malformed)? * 10,
        _ => integer(frac, 0, 99).map_err(|_| NumError::Malformed)?,
    };
    let n = whole * 100 + frac;
    if (min..=max).contains(&n) {
        Ok(n)
    } else {
        Err(NumError::OutOfRange)
    }
}

fn rect(v: &str) -> Option<Rect> {
    let mut parts = v.split(':').map(|p| integer(p, 0, 1_000_000).ok());
    let r = Rect { x: parts.next()??, y: parts.next()??, width: parts.next()??, height: parts.next()?? };
    (parts.next().is_none() && r.width > 0 && r.height > 0).then_some(r)
}

fn color(v: &str) -> Option<[u8; 3]> {
    if v.len() != 6 || !v.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let byte = |i: usize| u8::from_str_radix(v.get(i..i + 2)?, 16).ok();
    Some([byte(0)?, byte(2)?, byte(4)?])
}

fn write_hundredths(out: &mut fmt::Formatter<'_>, name: &str, v: u32) -> fmt::Result {
    match v % 100 {
        0 => write!(out, "{name}_{}", v / 100),
        f if f % 10 == 0 => write!(out, "{name}_{}.{}", v / 100, f / 10),
        f => write!(out, "{name}_{}.{f:02}", v / 100),
    }
}

impl fmt::Display for Ops {
    /// The canonical form: tokens in pipeline order, each in one spelling.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sep = Separator::default();
        if self.still {
            sep.next(f)?;
            f.write_str("still")?;
        }
        if let Some(r) = self.crop {
            sep.next(f)?;
            write!(f, "crop_{}:{}:{}:{}", r.x, r.y, r.width, r.height)?;
        }
        if let Some(r) = self.rotate {
            sep.next(f)?;
            write!(f, "rot_{}", spelling(&ROTATIONS, &r))?;
        }
        for (on, token) in [(self.flip_h, "flip_h"), (self.flip_v, "flip_v")] {
            if on {
                sep.next(f)?;
                f.write_str(token)?;
            }
        }
        if let Some(w) = self.width {
            sep.next(f)?;
            write!(f, "w_{w}")?;
        }
        if let Some(hint) = self.width_hint {
            sep.next(f)?;
            match hint.fallback {
                Some(n) => write!(f, "w_auto:{n}")?,
                None => f.write_str("w_auto")?,
            }
        }
        if let Some(h) = self.height {
            sep.next(f)?;
            write!(f, "h_{h}")?;
        }
        if let Some(d) = self.dpr {
            sep.next(f)?;
            write_hundredths(f, "dpr", d)?;
        }
        if self.dpr_hint {
            sep.next(f)?;
            f.write_str("dpr_auto")?;
        }
        if let Some(fit) = self.fit {
            sep.next(f)?;
            write!(f, "fit_{}", spelling(&FITS, &fit))?;
        }
        if let Some(g) = self.gravity {
            sep.next(f)?;
            write!(f, "g_{}", spelling(&GRAVITIES, &g))?;
        }
        if let Some(s) = self.blur {
            sep.next(f)?;
            write_hundredths(f, "blur", s)?;
        }
        if let Some(s) = self.sharpen {
            sep.next(f)?;
            write_hundredths(f, "sharpen", s)?;
        }
        for (on, token) in [(self.gray, "gray"), (self.sepia, "sepia")] {
            if on {
                sep.next(f)?;
                f.write_str(token)?;
            }
        }
        if let Some([r, g, b]) = self.bg {
            sep.next(f)?;
            write!(f, "bg_{r:02x}{g:02x}{b:02x}")?;
        }
        if let Some(wm) = &self.watermark {
            sep.next(f)?;
            write!(f, "wm_{wm}")?;
        }
        match self.quality {
            Some(Quality::Fixed(q)) => {
                sep.next(f)?;
                write!(f, "q_{q}")?;
            }
            // `q_auto:good` is written as its short form.
            Some(Quality::Auto(AutoLevel::Good)) => {
                sep.next(f)?;
                f.write_str("q_auto")?;
            }
            Some(Quality::Auto(level)) => {
                sep.next(f)?;
                write!(f, "q_auto:{}", level.as_str())?;
            }
            None => {}
        }
        if let Some(fmt) = self.format {
            sep.next(f)?;
            write!(f, "fmt_{}", spelling(&FORMATS, &fmt))?;
        }
        Ok(())
    }
}

/// Writes a comma before every token but the first.
#[derive(Default)]
struct Separator(bool);

impl Separator {
    fn next(&mut self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if std::mem::replace(&mut self.0, true) {
            f.write_char(',')?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn p(s: &str) -> Result<Ops, OpsError> {
        parse(s, 8192)
    }

    #[test]
    fn tokens_parse_into_typed_values() {
        let ops = p("w_300,h_200,fit_contain,g_north,fmt_webp,q_70,dpr_1.5,bg_FF8800").unwrap();
        assert_eq!(ops.width, Some(300));
        assert_eq!(ops.height, Some(200));
        assert_eq!(ops.fit, Some(Fit::Contain));
        assert_eq!(ops.gravity, None, "gravity only matters for cover");
        assert_eq!(ops.format, Some(FormatChoice::Webp));
        assert_eq!(ops.quality, Some(Quality::Fixed(70)));
        assert_eq!(ops.dpr, Some(150));
        assert_eq!(ops.bg, Some([0xff, 0x88, 0x00]));
    }

    #[test]
    fn q_auto_takes_a_level_and_is_written_short_for_good() {
        assert_eq!(p("q_auto").unwrap().quality, Some(Quality::Auto(AutoLevel::Good)));
        assert_eq!(p("q_auto:eco").unwrap().quality, Some(Quality::Auto(AutoLevel::Eco)));
        assert_eq!(p("w_10,q_auto:good").unwrap().to_string(), "w_10,q_auto");
        assert_eq!(p("q_auto:best,w_10").unwrap().to_string(), "w_10,q_auto:best");
        for bad in ["q_auto:", "q_auto:low", "q_auto:GOOD", "q_auto_good", "q_autos"] {
            assert_eq!(p(bad), Err(OpsError::Invalid(bad.into())), "{bad}");
        }
        assert_eq!(p("q_auto,q_80"), Err(OpsError::Duplicate("q_80".into())));
    }

    #[test]
    fn canonical_form_is_in_pipeline_order() {
        let ops = p("fmt_webp,gray,w_300,rot_90,crop_1:2:3:4,flip_v,still,flip_h,blur_2.5,q_50").unwrap();
        assert_eq!(ops.to_string(), "still,crop_1:2:3:4,rot_90,flip_h,flip_v,w_300,blur_2.5,gray,q_50,fmt_webp");
        assert_eq!(p("still,still"), Err(OpsError::Duplicate("still".into())));
        assert_eq!(p("still_1"), Err(OpsError::Unknown("still_1".into())));
    }

    #[test]
    fn defaults_are_normalised_away() {
        assert_eq!(p("w_300,h_200,fit_cover,g_center").unwrap().to_string(), "w_300,h_200");
        assert_eq!(p("w_300,fit_inside,dpr_1.00").unwrap().to_string(), "w_300");
        assert_eq!(p("dpr_2,fit_fill").unwrap().to_string(), "");
        assert_eq!(p("w_300,h_200,g_smart").unwrap().to_string(), "w_300,h_200,g_smart");
        assert_eq!(p("blur_1.50,sharpen_0.3").unwrap().to_string(), "blur_1.5,sharpen_0.3");
    }

    #[test]
    fn hint_tokens_wait_for_their_values() {
        let ops = p("dpr_auto,w_auto:640,fmt_webp").unwrap();
        assert_eq!((ops.width, ops.width_hint, ops.dpr_hint), (None, Some(WidthHint { fallback: Some(640) }), true));
        assert_eq!(ops.to_string(), "w_auto:640,dpr_auto,fmt_webp");
        assert_eq!(p("w_auto").unwrap().to_string(), "w_auto");
        assert_eq!(p("dpr_auto").unwrap().to_string(), "", "no box: nothing to scale");
        assert_eq!(p("w_auto,h_200,fit_cover").unwrap().to_string(), "w_auto,h_200", "cover is the default");
        assert_eq!(p("w_auto,w_300"), Err(OpsError::Duplicate("w_300".into())));
        assert_eq!(p("dpr_2,dpr_auto"), Err(OpsError::Duplicate("dpr_auto".into())));
        assert!(matches!(p("w_auto:0"), Err(OpsError::OutOfRange { .. })));
        assert_eq!(p("w_auto:x"), Err(OpsError::Invalid("w_auto:x".into())));
        // Filled in, they equal the same ops written out.
        let filled = p("w_auto,dpr_auto,h_100,fit_cover").unwrap().with_hints(Some(300), Some(200));
        assert_eq!(filled, p("w_300,h_100,dpr_2").unwrap());
        assert_eq!(p("w_auto,dpr_auto").unwrap().with_hints(Some(300), Some(100)), p("w_300").unwrap());
    }

    #[test]
    fn the_preset_token_comes_out_whole() {
        assert_eq!(split_preset("w_300").unwrap(), (None, "w_300".to_owned()));
        assert_eq!(split_preset("p_thumb").unwrap(), (Some("thumb"), String::new()));
        assert_eq!(split_preset("w_300,p_hero-2,q_50").unwrap(), (Some("hero-2"), "w_300,q_50".to_owned()));
        assert_eq!(split_preset("p_a,p_b"), Err(OpsError::Duplicate("p_b".into())));
        assert_eq!(split_preset("p_"), Err(OpsError::Invalid("p_".into())));
        assert_eq!(split_preset("p_Thumb"), Err(OpsError::Invalid("p_Thumb".into())));
        assert!(!is_preset_name(&"a".repeat(33)));
        let rest = p("q_50,w_10").unwrap();
        assert_eq!(with_preset("card", &rest), "p_card,w_10,q_50");
        assert_eq!(split_preset(&with_preset("card", &rest)).unwrap(), (Some("card"), "w_10,q_50".to_owned()));
        assert_eq!(with_preset("card", &Ops::default()), "p_card");
    }

    #[test]
    fn tokens_given_replace_the_presets() {
        let preset = "w_300,h_200,g_north,q_70,fmt_webp,gray";
        let with = |ops: &str| parse_with_preset(ops, preset, 8192).unwrap().to_string();
        assert_eq!(with("w_auto,q_90,sepia"), "w_auto,h_200,g_north,gray,sepia,q_90,fmt_webp");
        assert_eq!(with(""), p(preset).unwrap().to_string());
        // A fit given alone applies to the preset's box; the gravity it makes moot goes.
        assert_eq!(with("fit_contain"), "w_300,h_200,fit_contain,gray,q_70,fmt_webp");
        assert!(parse_with_preset("w_1", "w_x", 8192).is_err(), "a bad stored preset is an error");
    }

    #[test]
    fn the_token_list_agrees_with_the_parser() {
        fn words<T>(table: &[(&'static str, T)]) -> Vec<&'static str> {
            table.iter().map(|(w, _)| *w).collect()
        }
        let forms = |name: &str| TOKENS.iter().find(|t| t.name == name).unwrap().forms.to_vec();
        assert_eq!(forms("fit"), words(&FITS));
        assert_eq!(forms("g"), words(&GRAVITIES[..10]), "all but the `centre` alias");
        assert_eq!(forms("rot"), words(&ROTATIONS));
        assert_eq!(forms("fmt"), words(&FORMATS[..7]), "all but the `jpg` alias");
        // Every form parses, beside a box where it needs one.
        for token in TOKENS {
            for form in token.forms {
                let written = match (*form, token.name) {
                    ("", name) => name.to_owned(),
                    ("N" | "S" | "X", name) => format!("{name}_2"),
                    ("auto:N", name) => format!("{name}_auto:20"),
                    ("X:Y:W:H", name) => format!("{name}_1:2:3:4"),
                    ("RRGGBB", name) => format!("{name}_a0b1c2"),
                    ("ID", name) => format!("{name}_AAAAAAAAAAAAAAAAAAAAAA"),
                    ("NAME", _) => continue,
                    (word, name) => format!("{name}_{word}"),
                };
                let context = if matches!(token.name, "w" | "h") { String::new() } else { "w_10,h_10,".to_owned() };
                p(&format!("{context}{written}")).unwrap_or_else(|e| panic!("{written}: {e}"));
            }
        }
    }

    #[test]
    fn duplicate_width_is_rejected() {
        assert_eq!(p("w_300,w_400"), Err(OpsError::Duplicate("w_400".into())));
        assert_eq!(p("flip_h,flip_h"), Err(OpsError::Duplicate("flip_h".into())));
    }

    #[test]
    fn unknown_and_malformed_tokens_are_named() {
        assert_eq!(p("w_300,foo"), Err(OpsError::Unknown("foo".into())));
        assert_eq!(p("w_abc"), Err(OpsError::Invalid("w_abc".into())));
        assert_eq!(p("w_300,"), Err(OpsError::Empty));
        assert_eq!(p(","), Err(OpsError::Empty));
        assert_eq!(p("fit_squash"), Err(OpsError::Invalid("fit_squash".into())));
        assert_eq!(p("crop_1:2:0:4"), Err(OpsError::Invalid("crop_1:2:0:4".into())));
        assert_eq!(p("bg_fff"), Err(OpsError::Invalid("bg_fff".into())));
        assert_eq!(p("dpr_1.555"), Err(OpsError::Invalid("dpr_1.555".into())));
        assert_eq!(p("gray_1"), Err(OpsError::Unknown("gray_1".into())));
        assert_eq!(p("flip_x"), Err(OpsError::Unknown("flip_x".into())));
    }

    #[test]
    fn out_of_range_values_are_named() {
        for token in
            ["w_0", "h_8193", "dpr_4.01", "dpr_0.5", "blur_0.2", "blur_100.01", "sharpen_11", "q_0", "q_101", "rot_45"]
        {
            match p(token) {
                Err(OpsError::OutOfRange { token: t, .. }) => assert_eq!(t, token),
                other => panic!("{token}: {other:?}"),
            }
        }
    }

    #[test]
    fn overlong_ops_are_rejected() {
        let long = "w_1,".repeat(300);
        assert!(matches!(p(&long), Err(OpsError::TooLong { .. })));
    }

    fn token() -> impl Strategy<Value = String> {
        prop_oneof![
            (1u32..9000).prop_map(|n| format!("w_{n}")),
            (1u32..9000).prop_map(|n| format!("h_{n}")),
            (100u32..=400).prop_map(|n| format!("dpr_{}.{:02}", n / 100, n % 100)),
            prop::sample::select(vec!["fit_cover", "fit_contain", "fit_fill", "fit_inside", "fit_outside"])
                .prop_map(String::from),
            prop::sample::select(vec!["g_center", "g_north", "g_southwest", "g_smart"]).prop_map(String::from),
            (0u32..50, 0u32..50, 1u32..50, 1u32..50).prop_map(|(x, y, w, h)| format!("crop_{x}:{y}:{w}:{h}")),
            prop::sample::select(vec!["rot_90", "rot_180", "rot_270", "flip_h", "flip_v", "gray", "sepia"])
                .prop_map(String::from),
            (30u32..=10_000).prop_map(|n| format!("blur_{}.{:02}", n / 100, n % 100)),
            (30u32..=1_000).prop_map(|n| format!("sharpen_{}.{:02}", n / 100, n % 100)),
            any::<[u8; 3]>().prop_map(|[r, g, b]| format!("bg_{r:02X}{g:02x}{b:02x}")),
            (1u32..=100).prop_map(|q| format!("q_{q}")),
            prop::sample::select(vec!["q_auto", "q_auto:best", "q_auto:good", "q_auto:eco"]).prop_map(String::from),
            prop::sample::select(vec!["fmt_jpeg", "fmt_png", "fmt_webp", "fmt_avif", "fmt_jxl", "fmt_gif", "fmt_auto"])
                .prop_map(String::from),
            Just("wm_AAAAAAAAAAAAAAAAAAAAAA".to_owned()),
            prop_oneof![Just("w_auto".to_owned()), (1u32..9000).prop_map(|n| format!("w_auto:{n}"))],
            Just("dpr_auto".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn parsing_never_panics(s in "\\PC{0,200}") {
            let _ = p(&s);
        }

        #[test]
        fn parsing_token_soup_never_panics(tokens in prop::collection::vec("[a-z]{1,7}(_[0-9a-z.:]{0,8})?", 0..12)) {
            let _ = p(&tokens.join(","));
        }

        #[test]
        fn canonical_form_parses_back_to_the_same_ops(tokens in prop::collection::vec(token(), 1..10)) {
            if let Ok(ops) = p(&tokens.join(",")) {
                prop_assert_eq!(p(&ops.to_string()), Ok(ops));
            }
        }

        #[test]
        fn token_order_never_changes_the_result(
            (tokens, shuffled) in prop::collection::vec(token(), 1..10)
                .prop_flat_map(|v| (Just(v.clone()), Just(v).prop_shuffle()))
        ) {
            let (a, b) = (p(&tokens.join(",")), p(&shuffled.join(",")));
            // Duplicates are named by their second occurrence, which moves with the order.
            if a.is_ok() || b.is_ok() {
                prop_assert_eq!(a, b);
            }
        }
    }
}
