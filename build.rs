//! Gives the C shared library a SONAME, `libfirma_stack.so.<ABI>`, where
//! `<ABI>` is `FIRMA_ABI_VERSION` from `src/ffi/mod.rs` (the one place it is
//! written): programs linked against it keep loading compatible builds and
//! refuse an incompatible one.

use std::fs;

fn main() {
    println!("cargo:rerun-if-changed=src/ffi/mod.rs");
    println!("cargo:rerun-if-changed=build.rs");
    let src = fs::read_to_string("src/ffi/mod.rs").expect("read src/ffi/mod.rs");
    let abi: u32 = src
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("pub const FIRMA_ABI_VERSION: u32 = ")?
                .strip_suffix(';')?
                .parse()
                .ok()
        })
        .expect("src/ffi/mod.rs defines `pub const FIRMA_ABI_VERSION: u32 = N;`");
    let target_os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if target_os == "linux" || target_os == "freebsd" || target_os == "android" {
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libfirma_stack.so.{abi}");
    }
}
