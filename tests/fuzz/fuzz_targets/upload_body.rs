//! Fuzz target: see `imgedge::fuzzing::upload_body`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgedge::fuzzing::upload_body(data));
