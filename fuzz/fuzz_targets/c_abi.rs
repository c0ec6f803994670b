//! libFuzzer entry point: the C ABI driven with arbitrary byte strings.
//! See `src/c_abi.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| firma_stack_fuzz::c_abi::run(data));
