//! Probing (docs/design.md, "States" and "Operations"): probe timing, the
//! probe timeout and its bounds, and what a probe answers as another user.

#[path = "../common/mod.rs"]
mod common;

mod entries;
mod fleet;
mod hung;
mod states;
