//! Fuzz target: see `imgedge::fuzzing::image`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgedge::fuzzing::image(data));
