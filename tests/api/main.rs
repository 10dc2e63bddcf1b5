//! Integration tests over real HTTP against real backends (see `harness`).

mod auth;
mod delivery;
mod fixtures;
mod harness;
mod images;
mod ops;
mod quota;
