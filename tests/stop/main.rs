//! Stopping (docs/design.md, "Stop"): `stop` through a pidfd.

#[path = "../common/mod.rs"]
mod common;

mod containers;
mod failures;
mod stop;
