//! Reliability (SECURITY.md): property tests, fault injection with real races
//! and the torture test. `make test-reliability-rust` runs this binary alone
//! (`cargo test --test reliability`).

#[path = "../common/mod.rs"]
mod common;

mod fault_injection;
mod properties;
mod torture;
