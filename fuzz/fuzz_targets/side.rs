//! See `zipc::fuzzing::side`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zipc::fuzzing::side(data));
