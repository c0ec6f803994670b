//! Concurrency (docs/design.md, "Invariants" (5)): any number of processes
//! and threads listing and collecting at once.

#[path = "../common/mod.rs"]
mod common;

mod concurrency;
