//! The conformance fixture tool, `firma-testkit`: found or built once. A
//! file of its own so that tests/conformance.rs can include it too (it does
//! not use the rest of tests/common).

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The fixture tool: `$FIRMA_TESTKIT` when set, else built once with
/// `cargo build -p firma-testkit`. It is a workspace member of its own
/// (tests/testkit), not a binary of this package, so `cargo test` does not
/// build it; cargo no longer holds its build lock while tests run, so the
/// nested build neither waits nor deadlocks.
pub fn testkit() -> PathBuf {
    static TESTKIT: OnceLock<PathBuf> = OnceLock::new();
    TESTKIT
        .get_or_init(|| match std::env::var_os("FIRMA_TESTKIT") {
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => build_testkit(),
        })
        .clone()
}

/// Builds firma-testkit with the cargo running the tests (the dev profile)
/// and returns the executable cargo reports.
fn build_testkit() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .args(["build", "--locked", "--quiet", "-p", "firma-testkit"])
        .arg("--message-format=json")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stderr(Stdio::inherit())
        .output()
        .expect("cannot run cargo build -p firma-testkit");
    assert!(out.status.success(), "cargo build -p firma-testkit failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "firma-testkit")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .expect("cargo build -p firma-testkit reported no executable")
}
