//! Is the sidecar's process alive, and is it still the process the marker
//! was written for — as far as *this reader* can prove?
//!
//! [`resolve_in`] decides what a marker's recorded fields prove, for every
//! operation (`list`, `get`, `gc_stale`, `probe_entry`, `inspect`,
//! `watch`, `stop`), through the one liveness function
//! `assess::liveness`, which adds the proof of the marker's own socket.
//! The rule: a sidecar is stopped only on proof that holds from the
//! reader's point of view (docs/design.md, "Liveness"):
//!
//! - a recorded boot id that is a UUID and differs from this boot's proves
//!   another boot; one that is not a UUID proves nothing;
//! - a pid recorded in another pid namespace than the reader's (key
//!   `pid_ns_inode`) is looked up under the reader's pid for the same
//!   process ([`host_pids`](super::host_pids)) and judged there as a host
//!   pid would be; nothing at that place proves it gone only to a reader
//!   that sees every process, else it is unverifiable;
//! - `/proc/<pid>/stat` present: a zombie leader whose process still has
//!   live threads is alive; a whole-process zombie is stopped; start ticks
//!   (normalised across time namespaces with `boottime_offset_ns` and the
//!   reader's own offset) that differ prove a reused pid;
//! - `/proc/<pid>` absent proves nothing alone (`hidepid`): only `ESRCH`
//!   from `kill(pid, 0)` does, and only when the reader is in the pid
//!   namespace the pid comes from;
//! - `EPERM`/`EACCES` on `/proc/<pid>/…` means alive, identity unchecked.
//!
//! Extra reads happen only when the first is inconclusive (a `Z` leader,
//! an absent `/proc` entry). Nothing here waits for or signals a process.

use std::io;
use std::sync::OnceLock;

use std::time::Instant;

use super::host_pids::{HostPids, Lookup};
use super::model::MetadataFile;
pub(crate) use super::procfs::{
    Creds, INITIAL_PID_NS_INODE, credentials, kill_probe, own_ancestors,
};
#[cfg(test)]
use super::procfs::{PF_KTHREAD, parse_proc_stat, parse_stat_flags, parse_status, stat_flags};
use super::procfs::{
    StatRead, parse_boottime_offset, parse_uuid, read_proc_stat, zombie_leader_has_threads,
};
use super::sys;

/// Why an existing pid may not be the marker's process: the marker records
/// no pid namespace and the reader is not in the initial one.
const FOREIGN: &str =
    "the marker records no pid namespace and the reader is not in the initial one";

/// The verdict on a marker's pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The process exists.
    Alive(Identity),
    /// This reader cannot tell whether the process lives: never stale.
    Unverifiable(&'static str),
    /// No such process (`ESRCH`, in the pid's own namespace).
    Gone,
    /// The whole process is a zombie (or dead, `X`) awaiting its parent.
    Zombie,
    /// A process with that pid exists but its start time differs from the
    /// one recorded: the pid was reused.
    Reused,
    /// The marker was written during another boot.
    OtherBoot,
}

/// How well an alive process was identified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Identity {
    /// Boot id and start ticks recorded, and both match, in the reader's
    /// pid namespace — or, for a pid recorded in another one, of the
    /// process found there under the reader's pid for it.
    Verified,
    /// The marker records no (complete) identity; the pid exists.
    NotRecorded,
    /// The process exists but its identity could not be read (`EPERM` on
    /// `/proc/<pid>`, or `/proc` hides it). The only case, with
    /// [`Identity::NotRecorded`], that `stop`'s opt-out may override.
    Unchecked(&'static str),
    /// A process with that pid exists here, but the pid may have been
    /// recorded in another pid namespace than the reader's, so it may be
    /// another process; or a process was found at the recorded place in
    /// another namespace but the marker records no complete identity (a
    /// namespace inode may be reused). Nothing proves it either way, and
    /// no opt-out makes it the marker's.
    Foreign(&'static str),
}

impl Identity {
    /// Whether `stop`'s unsafe opt-out (`verify_identity: false`) may act
    /// on this identity: only when the check could not be made at all
    /// (nothing recorded, or `/proc` withheld), never when the pid may name
    /// another process (docs/design.md, "Trust").
    pub fn opt_out_may_override(self) -> bool {
        matches!(self, Identity::NotRecorded | Identity::Unchecked(_))
    }
}

impl Liveness {
    /// Stale means provably stopped: the only verdicts that allow removal.
    pub fn is_stale(self) -> bool {
        matches!(
            self,
            Liveness::Gone | Liveness::Zombie | Liveness::Reused | Liveness::OtherBoot
        )
    }
}

/// What the reader knows about itself, read once per process (none of it
/// can change while we run: a process never changes its own pid or time
/// namespace, nor the boot it runs in).
struct Host {
    boot_id: Option<u128>,
    pid_ns: Option<u64>,
    boottime_offset_ns: i64,
    clk_tck: u64,
}

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host {
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .and_then(|s| parse_uuid(s.trim())),
        pid_ns: std::fs::metadata("/proc/self/ns/pid").ok().map(|m| {
            use std::os::unix::fs::MetadataExt;
            m.ino()
        }),
        boottime_offset_ns: std::fs::read_to_string("/proc/self/timens_offsets")
            .ok()
            .and_then(|s| parse_boottime_offset(&s))
            .unwrap_or(0),
        clk_tck: sys::clk_tck().unwrap_or(100),
    })
}

