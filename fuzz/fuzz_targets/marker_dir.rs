//! libFuzzer entry point: a marker directory built from the input bytes,
//! then probe_entry/get/list/gc_stale over it. See `src/marker_dir.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| firma_stack_fuzz::marker_dir::run(data));
