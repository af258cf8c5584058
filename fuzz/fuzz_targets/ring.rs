//! See `zipc::fuzzing::ring`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zipc::fuzzing::ring(data));
