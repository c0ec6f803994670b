//! The `firma` command line (docs/design.md, "Surfaces" and "Metrics"):
//! what an operator sees and scripts, `firma sidecar watch`,
//! `firma sidecar metrics` with its textfile, and `firma sidecar exporter`.
//!
//! The metrics and exporter tests that run promtool, systemd-analyze,
//! node_exporter, Prometheus, Alertmanager or network namespaces are
//! `#[ignore]`d here; `make test-metrics` runs them
//! (`cargo test --test cli -- --include-ignored metrics:: exporter`).

#[path = "../common/mod.rs"]
mod common;

mod cli;
mod cli_fleet;
mod cli_operator;
mod cli_watch;
mod exporter;
mod exporter_fleet;
mod metrics;
mod tools;
