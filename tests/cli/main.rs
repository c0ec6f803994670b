//! The `firma` command line (docs/design.md, "Surfaces" and "Metrics"):
//! what an operator sees and scripts, `firma sidecar watch`, and
//! `firma sidecar metrics` with its textfile.
//!
//! The metrics tests that run promtool, node_exporter and Prometheus are
//! `#[ignore]`d here; `make test-metrics` runs them
//! (`cargo test --test cli -- --include-ignored metrics::`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_fleet;
mod cli_operator;
mod cli_watch;
mod metrics;
