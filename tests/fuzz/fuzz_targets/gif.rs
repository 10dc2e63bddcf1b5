//! Fuzz target: see `imgedge::fuzzing::gif`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgedge::fuzzing::gif(data));
