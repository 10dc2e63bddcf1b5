//! What can go wrong with a transformation: ops that cannot be used ([`OpsError`], a 400
//! naming the token) and a pipeline that cannot finish ([`PipelineError`]).

use super::grammar;

/// An ops string that cannot be used; the message names the bad token.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum OpsError {
    /// Longer than the grammar allows.
    #[error("ops are {len} characters long; the limit is {max}")]
    TooLong {
        /// Actual length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Two commas in a row, or a trailing comma.
    #[error("empty token in ops")]
    Empty,
    /// A token name the grammar does not know.
    #[error("unknown token `{0}`")]
    Unknown(String),
    /// A known token with a malformed value.
    #[error("invalid value in `{0}`")]
    Invalid(String),
    /// The same token name twice.
    #[error("duplicate token `{0}`")]
    Duplicate(String),
    /// A value outside its range.
    #[error("`{token}` is out of range ({range})")]
    OutOfRange {
        /// The token.
        token: String,
        /// The allowed range.
        range: &'static str,
    },
    /// A crop region that does not lie inside the image.
    #[error("`crop_{}:{}:{}:{}` lies outside the {width}x{height} image", crop.x, crop.y, crop.width, crop.height)]
    CropOutside {
        /// The region.
        crop: grammar::Rect,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// A `wm_` id that is not an image of the same owner.
    #[error("`wm_{0}` is not one of your images")]
    UnknownWatermark(String),
    /// An output larger than its format can hold (WebP 16383 px a side, …), refused from the
    /// plan before anything is decoded.
    #[error("the output would be {width}x{height}; {format} holds at most {max} px a side")]
    TooLargeForFormat {
        /// Output width.
        width: u32,
        /// Output height.
        height: u32,
        /// The format's name.
        format: &'static str,
        /// Its longest side.
        max: u32,
    },
    /// An output format this build cannot write.
    #[error("`fmt_{format}`: this server is built without {format} output (cargo feature `{feature}`)")]
    FormatNotBuilt {
        /// The format's name.
        format: &'static str,
        /// The feature that builds its encoder.
        feature: &'static str,
    },
    /// A `p_` name that is not one of the image owner's presets.
    #[error("`p_{0}` is not a preset of this image's owner")]
    UnknownPreset(String),
}

/// A transform that could not be completed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// The ops do not fit this image.
    #[error(transparent)]
    InvalidOps(#[from] OpsError),
    /// The original (or watermark) cannot be decoded.
    #[error("cannot decode image: {0}")]
    Decode(String),
    /// The encoder refused the result.
    #[error("cannot encode image: {0}")]
    Encode(String),
    /// Decoding would hold more pixel memory than one decode may.
    #[error("decoding this image needs {} MB of pixel memory, more than the limit of {} MB", needed.div_ceil(1 << 20), limit >> 20)]
    TooLarge {
        /// Bytes the decode would hold.
        needed: u64,
        /// The limit (`limits.max_decode_mb`).
        limit: u64,
    },
    /// A decoder or encoder panicked on this input.
    #[error("the image could not be processed")]
    Panicked,
    /// A broken invariant inside the pipeline.
    #[error("internal pipeline error: {0}")]
    Internal(&'static str),
}