/// Start ticks in the initial time namespace, given the ticks seen in a
/// namespace whose boottime offset is `offset_ns`.
fn normalised_ticks(ticks: u64, offset_ns: i64, clk_tck: u64) -> i128 {
    let offset_ticks = (offset_ns as i128 * clk_tck as i128).div_euclid(1_000_000_000);
    ticks as i128 - offset_ticks
}

/// What the recorded fields prove of the marker's pid, from this reader's
/// point of view ([`resolve_in`] for one marker, its descriptors closed at
/// once). For tests: every operation judges through `assess::liveness`,
/// which adds the proof of the marker's own socket.
#[cfg(test)]
pub(crate) fn liveness(meta: &MetadataFile) -> Liveness {
    resolve_in(meta, &mut sys::MarkerFds::default(), &Foreign::now()).0
}

/// How a judgement finds pids recorded in another pid namespace: the map
/// of the scan, and when the marker was read (see [`HostPids::lookup`]).
pub(crate) struct Foreign<'a> {
    pids: Pids<'a>,
    read_at: Instant,
    fresh: bool,
}

impl Foreign<'_> {
    /// For one marker just read: a map of its own, built when needed.
    pub fn now() -> Foreign<'static> {
        Foreign {
            pids: Pids::Own(HostPids::new()),
            read_at: Instant::now(),
            fresh: true,
        }
    }

    /// For a marker of a scan, read at `read_at`; `fresh` lets the map be
    /// walked again when its walk began before then.
    pub fn of_scan(pids: &HostPids, read_at: Instant, fresh: bool) -> Foreign<'_> {
        Foreign {
            pids: Pids::Shared(pids),
            read_at,
            fresh,
        }
    }
}

enum Pids<'a> {
    Own(HostPids),
    Shared(&'a HostPids),
}

impl std::ops::Deref for Pids<'_> {
    type Target = HostPids;
    fn deref(&self) -> &HostPids {
        match self {
            Pids::Own(p) => p,
            Pids::Shared(p) => p,
        }
    }
}

/// Why a scan judges a marker again at its end: the map was walked before
/// the marker was read, and a miss in it proves nothing yet.
pub(crate) const LATER: &str = "recorded in another pid namespace; to be looked up again";

/// Whether a scan must judge the marker again at its end ([`LATER`]).
pub(crate) fn is_later(l: Liveness) -> bool {
    matches!(l, Liveness::Unverifiable(why) if why == LATER)
}

/// Decides whether the marker's pid is the live process it describes, from
/// this reader's point of view, finding a pid of another pid namespace
/// `foreign`'s way, and the pid that names the process *here*: the recorded
/// one, or, for a marker of another pid namespace, the reader's pid of the
/// process there (`None` when there is none), what `stop` signals. Only
/// the marker's recorded fields count here: `assess::liveness` adds the
/// proof of the marker's own socket.
pub(crate) fn resolve_in(
    meta: &MetadataFile,
    fds: &mut sys::MarkerFds,
    foreign: &Foreign<'_>,
) -> (Liveness, Option<u32>) {
    match judge(meta, host(), fds, foreign) {
        Ok(l) => l,
        Err(_) => (
            Liveness::Unverifiable("cannot read the process's /proc entry"),
            None,
        ),
    }
}

