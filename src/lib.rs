//! imgedge: an edge image proxy.
//!
//! Owners sign in with a JWT, upload originals, and hand out signed URLs whose path encodes a
//! transformation (`/i/<id>/w_300,fmt_webp?sig=…`). The server checks the signature, the owner's
//! atomic daily quota, transforms on a cache miss and serves CDN-friendly bytes.
//!
//! Layers, each depending only on those below it (the README's "Architecture" draws them):
//! - front doors: [`app`] (the server), [`http`] (accept loop, route table, handlers that parse,
//!   call one service and map the result) and [`cli`] (the owner's tools);
//! - the domain services, opened together by [`services`] and called by both front doors:
//!   [`accounts`], [`images`], [`presets`], [`signing`] and [`delivery`] (`/i`);
//! - what they share ([`shared`]): [`db`] and [`storage`] (SQLite or PostgreSQL; files or S3),
//!   [`lookups`] (cached records, remembered URLs), [`cache`] (variants), [`workers`], [`quota`],
//!   [`auth`], [`metrics`]; [`transform`] moves pixels and knows nothing of HTTP or databases;
//!   [`format`], [`placeholder`], [`sweep`];
//! - the ground: [`config`] (depends on nothing above it), [`error`] (the one contract table),
//!   [`clock`], [`ids`], [`telemetry`], [`allocator`], [`fuzzing`].

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
pub mod images;
pub mod lookups;
pub mod metrics;
pub mod placeholder;
pub mod presets;
pub mod purges;
pub mod quota;
pub mod services;
pub mod shared;
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
