//! `gc_stale` over N stale markers of which a tenth are containerised
//! (recorded in another pid namespace), beside the same N all recorded on
//! the host: what finding the host pids costs (one walk of `/proc` per
//! scan, only when such markers exist) and that a scan with none pays
//! nothing for it.
//!
//! The containerised markers name real namespaces (`unshare -p -f
//! --mount-proc`): a quarter of them the live pid 1 of four live namespaces
//! (kept), the rest a namespace that died or a pid no live namespace has
//! (collected). The sets are laid down afresh before every call. Needs
//! root and `unshare`; otherwise a note says why the rows are pending.

use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{Bench, Level, Scenario};
use crate::Res;
use crate::contenders::RUST;
use crate::fleet::{fresh_run, sandbox_id};
use crate::stats::{fmt_ns, fmt_ratio};
use crate::table::{head, heading, row};

const MIXED: &str = "gc_containers";
const HOST: &str = "gc_host_only";

pub struct Containers {
    n: usize,
    foreign: usize,
    rounds: usize,
}

impl Containers {
    pub fn new(level: Level) -> Containers {
        let n = level.pick(10_000, 1_000, 100);
        Containers {
            n,
            foreign: n / 10,
            rounds: level.pick(7, 3, 1),
        }
    }
}

/// A live pid namespace whose pid 1 sleeps; killed on drop.
struct Ns {
    unshare: Child,
    /// The namespace's pid 1, as this process sees it.
    init: String,
    inode: u64,
    init_ticks: u64,
}

