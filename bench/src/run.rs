//! The benchmark driver: every contender measured in one run, round-robin.
//!
//! Contenders of a listing are either *workers* — long-lived processes
//! (Rust, C, Python, Go, the C floor) that answer one request per stdin
//! line and time the call themselves, in-process — or *whole processes*
//! (`firma sidecar status --json`, the floor as a command) timed by the
//! driver from spawn to exit. Each round visits every contender once, the
//! starting contender rotating from round to round, so drift of a shared
//! machine lands on all of them alike; the table shows medians over rounds.
//!
//! Worker protocol (one line each way):
//!   `list DIR REPS`    -> `ok ENTRIES RUNNING NS...` (one time per rep)
//!   `get DIR ID CALLS` -> `ok RUNNING NS`            (all calls together)
//!   `gc DIR`           -> `ok REMOVED NS`            (Rust worker only)
//!   `quit`
//! Anything else is `err MESSAGE`.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use crate::fleet::{StaleSet, raise_nofile};

type Res<T> = Result<T, String>;

/// Probe timeout of the core when the caller sets none (DESIGN §5).
const PROBE_TIMEOUT_NS: f64 = 200e6;
const SYN_ENDPOINTS: usize = 20;
const STALE_N: usize = 10_000;
const GET_FLEET_N: usize = 100;
/// Calls per `get` sample: short samples, many rounds, so load bursts of a
/// shared machine hit every surface alike.
const GET_CALLS: usize = 300;

struct Config {
    target: PathBuf,
    floor: PathBuf,
    c_worker: PathBuf,
    go_worker: PathBuf,
    python: PathBuf,
    py_worker: PathBuf,
    work: PathBuf,
    out: Option<PathBuf>,
    quick: bool,
    command: String,
}

impl Config {
    fn parse(args: &[String]) -> Res<Config> {
        let mut c = Config {
            target: "target/release".into(),
            floor: "target/bench/floor".into(),
            c_worker: "target/bench/c_worker".into(),
            go_worker: "target/bench/go_worker".into(),
            python: ".venv/bin/python".into(),
            py_worker: "bench/python/worker.py".into(),
            work: if Path::new("/dev/shm").is_dir() {
                "/dev/shm".into()
            } else {
                std::env::temp_dir()
            },
            out: None,
            quick: false,
            command: "make bench".into(),
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut val = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{a} needs a value"))
            };
            match a.as_str() {
                "--target" => c.target = val()?.into(),
                "--floor" => c.floor = val()?.into(),
                "--c-worker" => c.c_worker = val()?.into(),
                "--go-worker" => c.go_worker = val()?.into(),
                "--python" => c.python = val()?.into(),
                "--py-worker" => c.py_worker = val()?.into(),
                "--work" => c.work = val()?.into(),
                "--out" => c.out = Some(val()?.into()),
                "--command" => c.command = val()?,
                "--quick" => c.quick = true,
                other => return Err(format!("unknown option {other:?}")),
            }
        }
        Ok(c)
    }
}

/// A long-lived contender process speaking the worker protocol.
struct Worker {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Worker {
    fn start(mut cmd: Command) -> Res<Worker> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {cmd:?}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Worker {
            child,
            stdin,
            stdout,
        })
    }

    /// Sends one request; returns the numbers after `ok`.
    fn ask(&mut self, req: &str) -> Res<Vec<u64>> {
        let stdin = self.stdin.as_mut().ok_or("worker closed")?;
        writeln!(stdin, "{req}")
            .and_then(|()| stdin.flush())
            .map_err(|e| format!("worker stdin: {e}"))?;
        let mut line = String::new();
        self.stdout
            .read_line(&mut line)
            .map_err(|e| format!("worker stdout: {e}"))?;
        let line = line.trim_end();
        match line.strip_prefix("ok ") {
            Some(rest) => rest
                .split_whitespace()
                .map(|w| w.parse().map_err(|_| format!("bad reply {line:?}")))
                .collect(),
            None if line.is_empty() => Err("worker exited".into()),
            None => Err(format!("worker: {line}")),
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = writeln!(stdin, "quit");
        }
        let _ = self.child.wait();
    }
}

/// How a contender is run.
enum Kind {
    Worker(Worker),
    /// A whole process per listing: the program and the arguments that come
    /// before the runtime directory / after it.
    Process(Box<dyn Fn(&Path) -> Command>),
    /// Not measured: why (not built yet, failed).
    Pending(String),
}

struct Contender {
    name: &'static str,
    kind: Kind,
}

impl Contender {
    fn pending(&self) -> Option<&str> {
        match &self.kind {
            Kind::Pending(why) => Some(why),
            _ => None,
        }
    }

    fn fail(&mut self, why: String) {
        eprintln!("bench: {} disabled: {why}", self.name);
        self.kind = Kind::Pending(format!("failed: {why}"));
    }
}

/// Result of one whole-process run.
struct Timed {
    wall: Duration,
    out: Vec<u8>,
    maxrss_kib: u64,
    /// User + system CPU time of the process (all its threads).
    cpu: Duration,
}