fn judge(
    meta: &MetadataFile,
    host: &Host,
    fds: &mut sys::MarkerFds,
    foreign: &Foreign<'_>,
) -> io::Result<(Liveness, Option<u32>)> {
    let pid = meta.pid;
    match (meta.pid_ns_inode, host.pid_ns) {
        (Some(recorded), Some(mine)) if recorded != mine => {
            if let Some(l) = other_boot(meta, host) {
                return Ok((l, None));
            }
            let lookup = foreign
                .pids
                .lookup(mine, recorded, pid, foreign.read_at, foreign.fresh);
            Ok(match lookup {
                Lookup::Here(here) => (judge_mapped(meta, host, here, fds)?, Some(here)),
                Lookup::Absent => (Liveness::Gone, None),
                Lookup::Unknown(why) => (Liveness::Unverifiable(why), None),
                Lookup::Later => (Liveness::Unverifiable(LATER), None),
            })
        }
        _ => judge_here(meta, host, fds).map(|l| (l, Some(pid))),
    }
}

/// A boot id recorded, and what it proves (another boot, or nothing).
fn other_boot(meta: &MetadataFile, host: &Host) -> Option<Liveness> {
    let recorded = meta.boot_id.as_deref()?;
    match (parse_uuid(recorded), host.boot_id) {
        (None, _) => Some(Liveness::Unverifiable("boot_id is not a UUID")),
        (Some(_), None) => Some(Liveness::Unverifiable("this host's boot id is unreadable")),
        (Some(r), Some(h)) if r != h => Some(Liveness::OtherBoot),
        _ => None,
    }
}

/// Whether the marker's boot id proves nothing (not a UUID, or this
/// host's unreadable): then no other proof makes its process the marker's.
pub(crate) fn is_boot_unproved(meta: &MetadataFile) -> bool {
    matches!(other_boot(meta, host()), Some(Liveness::Unverifiable(_)))
}

/// Whether start ticks recorded by the writer (in its time namespace) and
/// read here differ.
fn ticks_differ(meta: &MetadataFile, host: &Host, recorded: u64, seen: u64) -> bool {
    let a = normalised_ticks(recorded, meta.boottime_offset_ns.unwrap_or(0), host.clk_tck);
    let b = normalised_ticks(seen, host.boottime_offset_ns, host.clk_tck);
    // Offsets that are not whole ticks round either way.
    let exact = meta.boottime_offset_ns.unwrap_or(0) == 0 && host.boottime_offset_ns == 0;
    if exact { a != b } else { (a - b).abs() > 1 }
}

/// Why a process found in another namespace is not proved the marker's.
const MAPPED_UNPROVED: &str = "found in the recorded pid namespace, but the marker records no boot_id and pid_start_ticks (a namespace inode may be reused)";

/// The process found at the recorded `(namespace, pid)`, pid `here` for
/// this reader. While the recorded process lives, it alone is there; so
/// another process there (other start ticks) or a dead one proves it
/// exited, whichever process it is.
fn judge_mapped(
    meta: &MetadataFile,
    host: &Host,
    here: u32,
    fds: &mut sys::MarkerFds,
) -> io::Result<Liveness> {
    let complete = meta.boot_id.is_some() && meta.pid_start_ticks.is_some();
    match read_proc_stat(here, fds)? {
        StatRead::Found(st) => {
            if let Some(recorded) = meta.pid_start_ticks
                && ticks_differ(meta, host, recorded, st.start_ticks)
            {
                return Ok(Liveness::Reused);
            }
            if (st.state == b'Z' || st.state == b'X')
                && zombie_leader_has_threads(here) != Some(true)
            {
                return Ok(Liveness::Zombie);
            }
            Ok(Liveness::Alive(if complete {
                Identity::Verified
            } else {
                Identity::Foreign(MAPPED_UNPROVED)
            }))
        }
        StatRead::Denied => Ok(Liveness::Alive(Identity::Foreign(
            "permission denied reading /proc/<pid>/stat of the process found in its namespace",
        ))),
        // It was there when /proc was walked; the reader's pid of it names
        // nothing now (ESRCH here, in an ancestor namespace): it exited.
        StatRead::Absent => Ok(match kill_probe(here)? {
            true => Liveness::Alive(Identity::Foreign("/proc hides the process")),
            false => Liveness::Gone,
        }),
    }
}

