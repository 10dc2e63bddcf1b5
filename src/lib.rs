//! imgedge: an edge image proxy.
//!
//! Owners sign in with a JWT, upload originals, and hand out signed URLs whose path encodes a
//! transformation (`/i/<id>/w_300,fmt_webp?sig=…`). The server checks the signature, the owner's
//! atomic daily quota, transforms on a cache miss and serves CDN-friendly bytes.
//!
//! One concern per module:
//! - [`app`] builds every part from the [`config`] and runs the server; [`cli`] is the owner's
//!   command line (sign, url, user, presets); [`telemetry`] sets up
//!   logs; [`clock`] is the injectable time source; [`ids`] the identifier newtypes.
//! - [`http`] serves: accept loop, the route table, request and response helpers, handlers.
//! - [`error`] maps every failure to the contract's status, code and message.
//! - [`auth`] holds passwords, JWTs and URL signatures.
//! - [`db`] and [`storage`] are the pluggable backends (SQLite or PostgreSQL; files or S3).
//! - [`format`] names image formats and recognises them from content.
//! - The domain services, called by the HTTP handlers and the command line alike:
//!   [`accounts`] (register, log in, tokens, keys, plans), [`library`] (the owner's originals:
//!   upload checks, list, publish, delete), [`presets`], [`signing`] (canonical signed URLs and
//!   srcsets); [`placeholder`] computes ThumbHash, BlurHash and average colour.
//! - [`delivery`] answers `/i`: authorisation, cache policy, variants from memory, store or a
//!   transform; [`transform`] parses ops and moves pixels; [`cache`] keeps variants and
//!   lookups; [`quota`] charges the daily budget; [`workers`] bounds the CPU work.
//! - [`parts`] bundles the shared collaborators; [`metrics`] counts for `/metrics`; [`sweep`]
//!   removes orphaned objects; [`fuzzing`] holds the fuzz targets' entry points; [`allocator`]
//!   tunes the process allocator.

pub mod accounts;
pub mod allocator;
pub mod app;
pub mod auth;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod error;
pub mod format;
pub mod fuzzing;
pub mod http;
pub mod ids;
pub mod library;
pub mod metrics;
pub mod parts;
pub mod placeholder;
pub mod presets;
pub mod quota;
pub mod signing;
pub mod storage;
pub mod sweep;
pub mod telemetry;
pub mod transform;
pub mod workers;

pub use app::App;
pub use config::Config;
pub use error::Error;

/// A boxed error of any kind: the cause of internal and backend failures.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
