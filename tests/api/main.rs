//! Integration tests over real HTTP against real backends (see `harness`).

mod animation;
mod auth;
mod cli;
mod cluster;
mod config;
mod costs;
mod db_contract;
mod db_tls;
mod delivery;
mod docs;
mod faults;
mod fixtures;
mod fuzz_corpus;
mod grammar_docs;
mod harness;
mod hints;
mod images;
mod ops;
mod placeholders;
mod presets;
mod quota;
mod replicas;
mod srcset;
mod storage_contract;
mod tools;
mod working_copies;
