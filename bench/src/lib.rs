//! `firma-bench`: the benchmark driver behind `make bench`, the sidecar
//! fleet it measures, and the pieces the criterion figures share with it.
//!
//! - [`cli`]: the subcommands and options (clap).
//! - [`fleet`]: real healthy and stale sidecar markers.
//! - [`worker`]: the line protocol every contender speaks, client and the
//!   Rust contender's server.
//! - [`contenders`]: who is measured and how (worker or whole process).
//! - [`scenarios`]: what is measured, one module per scenario, and the
//!   registry that runs them; [`run`] drives them and writes the table.
//! - [`stats`], [`table`], [`procs`], [`strace`]: medians and ratios,
//!   markdown, timed child processes, syscall counts.

pub mod cli;
pub mod contenders;
pub mod fleet;
pub mod procs;
pub mod run;
pub mod scenarios;
pub mod stats;
pub mod strace;
pub mod table;
pub mod worker;

/// Errors of the driver: one line saying what failed.
pub type Res<T> = Result<T, String>;
