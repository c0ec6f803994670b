//! The writer (docs/design.md, "On-disk format"): `create_marker` and
//! `remove_marker`.

#[path = "../common/mod.rs"]
mod common;

mod writer;
