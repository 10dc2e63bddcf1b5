//! Transformations: the ops grammar, variant keys, the pixel pipeline and the worker pool it
//! runs on.

pub mod canonical;
pub mod color;
pub mod decode;
pub mod effects;
pub mod encode;
pub mod error;
pub mod geometry;
pub mod grammar;
pub mod levels;
#[cfg(feature = "aom")]
pub mod libavif;
pub mod pipeline;
pub mod quality;
pub mod resize;
pub mod smart;

pub use canonical::{relative_to_image, resolve_format, VariantKey};
pub use error::{OpsError, PipelineError};
pub use grammar::{parse, FormatChoice, Ops};
pub use pipeline::{Job, Output};