impl Ns {
    fn start() -> io::Result<Ns> {
        let mut unshare = Command::new("unshare")
            .args(["-p", "-f", "--mount-proc", "--kill-child"])
            .args(["sleep", "100000"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let pid = unshare.id();
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))?;
            if let Some(init) = children.split_whitespace().next() {
                let inode = std::fs::metadata(format!("/proc/{init}/ns/pid"))?.ino();
                let stat = std::fs::read_to_string(format!("/proc/{init}/stat"))?;
                let ticks = stat
                    .rsplit_once(')')
                    .and_then(|(_, r)| r.split_whitespace().nth(19)?.parse().ok())
                    .ok_or_else(|| io::Error::other("cannot parse /proc/<pid>/stat"))?;
                if inode != own_ns()? {
                    return Ok(Ns {
                        unshare,
                        init: init.to_owned(),
                        inode,
                        init_ticks: ticks,
                    });
                }
            }
            if Instant::now() > end || unshare.try_wait()?.is_some() {
                let _ = unshare.kill();
                return Err(io::Error::other("unshare -p -f --mount-proc refused"));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        // The namespace's init first: `--kill-child` does not reach it when
        // `unshare` dies before it armed the death signal.
        let _ = Command::new("kill")
            .args(["-KILL", &self.init])
            .stderr(Stdio::null())
            .status();
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn own_ns() -> io::Result<u64> {
    Ok(std::fs::metadata("/proc/self/ns/pid")?.ino())
}

fn boot_id() -> io::Result<String> {
    Ok(std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?
        .trim()
        .to_owned())
}

fn dead_pid() -> io::Result<u32> {
    let mut c = Command::new("true").spawn()?;
    let pid = c.id();
    c.wait()?;
    Ok(pid)
}

/// One marker: `(sandbox id, metadata.toml)`.
type Marker = (String, String);

fn marker(id: String, pid: u32, boot: &str, ticks: u64, ns: u64) -> Marker {
    let text = format!(
        "sandbox_id = \"{id}\"\nagent_id = \"agent\"\nsession_id = \"session\"\n\
         authority_url = \"https://authority.firma.internal:8443/v1\"\n\
         policy_bundle_version = \"sha256:00\"\npid = {pid}\n\
         started_at = \"2026-01-01T00:00:00Z\"\nboot_id = \"{boot}\"\n\
         pid_start_ticks = {ticks}\npid_ns_inode = {ns}\nboottime_offset_ns = 0\n"
    );
    (id, text)
}

/// Lays `set` down under `<runtime>/run`, replacing what was there.
fn restore(runtime: &Path, set: &[Marker]) -> io::Result<()> {
    let (run, b) = fresh_run(runtime)?;
    for (id, text) in set {
        let dir = run.join(id);
        b.create(&dir)?;
        let path = dir.join("metadata.toml");
        std::fs::write(&path, text)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}

impl Containers {
    /// The two sets: `(mixed, host only, how many of mixed are live)`.
    fn sets(&self, live: &[Ns], dead_ns: u64) -> io::Result<(Vec<Marker>, Vec<Marker>, usize)> {
        let boot = boot_id()?;
        let own = own_ns()?;
        let dead = dead_pid()?;
        let host = |i| marker(sandbox_id("host", i), dead, &boot, 1, own);
        let mut mixed: Vec<Marker> = (0..self.n - self.foreign).map(host).collect();
        let mut kept = 0;
        for j in 0..self.foreign {
            let id = sandbox_id("ctr", j);
            let ns = &live[j % live.len()];
            mixed.push(match j % 4 {
                // The live pid 1 of a live namespace: kept.
                0 => {
                    kept += 1;
                    marker(id, 1, &boot, ns.init_ticks, ns.inode)
                }
                // A namespace that died.
                1 | 2 => marker(id, 1, &boot, 7, dead_ns),
                // A pid the live namespace does not have.
                _ => marker(id, 1000 + j as u32, &boot, 7, ns.inode),
            });
        }
        let only = (0..self.n).map(host).collect();
        Ok((mixed, only, kept))
    }
}

impl Scenario for Containers {
    fn after_fleets(&mut self, b: &mut Bench) -> Res<()> {
        let pending = |b: &mut Bench, why: String| {
            b.notes
                .push(format!("containerised markers: rows pending ({why})"));
            Ok(())
        };
        // The owner of /proc/self is this process's effective uid.
        if std::fs::metadata("/proc/self").map(|m| m.uid()).ok() != Some(0) {
            return pending(b, "needs root to build pid namespaces".into());
        }
        let mut live = Vec::new();
        for _ in 0..4 {
            match Ns::start() {
                Ok(ns) => live.push(ns),
                Err(e) => return pending(b, e.to_string()),
            }
        }
        let dead_ns = match Ns::start() {
            Ok(ns) => ns.inode,
            Err(e) => return pending(b, e.to_string()),
        };
        let (mixed, only, kept) = self.sets(&live, dead_ns).map_err(|e| e.to_string())?;
        let dir = b.work.join("containers");
        for r in 0..self.rounds {
            for k in 0..2 {
                let (what, set, left) = if (k + r) % 2 == 0 {
                    (MIXED, &mixed, kept)
                } else {
                    (HOST, &only, 0)
                };
                restore(&dir, set).map_err(|e| format!("containers set: {e}"))?;
                let t = Instant::now();
                let removed = firma_stack::sidecar_markers::gc_stale(&dir)
                    .map_err(|e| format!("gc_stale: {e}"))?;
                let ns = t.elapsed().as_nanos() as f64;
                if removed.len() != set.len() - left {
                    b.warn(format!(
                        "{what}: gc_stale removed {} of {} (expected {})",
                        removed.len(),
                        set.len(),
                        set.len() - left
                    ));
                }
                b.record(what, RUST, self.n, ns);
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        drop(live);
        Ok(())
    }

    fn render(&self, b: &Bench, o: &mut String) {
        let text = format!(
            "Collecting {} markers, {} of them containerised (in-process `gc_stale`, set laid down afresh each round)",
            self.n, self.foreign
        );
        heading(o, &text);
        head(o, &["set", "median", "per marker", "× host only"], "lrrr");
        let host = b.median(HOST, RUST, self.n);
        for (label, what) in [
            (format!("{} on the host (none containerised)", self.n), HOST),
            (
                format!(
                    "{} on the host, {} containerised",
                    self.n - self.foreign,
                    self.foreign
                ),
                MIXED,
            ),
        ] {
            let m = b.median(what, RUST, self.n);
            row(
                o,
                &[
                    label,
                    fmt_ns(m),
                    fmt_ns(m / self.n as f64),
                    fmt_ratio(m / host),
                ],
            );
        }
    }
}
