//! Collection (docs/design.md, "Trust"): what a scan or `gc` may finish or
//! remove — reserved debris only when provably the library's and its maker
//! gone, and never a marker re-created since it was judged.

#[path = "../common/mod.rs"]
mod common;

mod containers;
mod debris;
mod fallbacks;
mod judged_marker;
