//! Fuzz target: see `imgedge::fuzzing::ops`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| imgedge::fuzzing::ops(data));