fn judge_here(meta: &MetadataFile, host: &Host, fds: &mut sys::MarkerFds) -> io::Result<Liveness> {
    let pid = meta.pid;
    debug_assert!(pid >= 1 && pid <= i32::MAX as u32);
    if let Some(l) = other_boot(meta, host) {
        return Ok(l);
    }
    // Can this reader look the pid up at all? Only in the pid namespace it
    // was recorded in; for markers that do not say, only a reader in the
    // initial namespace is sure (the one writers without the key ran in).
    let same_ns = match (meta.pid_ns_inode, host.pid_ns) {
        (Some(recorded), Some(mine)) if recorded != mine => {
            return Ok(Liveness::Unverifiable(
                "recorded in another pid namespace than the reader's",
            ));
        }
        (Some(_), None) => {
            return Ok(Liveness::Unverifiable(
                "this reader's pid namespace is unknown",
            ));
        }
        (Some(_), Some(_)) => true,
        (None, mine) => mine == Some(INITIAL_PID_NS_INODE),
    };
    let complete = meta.boot_id.is_some() && meta.pid_start_ticks.is_some();
    match read_proc_stat(pid, fds)? {
        StatRead::Found(st) => {
            if let Some(recorded) = meta.pid_start_ticks
                && ticks_differ(meta, host, recorded, st.start_ticks)
            {
                return Ok(if same_ns {
                    Liveness::Reused
                } else {
                    Liveness::Unverifiable(
                        "the pid may come from another pid namespace than the reader's",
                    )
                });
            }
            if (st.state == b'Z' || st.state == b'X')
                && zombie_leader_has_threads(pid) != Some(true)
            {
                return Ok(if same_ns || meta.pid_start_ticks.is_some() {
                    Liveness::Zombie
                } else {
                    Liveness::Unverifiable(
                        "the pid may come from another pid namespace than the reader's",
                    )
                });
            }
            Ok(Liveness::Alive(if !same_ns {
                Identity::Foreign(FOREIGN)
            } else if complete {
                Identity::Verified
            } else {
                Identity::NotRecorded
            }))
        }
        StatRead::Denied if !same_ns => Ok(Liveness::Alive(Identity::Foreign(FOREIGN))),
        StatRead::Denied => Ok(Liveness::Alive(Identity::Unchecked(
            "permission denied reading /proc/<pid>/stat",
        ))),
        // /proc may hide the process from us; only ESRCH proves it gone.
        StatRead::Absent => Ok(match kill_probe(pid)? {
            true if !same_ns => Liveness::Alive(Identity::Foreign(FOREIGN)),
            true => Liveness::Alive(Identity::Unchecked("/proc hides the process")),
            false if same_ns => Liveness::Gone,
            false => Liveness::Unverifiable(
                "not found from this reader's pid namespace, which is not the pid's",
            ),
        }),
    }
}

/// The identity the writer records for `pid`, as seen from this process.
pub(crate) struct Recorded {
    pub boot_id: Option<String>,
    pub start_ticks: u64,
}

/// This process's pid namespace inode and boottime offset (ns): what a
/// writer records so readers elsewhere can interpret its pids and ticks.
pub(crate) fn own_namespaces() -> (Option<u64>, i64) {
    let h = host();
    (h.pid_ns, h.boottime_offset_ns)
}

/// The identity of the live process `pid`; `Ok(None)` when it does not
/// exist.
pub(crate) fn identity(pid: u32) -> io::Result<Option<Recorded>> {
    let st = match read_proc_stat(pid, &mut sys::MarkerFds::default())? {
        StatRead::Found(st) => st,
        StatRead::Absent => return Ok(None),
        StatRead::Denied => return Err(io::Error::from_raw_os_error(libc::EACCES)),
    };
    Ok(Some(Recorded {
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty()),
        start_ticks: st.start_ticks,
    }))
}

#[cfg(test)]
#[path = "process_ns_tests.rs"]
mod ns_tests;
#[cfg(test)]
#[path = "process_tests.rs"]
mod tests;