/// Runs `cmd` to completion, timing it from spawn to reaped exit and taking
/// its peak RSS from `wait4`.
fn run_timed(cmd: &mut Command) -> Res<Timed> {
    cmd.stdin(Stdio::null()).stdout(Stdio::piped());
    let t0 = Instant::now();
    let mut child = cmd.spawn().map_err(|e| format!("spawn {cmd:?}: {e}"))?;
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("piped")
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: waiting for our own child with valid out-pointers.
        let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
        if rc >= 0 {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(format!("wait4: {e}"));
        }
    }
    let wall = t0.elapsed();
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        return Err(format!("{cmd:?} failed (wait status {status})"));
    }
    Ok(Timed {
        wall,
        out,
        maxrss_kib: ru.ru_maxrss as u64,
        cpu: tv(ru.ru_utime) + tv(ru.ru_stime),
    })
}

fn tv(t: libc::timeval) -> Duration {
    Duration::new(
        t.tv_sec.max(0) as u64,
        (t.tv_usec.clamp(0, 999_999) * 1000) as u32,
    )
}

fn count_sub(hay: &[u8], needle: &[u8]) -> usize {
    hay.windows(needle.len()).filter(|w| *w == needle).count()
}

fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

/// `a / b` for samples taken side by side: the median of the per-round
/// ratios when both have one sample per round, else the ratio of medians.
fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    if a.len() == b.len() && !a.is_empty() {
        let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        median(&r)
    } else {
        median(a) / median(b)
    }
}

/// Half the interquartile range, relative to the median: `±x%`.
fn spread(v: &[f64]) -> String {
    if v.len() < 3 {
        return String::new();
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    format!("±{:.0}%", (q(0.75) - q(0.25)) / 2.0 / median(v) * 100.0)
}

fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "—".into()
    } else if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn fmt_ratio(r: f64) -> String {
    if r.is_nan() {
        "—".into()
    } else {
        format!("{r:.2}×")
    }
}

/// A healthy fleet served by a `firma-bench fleet` process.
struct FleetProc {
    child: Child,
    stdin: Option<ChildStdin>,
    dir: PathBuf,
}

impl FleetProc {
    fn start(dir: &Path, n: usize) -> Res<FleetProc> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let mut child = Command::new(exe)
            .arg("fleet")
            .arg(dir)
            .arg(n.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start fleet: {e}"))?;
        let stdin = child.stdin.take();
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        if line.trim() != format!("ready {n}") {
            return Err(format!("fleet of {n} did not start: {line:?}"));
        }
        Ok(FleetProc {
            child,
            stdin,
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for FleetProc {
    fn drop(&mut self) {
        drop(self.stdin.take()); // EOF: the fleet cleans up and exits
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct RemoveOnDrop(PathBuf);
impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Per-syscall call counts from an `strace -f -c -o FILE` summary.
fn strace_counts(out_file: &Path, program: &Path, args: &[OsString]) -> Res<BTreeMap<String, u64>> {
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out_file)
        .arg("--")
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace {program:?} failed: {status}"));
    }
    let text = std::fs::read_to_string(out_file).map_err(|e| e.to_string())?;
    let mut counts = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("------") {
            if in_table {
                break;
            }
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5
            && let Ok(calls) = f[3].parse::<u64>()
        {
            counts.insert(f[f.len() - 1].to_owned(), calls);
        }
    }
    Ok(counts)
}

/// Per-marker syscall counts: (at N minus at zero) / N, per syscall.
fn per_marker(
    at_n: &BTreeMap<String, u64>,
    at_0: &BTreeMap<String, u64>,
    n: usize,
) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = at_n
        .iter()
        .map(|(k, &c)| {
            let base = at_0.get(k).copied().unwrap_or(0);
            (k.clone(), (c as f64 - base as f64) / n as f64)
        })
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}

struct Plan {
    sizes: Vec<(usize, usize, usize)>, // (N, rounds, reps per in-process sample)
    get_rounds: usize,
    stale_n: usize,
    stale_rounds: usize,
    syn_rounds: usize,
    rss_runs: usize,
    strace_n: usize,
    cli_n: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                sizes: vec![(100, 3, 5), (1_000, 3, 2)],
                get_rounds: 3,
                stale_n: 1_000,
                stale_rounds: 3,
                syn_rounds: 2,
                rss_runs: 1,
                strace_n: 1_000,
                cli_n: 1_000,
            }
        } else {
            Plan {
                sizes: vec![(100, 21, 5), (1_000, 11, 2), (2_000, 9, 1), (10_000, 5, 1)],
                get_rounds: 31,
                stale_n: STALE_N,
                stale_rounds: 5,
                syn_rounds: 5,
                rss_runs: 3,
                strace_n: 1_000,
                cli_n: 2_000,
            }
        }
    }
}

