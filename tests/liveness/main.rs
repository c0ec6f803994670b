//! Liveness (docs/design.md, "Liveness" and "Process identity"): when a
//! marker's process is alive, stopped or unprovable from the reader's side —
//! a process hidden from /proc, pid and time namespaces, a zombie leader
//! with live threads, a `hidepid` /proc.

#[path = "../common/mod.rs"]
mod common;

mod containers;
mod namespaces;
mod process_identity;
mod readers;
