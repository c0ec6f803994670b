//! Who is measured, and how: a contender is either a worker (an in-process
//! call timed inside a long-lived process, see [`crate::worker`]), a whole
//! process per listing timed by the driver from spawn to exit, or pending
//! (not built, or failed during the run).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Res;
use crate::cli::RunArgs;
use crate::procs::{count_sub, run_timed};
use crate::worker::Worker;

pub const FLOOR: &str = "floor (C, in-process)";
pub const RUST: &str = "Rust `list`";
pub const C: &str = "C `firma_sidecar_list`";
pub const PY: &str = "Python `firma_stack.list`";
pub const GO: &str = "Go `firmastack.List`";
pub const CLI: &str = "`firma sidecar status --json` (process)";
pub const FLOOR_PROC: &str = "floor (C, whole process)";

/// The library surfaces, each with an in-process worker.
pub const SURFACES: [&str; 4] = [RUST, C, PY, GO];

/// `firma --runtime-dir DIR sidecar status --json`.
pub fn status_cmd(firma: &Path, dir: &Path) -> Command {
    let mut c = Command::new(firma);
    c.arg("--runtime-dir")
        .arg(dir)
        .args(["sidecar", "status", "--json"]);
    c
}

/// The floor listing `dir` once as a whole process.
pub fn floor_cmd(floor: &Path, dir: &Path) -> Command {
    let mut c = Command::new(floor);
    c.arg(dir);
    c
}

/// Entries and running entries in `firma sidecar status --json` output.
fn status_counts(out: &[u8]) -> (usize, usize) {
    (
        count_sub(out, b"\"sandbox_id\":"),
        count_sub(out, b"\"state\":\"running\""),
    )
}

/// Entries and connected sockets in the floor's `markers alive connected`.
fn floor_counts(out: &[u8]) -> (usize, usize) {
    let s = String::from_utf8_lossy(out);
    let f: Vec<usize> = s
        .split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect();
    (
        f.first().copied().unwrap_or(0),
        f.get(2).copied().unwrap_or(0),
    )
}

/// Why a contender is not measured.
pub enum Pending {
    /// Its program is not built (a surface may not exist yet).
    NotBuilt(String),
    /// It broke during the run.
    Failed(String),
}

/// How a contender is run.
pub enum Kind {
    Worker(Worker),
    Process {
        /// The command listing a runtime directory.
        cmd: Box<dyn Fn(&Path) -> Command>,
        /// (entries, running) from its output.
        counts: fn(&[u8]) -> (usize, usize),
    },
    Pending(Pending),
}

pub struct Contender {
    pub name: &'static str,
    pub kind: Kind,
}

/// One listing as a contender saw it.
pub struct ListSample {
    pub ns: f64,
    pub entries: usize,
    pub running: usize,
    /// CPU time / wall time, for whole processes.
    pub cores: Option<f64>,
}

impl Contender {
    pub fn pending(&self) -> Option<&Pending> {
        match &self.kind {
            Kind::Pending(p) => Some(p),
            _ => None,
        }
    }

    pub fn worker(&mut self) -> Option<&mut Worker> {
        match &mut self.kind {
            Kind::Worker(w) => Some(w),
            _ => None,
        }
    }

    /// Takes the contender out of the run for the rest of it.
    pub fn fail(&mut self, why: String) {
        eprintln!("bench: {} disabled: {why}", self.name);
        self.kind = Kind::Pending(Pending::Failed(why));
    }

    /// One listing of `dir` (`reps` in-process calls, median of them; one
    /// process). None when pending or when it failed now.
    pub fn list(&mut self, dir: &Path, reps: usize) -> Option<ListSample> {
        let got = match &mut self.kind {
            Kind::Pending(_) => return None,
            Kind::Worker(w) => w.list(&dir.to_string_lossy(), reps).map(|l| ListSample {
                ns: crate::stats::median(&l.times),
                entries: l.entries,
                running: l.running,
                cores: None,
            }),
            Kind::Process { cmd, counts } => run_timed(&mut cmd(dir)).map(|t| {
                let (entries, running) = counts(&t.out);
                ListSample {
                    ns: t.wall.as_nanos() as f64,
                    entries,
                    running,
                    cores: Some(t.cpu.as_secs_f64() / t.wall.as_secs_f64()),
                }
            }),
        };
        got.map_err(|e| self.fail(e)).ok()
    }
}

/// Every contender, in the order of the tables. A worker whose program is
/// missing or does not start is pending, not an error.
pub fn all(args: &RunArgs, firma: &Path) -> Res<Vec<Contender>> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let worker = |name: &'static str, program: &Path, args: &[&Path], what: &str| {
        let kind = if !program.is_file() {
            Kind::Pending(Pending::NotBuilt(format!(
                "{what} not built ({} missing)",
                program.display()
            )))
        } else {
            let mut cmd = Command::new(program);
            cmd.args(args);
            match Worker::start(cmd) {
                Ok(w) => Kind::Worker(w),
                Err(e) => Kind::Pending(Pending::Failed(e)),
            }
        };
        Contender { name, kind }
    };
    let process = |name, program: PathBuf, make: fn(&Path, &Path) -> Command, counts| Contender {
        name,
        kind: Kind::Process {
            cmd: Box::new(move |dir| make(&program, dir)),
            counts,
        },
    };
    let serve = Path::new("--serve");
    Ok(vec![
        worker(FLOOR, &args.floor, &[serve], "bench/floor.c"),
        worker(RUST, &exe, &[Path::new("worker")], "firma-bench"),
        worker(
            C,
            &args.c_worker,
            &[],
            "the C worker (needs include/firma_stack.h)",
        ),
        worker(
            PY,
            &args.python,
            &[&args.py_worker],
            "the Python package (.venv, `make python`)",
        ),
        worker(
            GO,
            &args.go_worker,
            &[],
            "the Go worker (needs bindings/go)",
        ),
        process(CLI, firma.to_path_buf(), status_cmd, status_counts),
        process(FLOOR_PROC, args.floor.clone(), floor_cmd, floor_counts),
    ])
}