#[derive(Default)]
struct Results {
    /// (contender, N) -> ns per listing, one sample per round.
    list: BTreeMap<(&'static str, usize), Vec<f64>>,
    /// (contender, N) -> problems seen (wrong counts).
    anomalies: BTreeMap<(&'static str, usize), String>,
    /// contender -> ns per get call, one sample per round.
    get: BTreeMap<&'static str, Vec<f64>>,
    gc: Vec<f64>,
    stale_list: Vec<f64>,
    syn_rust: Vec<f64>,
    syn_cli: Vec<f64>,
    syn_states: String,
    /// N -> (peak RSS KiB samples, JSON bytes)
    rss: BTreeMap<usize, (Vec<f64>, usize)>,
    strace_firma: Vec<(String, f64)>,
    strace_floor: Vec<(String, f64)>,
    notes: Vec<String>,
    /// N -> CPU time / wall time of `firma sidecar status`, per round.
    cli_cores: BTreeMap<usize, Vec<f64>>,
    /// 1-minute load average when the run started (before our own fleets).
    load: String,
    /// contender -> why it was not (fully) measured.
    pending: BTreeMap<&'static str, String>,
}

const FLOOR: &str = "floor (C, in-process)";
const RUST: &str = "Rust `list`";
const C: &str = "C `firma_sidecar_list`";
const PY: &str = "Python `firma_stack.list`";
const GO: &str = "Go `firmastack.List`";
const CLI: &str = "`firma sidecar status --json` (process)";
const FLOOR_PROC: &str = "floor (C, whole process)";

pub fn main(args: &[String]) -> Res<()> {
    let cfg = Config::parse(args)?;
    let plan = Plan::new(cfg.quick);
    let started = Instant::now();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let load_start = loadavg();
    raise_nofile(65_536, 1_024).map_err(|e| format!("raise RLIMIT_NOFILE: {e}"))?;
    let base = cfg.work.join(format!("firma-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    let _cleanup = RemoveOnDrop(base.clone());
    let firma = cfg.target.join("firma");
    let example = cfg.target.join("firma-example-sidecar");
    for p in [&firma, &example, &cfg.floor] {
        if !p.is_file() {
            return Err(format!("{} is missing (run `make bench`)", p.display()));
        }
    }

    let mut cs = contenders(&cfg, &firma)?;
    let mut res = Results::default();

    // Zero-marker baselines for syscalls and memory.
    let empty = base.join("empty");
    std::fs::create_dir_all(empty.join("run")).map_err(|e| e.to_string())?;
    let status_args = |dir: &Path| -> Vec<OsString> {
        vec![
            "--runtime-dir".into(),
            dir.into(),
            "sidecar".into(),
            "status".into(),
            "--json".into(),
        ]
    };
    let strace_ok = Command::new("strace").arg("-V").output().is_ok();
    let mut strace0 = None;
    if strace_ok {
        let f0 = strace_counts(&base.join("strace-firma-0"), &firma, &status_args(&empty))?;
        let p0 = strace_counts(
            &base.join("strace-floor-0"),
            &cfg.floor,
            &[empty.clone().into()],
        )?;
        strace0 = Some((f0, p0));
    } else {
        res.notes
            .push("strace not found: syscall counts skipped".into());
    }
    measure_rss(&mut res, &firma, &empty, 0, plan.rss_runs, &status_args)?;

    for &(n, rounds, reps) in &plan.sizes {
        let t_phase = Instant::now();
        let dir = base.join(format!("fleet-{n}"));
        let fleet = FleetProc::start(&dir, n)?;
        eprintln!(
            "bench: fleet of {n} healthy sidecars ready ({:.1} s)",
            t_phase.elapsed().as_secs_f64()
        );
        let dir_s = dir.to_string_lossy().into_owned();
        // Warm-up: one listing each (dentries, page cache, lazy init).
        for c in cs.iter_mut() {
            let _ = sample_list(c, &dir, &dir_s, n, 1, &mut res, false);
        }
        for r in 0..rounds {
            let k = cs.len();
            for i in 0..k {
                let c = &mut cs[(i + r) % k];
                // Whole-process status at every N is cheap but only the
                // issue's N matters; keep the others for context.
                sample_list(c, &dir, &dir_s, n, reps, &mut res, true);
            }
        }
        if n == GET_FLEET_N {
            measure_get(&mut cs, &dir_s, n, plan.get_rounds, &mut res);
        }
        if n == plan.strace_n
            && let Some((f0, p0)) = &strace0
        {
            let fnn = strace_counts(&base.join("strace-firma-n"), &firma, &status_args(&dir))?;
            let pn = strace_counts(
                &base.join("strace-floor-n"),
                &cfg.floor,
                &[dir.clone().into()],
            )?;
            res.strace_firma = per_marker(&fnn, f0, n);
            res.strace_floor = per_marker(&pn, p0, n);
        }
        if n == 1_000 || n == 10_000 {
            measure_rss(&mut res, &firma, &dir, n, plan.rss_runs, &status_args)?;
        }
        drop(fleet);
        eprintln!(
            "bench: N = {n} done in {:.1} s",
            t_phase.elapsed().as_secs_f64()
        );
    }

    measure_stale(&mut cs, &base, &plan, &mut res)?;
    measure_syn(&mut cs, &base, &example, &firma, &plan, &mut res)?;
    for c in &cs {
        if let Some(why) = c.pending() {
            res.pending.insert(c.name, why.to_owned());
        }
    }
    drop(cs);

    res.load = load_start;
    let table = render(&cfg, &plan, &res, &date, started.elapsed());
    print!("{table}");
    if let Some(out) = &cfg.out {
        if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(parent);
        }
        std::fs::write(out, &table).map_err(|e| format!("{}: {e}", out.display()))?;
        let raw = out.with_file_name("samples.tsv");
        std::fs::write(&raw, samples_tsv(&res)).map_err(|e| format!("{}: {e}", raw.display()))?;
        eprintln!(
            "bench: table in {}, every sample in {}",
            out.display(),
            raw.display()
        );
    }
    Ok(())
}

fn contenders(cfg: &Config, firma: &Path) -> Res<Vec<Contender>> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let worker = |name: &'static str, path: &Path, cmd: Command, what: &str| -> Contender {
        let kind = if !path.is_file() {
            Kind::Pending(format!(
                "pending: {what} not built ({} missing)",
                path.display()
            ))
        } else {
            match Worker::start(cmd) {
                Ok(w) => Kind::Worker(w),
                Err(e) => Kind::Pending(format!("failed: {e}")),
            }
        };
        Contender { name, kind }
    };
    let mut floor_cmd = Command::new(&cfg.floor);
    floor_cmd.arg("--serve");
    let mut rust_cmd = Command::new(&exe);
    rust_cmd.arg("worker");
    let c_cmd = Command::new(&cfg.c_worker);
    let mut py_cmd = Command::new(&cfg.python);
    py_cmd.arg(&cfg.py_worker);
    let go_cmd = Command::new(&cfg.go_worker);
    let firma = firma.to_path_buf();
    let floor = cfg.floor.clone();
    Ok(vec![
        worker(FLOOR, &cfg.floor, floor_cmd, "bench/floor.c"),
        worker(RUST, &exe, rust_cmd, "firma-bench"),
        worker(
            C,
            &cfg.c_worker,
            c_cmd,
            "the C worker (needs include/firma_stack.h)",
        ),
        worker(
            PY,
            &cfg.python,
            py_cmd,
            "the Python package (.venv, `make python`)",
        ),
        worker(
            GO,
            &cfg.go_worker,
            go_cmd,
            "the Go worker (needs bindings/go)",
        ),
        Contender {
            name: CLI,
            kind: Kind::Process(Box::new(move |dir| {
                let mut c = Command::new(&firma);
                c.arg("--runtime-dir")
                    .arg(dir)
                    .args(["sidecar", "status", "--json"]);
                c
            })),
        },
        Contender {
            name: FLOOR_PROC,
            kind: Kind::Process(Box::new(move |dir| {
                let mut c = Command::new(&floor);
                c.arg(dir);
                c
            })),
        },
    ])
}

/// One listing sample of contender `c` over a healthy fleet of `n`.
fn sample_list(
    c: &mut Contender,
    dir: &Path,
    dir_s: &str,
    n: usize,
    reps: usize,
    res: &mut Results,
    record: bool,
) -> Option<()> {
    let name = c.name;
    let (ns, entries, running) = match &mut c.kind {
        Kind::Pending(_) => return None,
        Kind::Worker(w) => match w.ask(&format!("list {dir_s} {reps}")) {
            Ok(v) if v.len() >= 3 => {
                let times: Vec<f64> = v[2..].iter().map(|&t| t as f64).collect();
                (median(&times), v[0] as usize, v[1] as usize)
            }
            Ok(v) => {
                c.fail(format!("short reply {v:?}"));
                return None;
            }
            Err(e) => {
                c.fail(e);
                return None;
            }
        },
        Kind::Process(make) => match run_timed(&mut make(dir)) {
            Ok(t) => {
                let (entries, running) = if name == CLI {
                    (
                        count_sub(&t.out, b"\"sandbox_id\":"),
                        count_sub(&t.out, b"\"state\":\"running\""),
                    )
                } else {
                    // floor prints "markers alive connected"
                    let s = String::from_utf8_lossy(&t.out);
                    let f: Vec<usize> = s
                        .split_whitespace()
                        .filter_map(|w| w.parse().ok())
                        .collect();
                    (
                        f.first().copied().unwrap_or(0),
                        f.get(2).copied().unwrap_or(0),
                    )
                };
                if record && name == CLI {
                    let cores = t.cpu.as_secs_f64() / t.wall.as_secs_f64();
                    res.cli_cores.entry(n).or_default().push(cores);
                }
                (t.wall.as_nanos() as f64, entries, running)
            }
            Err(e) => {
                c.fail(e);
                return None;
            }
        },
    };
    if record {
        if entries != n || running != n {
            res.anomalies.insert(
                (name, n),
                format!("saw {entries} entries, {running} running (expected {n})"),
            );
        }
        res.list.entry((name, n)).or_default().push(ns);
    }
    Some(())
}

fn measure_get(cs: &mut [Contender], dir_s: &str, n: usize, rounds: usize, res: &mut Results) {
    let id = crate::fleet::sandbox_id("hc", n / 2);
    let surfaces = [RUST, C, PY, GO];
    for r in 0..rounds {
        for i in 0..surfaces.len() {
            let want = surfaces[(i + r) % surfaces.len()];
            let Some(c) = cs.iter_mut().find(|c| c.name == want) else {
                continue;
            };
            let Kind::Worker(w) = &mut c.kind else {
                continue;
            };
            match w.ask(&format!("get {dir_s} {id} {GET_CALLS}")) {
                Ok(v) if v.len() == 2 => {
                    if v[0] as usize != GET_CALLS {
                        res.anomalies.insert(
                            (want, 0),
                            format!("get: {} of {GET_CALLS} calls saw `running`", v[0]),
                        );
                    }
                    res.get
                        .entry(want)
                        .or_default()
                        .push(v[1] as f64 / GET_CALLS as f64);
                }
                Ok(v) => c.fail(format!("short reply {v:?}")),
                Err(e) => c.fail(e),
            }
        }
    }
}

fn measure_rss(
    res: &mut Results,
    firma: &Path,
    dir: &Path,
    n: usize,
    runs: usize,
    status_args: &dyn Fn(&Path) -> Vec<OsString>,
) -> Res<()> {
    for _ in 0..runs {
        let t = run_timed(Command::new(firma).args(status_args(dir)))?;
        let e = res.rss.entry(n).or_insert_with(|| (Vec::new(), 0));
        e.0.push(t.maxrss_kib as f64);
        e.1 = t.out.len();
    }
    Ok(())
}

/// gc_stale and list over N stale markers, laid down afresh before each.
fn measure_stale(cs: &mut [Contender], base: &Path, plan: &Plan, res: &mut Results) -> Res<()> {
    let t0 = Instant::now();
    let set = StaleSet::build(&base.join("stale-scratch"), plan.stale_n)
        .map_err(|e| format!("stale set: {e}"))?;
    eprintln!(
        "bench: {} stale markers built ({:.1} s)",
        set.len(),
        t0.elapsed().as_secs_f64()
    );
    let dir = base.join("stale");
    let dir_s = dir.to_string_lossy().into_owned();
    let Some(rust) = cs.iter_mut().find(|c| c.name == RUST) else {
        return Ok(());
    };
    let Kind::Worker(w) = &mut rust.kind else {
        return Ok(());
    };
    for r in 0..plan.stale_rounds {
        for k in 0..2 {
            set.restore(&dir)
                .map_err(|e| format!("restore stale set: {e}"))?;
            if (k + r) % 2 == 0 {
                let v = w.ask(&format!("gc {dir_s}"))?;
                if v[0] as usize != set.len() {
                    res.notes
                        .push(format!("gc_stale removed {} of {}", v[0], set.len()));
                }
                res.gc.push(v[1] as f64);
            } else {
                let v = w.ask(&format!("list {dir_s} 1"))?;
                if v[0] != 0 {
                    res.notes
                        .push(format!("list over stale markers returned {} entries", v[0]));
                }
                res.stale_list.push(v[2] as f64);
            }
            let left = std::fs::read_dir(dir.join("run"))
                .map(|d| d.count())
                .unwrap_or(0);
            if left != 0 {
                res.notes
                    .push(format!("{left} entries left in run/ after collecting"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!(
        "bench: stale phase done ({:.1} s)",
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Sidecars started for the SYN phase; SIGTERM and reaped on drop.
struct Sidecars(Vec<Child>);
impl Drop for Sidecars {
    fn drop(&mut self) {
        for c in &self.0 {
            // SAFETY: our own child's pid.
            unsafe { libc::kill(c.id() as libc::pid_t, libc::SIGTERM) };
        }
        for c in &mut self.0 {
            let _ = c.wait();
        }
    }
}

/// One listing over 20 TCP endpoints whose SYNs are dropped.
fn measure_syn(
    cs: &mut [Contender],
    base: &Path,
    example: &Path,
    firma: &Path,
    plan: &Plan,
    res: &mut Results,
) -> Res<()> {
    let dir = base.join("syn");
    let mut sidecars = Sidecars(Vec::new());
    for i in 0..SYN_ENDPOINTS {
        let mut child = Command::new(example)
            .arg("--runtime-dir")
            .arg(&dir)
            .args([
                "--id",
                &format!("syn-{i:02}"),
                "--mode",
                "wedged",
                "--tcp",
                "127.0.0.1:0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start example sidecar: {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
        sidecars.0.push(child);
        if !line.starts_with("ready") {
            return Err(format!("wedged sidecar {i} did not get ready: {line:?}"));
        }
    }
    let dir_s = dir.to_string_lossy().into_owned();
    let mut rust = cs.iter_mut().find(|c| c.name == RUST);
    for r in 0..plan.syn_rounds {
        for k in 0..2 {
            if (k + r) % 2 == 0 {
                if let Some(Contender {
                    kind: Kind::Worker(w),
                    ..
                }) = rust.as_deref_mut()
                {
                    let v = w.ask(&format!("list {dir_s} 1"))?;
                    if v[0] as usize != SYN_ENDPOINTS || v[1] != 0 {
                        res.syn_states = format!("saw {} entries, {} running", v[0], v[1]);
                    }
                    res.syn_rust.push(v[2] as f64);
                }
            } else {
                let t = run_timed(
                    Command::new(firma)
                        .arg("--runtime-dir")
                        .arg(&dir)
                        .args(["sidecar", "status", "--json"]),
                )?;
                let unhealthy = count_sub(&t.out, b"\"state\":\"unhealthy\"");
                if unhealthy != SYN_ENDPOINTS {
                    res.syn_states = format!("CLI saw {unhealthy} unhealthy of {SYN_ENDPOINTS}");
                }
                res.syn_cli.push(t.wall.as_nanos() as f64);
            }
        }
    }
    drop(sidecars);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Every sample, one per line: what, contender, N, round, nanoseconds.
fn samples_tsv(res: &Results) -> String {
    let mut o = String::from("what\tcontender\tn\tround\tns\n");
    let mut put = |what: &str, name: &str, n: usize, v: &[f64]| {
        for (r, ns) in v.iter().enumerate() {
            let _ = writeln!(o, "{what}\t{name}\t{n}\t{r}\t{ns:.0}");
        }
    };
    for ((name, n), v) in &res.list {
        put("list", name, *n, v);
    }
    for (name, v) in &res.get {
        put("get_per_call", name, GET_FLEET_N, v);
    }
    put("gc_stale", RUST, STALE_N, &res.gc);
    put("list_stale", RUST, STALE_N, &res.stale_list);
    put("list_syn", RUST, SYN_ENDPOINTS, &res.syn_rust);
    put("list_syn", CLI, SYN_ENDPOINTS, &res.syn_cli);
    o
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_default()
}

fn verdict(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

fn render(cfg: &Config, plan: &Plan, res: &Results, date: &str, took: Duration) -> String {
    let nproc = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let med = |name: &'static str, n: usize| -> f64 {
        res.list
            .get(&(name, n))
            .map(|v| median(v))
            .unwrap_or(f64::NAN)
    };
    let list_ratio = |a: &'static str, b: &'static str, n: usize| -> f64 {
        match (res.list.get(&(a, n)), res.list.get(&(b, n))) {
            (Some(x), Some(y)) => paired_ratio(x, y),
            _ => f64::NAN,
        }
    };
    let mut o = String::new();
    let _ = writeln!(o, "## firma-stack benchmarks\n");
    let _ = writeln!(
        o,
        "- machine: `nproc` = **{nproc}**, Linux {}, runtime dirs on {}",
        kernel.trim(),
        cfg.work.display()
    );
    let _ = writeln!(
        o,
        "- command: `{}`; date: {date}; took {:.0} s; 1-minute load average {} before the run \
         (the machine is shared: absolute times are noisy; ratios are medians of per-round ratios, \
         which cancel drift between rounds)",
        cfg.command,
        took.as_secs_f64(),
        res.load,
    );
    let rounds: Vec<String> = plan
        .sizes
        .iter()
        .map(|(n, r, k)| format!("N={n}: {r} rounds × {k}"))
        .collect();
    let _ = writeln!(
        o,
        "- medians over rounds, contenders alternated round-robin ({}; in-process sample = median of its reps)\n",
        rounds.join(", ")
    );

    let _ = writeln!(o, "### `list` over N healthy sidecars\n");
    let _ = writeln!(
        o,
        "| contender | N | median | spread | per marker | × floor | × Rust |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|---:|---:|---:|");
    let all = [FLOOR, RUST, C, PY, GO, CLI, FLOOR_PROC];
    for &(n, _, _) in &plan.sizes {
        for name in all {
            let m = med(name, n);
            let floor_name = if name == CLI || name == FLOOR_PROC {
                FLOOR_PROC
            } else {
                FLOOR
            };
            let pending = !res.list.contains_key(&(name, n));
            let rust_col = if [C, PY, GO].contains(&name) {
                fmt_ratio(list_ratio(name, RUST, n))
            } else {
                String::new()
            };
            let mut row = if pending {
                format!("| {name} | {n} | pending | | | | |")
            } else {
                format!(
                    "| {name} | {n} | {} | {} | {} | {} | {rust_col} |",
                    fmt_ns(m),
                    spread(&res.list[&(name, n)]),
                    fmt_ns(m / n as f64),
                    fmt_ratio(list_ratio(name, floor_name, n))
                )
            };
            if let Some(a) = res.anomalies.get(&(name, n)) {
                let _ = write!(row, " ⚠ {a}");
            }
            let _ = writeln!(o, "{row}");
        }
    }
    let cores: Vec<String> = res
        .cli_cores
        .iter()
        .map(|(n, v)| format!("N={n}: {:.2}", median(v)))
        .collect();
    let _ = writeln!(
        o,
        "\nCores used by `firma sidecar status` (its CPU time / wall time, median): {}.",
        cores.join(", ")
    );
    let _ = writeln!(
        o,
        "\nIn-process rows are timed inside the worker (call + releasing the result); × floor is against the in-process floor. \
         Whole-process rows are timed by the driver from spawn to exit; × floor is against the floor run as a whole process.\n"
    );

    let _ = writeln!(
        o,
        "### `get` of one marker (fleet of {GET_FLEET_N}, {GET_CALLS} calls per sample)\n"
    );
    let _ = writeln!(o, "| surface | calls/s | per call | × Rust |");
    let _ = writeln!(o, "|---|---:|---:|---:|");
    let get_med = |s: &'static str| res.get.get(s).map(|v| median(v)).unwrap_or(f64::NAN);
    let get_ratio = |s: &'static str| match (res.get.get(s), res.get.get(RUST)) {
        (Some(x), Some(y)) => paired_ratio(x, y),
        _ => f64::NAN,
    };
    for s in [RUST, C, PY, GO] {
        let m = get_med(s);
        let name = s.replace("list", "get").replace("List", "Get");
        if m.is_nan() {
            let _ = writeln!(o, "| {name} | pending | | |");
        } else {
            let _ = writeln!(
                o,
                "| {name} | {:.0} | {} | {} |",
                1e9 / m,
                fmt_ns(m),
                fmt_ratio(get_ratio(s))
            );
        }
    }

    let big = plan.sizes.last().map(|s| s.0).unwrap_or(0);
    let floor_pm = med(FLOOR, big) / big as f64;
    let gc_pm = median(&res.gc) / plan.stale_n as f64;
    let sl_pm = median(&res.stale_list) / plan.stale_n as f64;
    let _ = writeln!(
        o,
        "\n### Collecting {} stale markers (dead pids; set laid down afresh each round)\n",
        plan.stale_n
    );
    let _ = writeln!(
        o,
        "| operation | median | per marker | × floor per marker (healthy, N={big}) |"
    );
    let _ = writeln!(o, "|---|---:|---:|---:|");
    let _ = writeln!(
        o,
        "| Rust `gc_stale` | {} | {} | {} |",
        fmt_ns(median(&res.gc)),
        fmt_ns(gc_pm),
        fmt_ratio(gc_pm / floor_pm)
    );
    let _ = writeln!(
        o,
        "| Rust `list` over the same | {} | {} | {} |",
        fmt_ns(median(&res.stale_list)),
        fmt_ns(sl_pm),
        fmt_ratio(sl_pm / floor_pm)
    );

    let syn_r = median(&res.syn_rust);
    let syn_c = median(&res.syn_cli);
    let _ = writeln!(
        o,
        "\n### {SYN_ENDPOINTS} TCP endpoints that drop SYNs (probe timeout 200 ms)\n"
    );
    let _ = writeln!(o, "| listing | median | × timeout |");
    let _ = writeln!(o, "|---|---:|---:|");
    let _ = writeln!(
        o,
        "| Rust `list` (in-process) | {} | {} |",
        fmt_ns(syn_r),
        fmt_ratio(syn_r / PROBE_TIMEOUT_NS)
    );
    let _ = writeln!(
        o,
        "| `firma sidecar status --json` (process) | {} | {} |",
        fmt_ns(syn_c),
        fmt_ratio(syn_c / PROBE_TIMEOUT_NS)
    );
    if !res.syn_states.is_empty() {
        let _ = writeln!(o, "\n⚠ {}", res.syn_states);
    }

    let total = |v: &[(String, f64)]| v.iter().map(|(_, c)| c).sum::<f64>();
    let sys_firma = total(&res.strace_firma);
    let sys_floor = total(&res.strace_floor);
    if !res.strace_firma.is_empty() {
        let _ = writeln!(
            o,
            "\n### System calls per healthy marker (`strace -f -c`, N={} minus N=0, divided by N)\n",
            plan.strace_n
        );
        let _ = writeln!(o, "| syscall | `firma sidecar status --json` | floor |");
        let _ = writeln!(o, "|---|---:|---:|");
        let mut names: Vec<&String> = res.strace_firma.iter().map(|(k, _)| k).collect();
        for (k, _) in &res.strace_floor {
            if !names.contains(&k) {
                names.push(k);
            }
        }
        let get = |v: &[(String, f64)], k: &str| {
            v.iter().find(|(n, _)| n == k).map(|x| x.1).unwrap_or(0.0)
        };
        for k in names {
            let (a, b) = (get(&res.strace_firma, k), get(&res.strace_floor, k));
            if a.abs() >= 0.005 || b.abs() >= 0.005 {
                let _ = writeln!(o, "| {k} | {a:.2} | {b:.2} |");
            }
        }
        let _ = writeln!(o, "| **total** | **{sys_firma:.2}** | **{sys_floor:.2}** |");
    }

    let rss = |n: usize| res.rss.get(&n).map(|(v, j)| (median(v), *j));
    let mut growth = f64::NAN;
    let _ = writeln!(o, "\n### Peak RSS of `firma sidecar status --json`\n");
    let _ = writeln!(o, "| N | peak RSS | JSON output |");
    let _ = writeln!(o, "|---:|---:|---:|");
    for &n in res.rss.keys() {
        if let Some((kib, json)) = rss(n) {
            let _ = writeln!(
                o,
                "| {n} | {kib:.0} KiB | {:.0} KiB |",
                json as f64 / 1024.0
            );
        }
    }
    if let (Some((r0, j0)), Some((r1, j1)), Some((r2, j2))) = (rss(0), rss(1_000), rss(10_000)) {
        growth = ((r2 - r1) * 1024.0 - (j2 as f64 - j1 as f64)) / 9_000.0;
        let growth_small = ((r1 - r0) * 1024.0 - (j1 as f64 - j0 as f64)) / 1_000.0;
        let _ = writeln!(
            o,
            "\nGrowth per marker beyond the JSON output: {growth:.0} B between N=1,000 and 10,000; {growth_small:.0} B between 0 and 1,000."
        );
    }

    // Targets of issue 6.
    let rust10k = list_ratio(RUST, FLOOR, big);
    let cli = list_ratio(CLI, FLOOR_PROC, plan.cli_n);
    let cli_inproc = list_ratio(CLI, FLOOR, plan.cli_n);
    let g = get_ratio;
    let _ = writeln!(o, "\n### Targets of issue 6\n");
    let _ = writeln!(o, "| target | measured | |");
    let _ = writeln!(o, "|---|---:|---|");
    let row = |o: &mut String, t: &str, m: String, ok: Option<bool>| {
        let v = match ok {
            Some(ok) => verdict(ok),
            None => "pending",
        };
        let _ = writeln!(o, "| {t} | {m} | {v} |");
    };
    let ratio_ok = |r: f64, max: f64| if r.is_nan() { None } else { Some(r <= max) };
    row(
        &mut o,
        &format!("in-process `list`, N={big}: ≤ 0.8× floor"),
        fmt_ratio(rust10k),
        ratio_ok(rust10k, 0.8),
    );
    row(
        &mut o,
        &format!(
            "`firma sidecar status --json`, N={}: ≤ 1.0× floor",
            plan.cli_n
        ),
        format!(
            "{} (vs in-process floor {})",
            fmt_ratio(cli),
            fmt_ratio(cli_inproc)
        ),
        ratio_ok(cli, 1.0),
    );
    let gc_r = gc_pm / floor_pm;
    let sl_r = sl_pm / floor_pm;
    row(
        &mut o,
        &format!(
            "`gc_stale` of {} stale: ≤ 2× floor per marker",
            plan.stale_n
        ),
        fmt_ratio(gc_r),
        ratio_ok(gc_r, 2.0),
    );
    row(
        &mut o,
        &format!("`list` over {} stale: ≤ 2× floor per marker", plan.stale_n),
        fmt_ratio(sl_r),
        ratio_ok(sl_r, 2.0),
    );
    row(
        &mut o,
        "Python `get`: ≤ 1.5× Rust",
        fmt_ratio(g(PY)),
        ratio_ok(g(PY), 1.5),
    );
    row(
        &mut o,
        "Go `get`: ≤ 1.5× Rust",
        fmt_ratio(g(GO)),
        ratio_ok(g(GO), 1.5),
    );
    row(
        &mut o,
        "C `get`: ≤ 1.1× Rust",
        fmt_ratio(g(C)),
        ratio_ok(g(C), 1.1),
    );
    let syn = syn_r / PROBE_TIMEOUT_NS;
    row(
        &mut o,
        "20 SYN-dropping endpoints: ≤ 1.2× timeout",
        fmt_ratio(syn),
        ratio_ok(syn, 1.2),
    );
    row(
        &mut o,
        "peak RSS beyond JSON: < 2 KiB per marker",
        format!("{growth:.0} B"),
        if growth.is_nan() {
            None
        } else {
            Some(growth < 2048.0)
        },
    );
    row(
        &mut o,
        "syscalls per healthy marker < floor's",
        format!("{sys_firma:.2} vs {sys_floor:.2}"),
        if res.strace_firma.is_empty() {
            None
        } else {
            Some(sys_firma < sys_floor)
        },
    );
    for (name, why) in &res.pending {
        let _ = writeln!(o, "\n- {name}: {why}");
    }
    for n in &res.notes {
        let _ = writeln!(o, "\n⚠ {n}");
    }
    for ((name, n), a) in &res.anomalies {
        if *n == 0 {
            let _ = writeln!(o, "\n⚠ {name}: {a}");
        }
    }
    o
}
