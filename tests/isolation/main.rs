//! Isolation (docs/design.md, "Trust" and "Per-marker failures"): what a
//! directory another user controls, a hostile marker or one marker's failure
//! can make a call do — never more than that marker's own business.
//!
//! Several tests here add throwaway users (`useradd`); they share one lock
//! on the account files (`common::users`).

#[path = "../common/mod.rs"]
mod common;

mod hostile_markers;
mod isolation;
mod trust;
mod trust_stop;
