//! Command-line arguments of `firma-bench`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "firma-bench",
    about = "Benchmark driver and sidecar fleet of firma-stack (`make bench`)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Create N healthy sidecars under DIR, print `ready N`, serve them until
    /// stdin closes, then kill every one and remove DIR.
    Fleet { dir: PathBuf, n: usize },
    /// The in-process Rust contender: the worker line protocol on stdin and
    /// stdout.
    Worker,
    /// The whole benchmark: every scenario over every contender, one table.
    Run(Box<RunArgs>),
}

#[derive(Args)]
pub struct RunArgs {
    /// Directory of the release `firma` and `firma-example-sidecar`.
    #[arg(long, default_value = "target/release")]
    pub target: PathBuf,
    /// The C floor (bench/floor.c).
    #[arg(long, default_value = "target/bench/floor")]
    pub floor: PathBuf,
    /// The C worker (bench/c_worker.c).
    #[arg(long, default_value = "target/bench/c_worker")]
    pub c_worker: PathBuf,
    /// The Go worker (bench/go).
    #[arg(long, default_value = "target/bench/go_worker")]
    pub go_worker: PathBuf,
    /// The Python that has `firma_stack` installed.
    #[arg(long, default_value = ".venv/bin/python")]
    pub python: PathBuf,
    /// The Python worker script.
    #[arg(long, default_value = "bench/python/worker.py")]
    pub py_worker: PathBuf,
    /// Where runtime directories are made [default: /dev/shm when it
    /// exists, else the temporary directory].
    #[arg(long)]
    pub work: Option<PathBuf>,
    /// Also write the table here, and every sample to samples.tsv beside it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// A short run: N = 100 and 1,000, few rounds (about 20 s).
    #[arg(long, conflicts_with = "smoke")]
    pub quick: bool,
    /// A tiny run proving the driver works (a few seconds; `make test`).
    #[arg(long)]
    pub smoke: bool,
    /// Fail when a contender broke or a result looked wrong (a contender
    /// that is not built stays `pending` and does not fail the run).
    #[arg(long)]
    pub strict: bool,
    /// Run only this scenario (repeatable): healthy, probe_method, get,
    /// stale, containers, syn, syscalls, rss, watch, exporter. The others
    /// neither run nor print; a number of the table that needs another
    /// scenario's samples (e.g. the floor's) reads as NaN.
    #[arg(long, value_name = "SCENARIO")]
    pub only: Vec<String>,
    /// Stand only the healthy fleets of these sizes (repeatable; each must
    /// be one of the run's plan, e.g. `--at 10000`).
    #[arg(long, value_name = "N")]
    pub at: Vec<usize>,
    /// The command line to name in the table.
    #[arg(long, default_value = "make bench")]
    pub command: String,
}

impl RunArgs {
    pub fn level(&self) -> Level {
        if self.smoke {
            Level::Smoke
        } else if self.quick {
            Level::Quick
        } else {
            Level::Full
        }
    }

    pub fn work_dir(&self) -> PathBuf {
        match &self.work {
            Some(w) => w.clone(),
            None if std::path::Path::new("/dev/shm").is_dir() => "/dev/shm".into(),
            None => std::env::temp_dir(),
        }
    }
}

/// How long the run is.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `make bench`: N up to 10,000, many rounds (a few minutes).
    Full,
    /// `--quick`: N = 100 and 1,000, few rounds (about 20 s).
    Quick,
    /// `--smoke`: N = 100, one or two rounds (seconds; `make test`).
    Smoke,
}

impl Level {
    /// The value for this level.
    pub fn pick<T>(self, full: T, quick: T, smoke: T) -> T {
        match self {
            Level::Full => full,
            Level::Quick => quick,
            Level::Smoke => smoke,
        }
    }

    /// The healthy fleets, smallest first.
    pub fn fleets(self) -> Vec<FleetSize> {
        let f = |n, rounds, reps| FleetSize { n, rounds, reps };
        self.pick(
            vec![
                f(100, 21, 5),
                f(1_000, 11, 2),
                f(2_000, 9, 1),
                f(10_000, 9, 3),
            ],
            vec![f(100, 3, 5), f(1_000, 3, 2)],
            vec![f(100, 2, 1)],
        )
    }
}

/// A healthy fleet of the plan: N sidecars, listed `rounds` times by every
/// contender, an in-process sample being the median of `reps` calls.
#[derive(Clone, Copy)]
pub struct FleetSize {
    pub n: usize,
    pub rounds: usize,
    pub reps: usize,
}
