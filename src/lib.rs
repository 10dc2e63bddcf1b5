//! imgedge: an edge image proxy.
//!
//! Owners sign in with a JWT, upload originals, and hand out signed URLs whose path encodes a
//! transformation (`/i/<id>/w_300,fmt_webp?sig=…`). The server checks the signature, the owner's
//! atomic daily quota, transforms on a cache miss and serves CDN-friendly bytes.
//!
//! The crate is laid out one concern per module: [`config`] loads settings, [`http`] serves,
//! [`auth`] holds passwords, JWTs and URL signatures, [`db`] and [`storage`] are the pluggable
//! backends, [`images`] validates uploads, [`transform`] parses ops and moves pixels, [`cache`]
//! keeps variants, [`quota`] charges the daily budget.

pub mod app;
pub mod auth;
pub mod cache;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod error;
pub mod http;
pub mod ids;
pub mod images;
pub mod library;
pub mod metrics;
pub mod quota;
pub mod storage;
pub mod sweep;
pub mod telemetry;
pub mod transform;

pub use app::App;
pub use config::Config;
pub use error::Error;
