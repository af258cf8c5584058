//! See `zipc::fuzzing::segment`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| zipc::fuzzing::segment(data));
