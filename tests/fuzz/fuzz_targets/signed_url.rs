//! Fuzz target: see `imgedge::fuzzing::signed_url`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgedge::fuzzing::signed_url(data));
