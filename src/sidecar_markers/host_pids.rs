//! From a pid recorded in another pid namespace to this reader's pid of
//! the same process (docs/design.md, "Process identity").
//!
//! A writer in a container records its own pid and the inode of its pid
//! namespace (`pid_ns_inode`). A reader in an ancestor namespace sees that
//! process too, under another number: the one whose `/proc/<p>/ns/pid` is
//! that namespace and whose `NSpid` line (the pid in each namespace from
//! the reader's down to the process's own) ends with the recorded pid.
//!
//! One walk of `/proc` builds the whole map, once per scan and only when a
//! marker from another namespace is met. What the map gives is a candidate:
//! namespace inodes are reused once a namespace dies, so the caller still
//! checks the identity (start ticks) of the pid it names.
//!
//! A recorded `(namespace, pid)` names one process for as long as that
//! process lives (its namespace, hence its inode, cannot die before it), so
//! when a walk that sees every process, begun after the marker was read,
//! finds nothing there, the recorded process has exited.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What one walk of `/proc` found.
pub(crate) struct Map {
    /// When the walk began: a marker read before then whose `(namespace,
    /// pid)` is not in the map names a process that exited.
    started: Instant,
    /// `(pid namespace inode, pid there)` → this reader's pid, for every
    /// process outside the reader's own pid namespace.
    pids: HashMap<(u64, u32), u32>,
    /// `None` when the walk saw every process; else why not.
    blind: Option<&'static str>,
}

/// What a lookup tells about a recorded `(namespace, pid)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// Some process is there; its pid here. Its identity is still to check.
    Here(u32),
    /// Nothing is there: the recorded process has exited.
    Absent,
    /// Nothing found, which proves nothing: the reader does not see every
    /// process (why).
    Unknown(&'static str),
    /// Nothing found by a walk that began before the marker was read: ask
    /// again with a walk begun later (see [`HostPids::lookup`]).
    Later,
}

/// Why a miss in another namespace proves nothing to a reader that is not
/// in the initial pid namespace.
pub(crate) const NOT_INITIAL: &str = "recorded in another pid namespace, and this reader (not in the initial pid namespace) cannot see every process";

/// The map of one scan, built at most once (plus once more for markers
/// that a first walk came too early for), shared by the scan's workers.
#[derive(Default)]
pub(crate) struct HostPids {
    map: Mutex<Option<Arc<Map>>>,
}

impl HostPids {
    pub fn new() -> HostPids {
        HostPids::default()
    }

    /// Where `(ns, pid)`, recorded in a marker read at `read_at`, is now.
    /// The map is built at the first call. A miss in a map begun before
    /// `read_at` proves nothing: `Later`, unless `fresh` asks for a new
    /// walk then (a scan asks once, for all such markers, at its end).
    pub fn lookup(&self, own_ns: u64, ns: u64, pid: u32, read_at: Instant, fresh: bool) -> Lookup {
        let map = {
            let mut slot = self.map.lock().unwrap_or_else(|p| p.into_inner());
            match slot.as_ref() {
                Some(m) if !fresh || m.started >= read_at || m.pids.contains_key(&(ns, pid)) => {
                    Arc::clone(m)
                }
                _ => {
                    let m = Arc::new(walk(own_ns));
                    *slot = Some(Arc::clone(&m));
                    m
                }
            }
        };
        match (map.pids.get(&(ns, pid)), map.blind) {
            (Some(&here), _) => Lookup::Here(here),
            (None, Some(why)) => Lookup::Unknown(why),
            (None, None) if map.started >= read_at => Lookup::Absent,
            (None, None) => Lookup::Later,
        }
    }
}

/// One walk of `/proc`: every process outside `own_ns`, by its namespace
/// and its pid there.
pub(crate) fn walk(own_ns: u64) -> Map {
    let started = Instant::now();
    let mut blind = sees_everything(own_ns).err();
    let mut pids = HashMap::new();
    let dir = match std::fs::read_dir("/proc") {
        Ok(d) => d,
        Err(_) => {
            return Map {
                started,
                pids,
                blind: Some("/proc cannot be listed"),
            };
        }
    };
    for entry in dir {
        let Ok(entry) = entry else {
            blind.get_or_insert("/proc could not be listed to the end");
            continue;
        };
        let Some(here) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        match one(here, own_ns) {
            Ok(Some(key)) => {
                pids.insert(key, here);
            }
            Ok(None) => {}
            Err(why) => {
                blind.get_or_insert(why);
            }
        }
    }
    Map {
        started,
        pids,
        blind,
    }
}

/// `(namespace inode, pid there)` of the process `here`; `Ok(None)` when
/// it is in the reader's own namespace or exited meanwhile.
fn one(here: u32, own_ns: u64) -> Result<Option<(u64, u32)>, &'static str> {
    let gone = |e: &std::io::Error| matches!(e.raw_os_error(), Some(libc::ENOENT | libc::ESRCH));
    let status = || match std::fs::read_to_string(format!("/proc/{here}/status")) {
        Ok(s) => Ok(Some(s)),
        Err(e) if gone(&e) => Ok(None),
        Err(_) => Err("a process's status cannot be read"),
    };
    let ns = match std::fs::metadata(format!("/proc/{here}/ns/pid")) {
        Ok(m) => m.ino(),
        Err(e) if gone(&e) => return Ok(None),
        // The link is withheld (ptrace access: a non-dumpable process, an
        // LSM); status is not. One pid in `NSpid` is a process of the
        // reader's own namespace, which no foreign marker names.
        Err(_) => {
            return match status()? {
                Some(s) if nspid_count(&s) == Some(1) => Ok(None),
                Some(_) => Err("a process's pid namespace cannot be read"),
                None => Ok(None),
            };
        }
    };
    if ns == own_ns {
        return Ok(None);
    }
    let Some(status) = status()? else {
        return Ok(None);
    };
    match nspid_last(&status) {
        Some(pid) => Ok(Some((ns, pid))),
        None => Err("a process's status has no NSpid line"),
    }
}

/// Whether the process that is `here` for this reader is in the pid
/// namespace `ns` under `pid`.
pub(crate) fn is_at(here: u32, ns: u64, pid: u32) -> bool {
    let in_ns = std::fs::metadata(format!("/proc/{here}/ns/pid")).is_ok_and(|m| m.ino() == ns);
    in_ns
        && std::fs::read_to_string(format!("/proc/{here}/status"))
            .ok()
            .and_then(|s| nspid_last(&s))
            == Some(pid)
}

/// The pid of the process that is `here` for this reader in its own pid
/// namespace (the last of `NSpid`).
pub(crate) fn own_ns_pid(here: u32) -> Option<u32> {
    nspid_last(&std::fs::read_to_string(format!("/proc/{here}/status")).ok()?)
}

/// How many pids the `NSpid:` line holds (namespaces from `/proc`'s down
/// to the process's own).
fn nspid_count(status: &str) -> Option<usize> {
    Some(
        status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_ascii_whitespace()
            .count(),
    )
}

/// The last pid of the `NSpid:` line: the pid in the process's own pid
/// namespace.
pub(crate) fn nspid_last(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_ascii_whitespace()
        .next_back()?
        .parse()
        .ok()
}

/// `Ok` when a walk of `/proc` sees every process of the system: the
/// reader is in the initial pid namespace, `/proc` is its own, and
/// `/proc` hides nothing from it (no `hidepid`/`subset`, or the reader is
/// root).
fn sees_everything(own_ns: u64) -> Result<(), &'static str> {
    if own_ns != super::procfs::INITIAL_PID_NS_INODE {
        return Err(NOT_INITIAL);
    }
    let own = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse::<u32>().ok());
    if own != Some(std::process::id()) {
        return Err("/proc is not the reader's pid namespace's");
    }
    if may_see_hidden() {
        return Ok(());
    }
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|_| "/proc/self/mountinfo cannot be read")?;
    if proc_hides(&mountinfo) {
        Err("/proc is mounted with hidepid or subset: it may hide processes from this reader")
    } else {
        Ok(())
    }
}

/// Inode of the initial user namespace (`PROC_USER_INIT_INO`).
const INITIAL_USER_NS_INODE: u64 = 0xEFFF_FFFD;

/// `CAP_SYS_PTRACE`, whose holder `hidepid` hides nothing from.
const CAP_SYS_PTRACE: u32 = 19;

/// Whether `hidepid` hides nothing from this reader: root in the initial
/// user namespace with `CAP_SYS_PTRACE` effective (a container's root, in a
/// user namespace of its own, is not).
fn may_see_hidden() -> bool {
    let initial_user_ns =
        std::fs::metadata("/proc/self/ns/user").is_ok_and(|m| m.ino() == INITIAL_USER_NS_INODE);
    let cap_eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or(0);
    super::sys::geteuid() == 0 && initial_user_ns && cap_eff & (1 << CAP_SYS_PTRACE) != 0
}

/// Whether the `/proc` mount of a mountinfo text hides processes
/// (`hidepid=1|2|invisible|noaccess|ptraceable`, `subset=pid`). The last
/// mount on `/proc` is the one seen.
pub(crate) fn proc_hides(mountinfo: &str) -> bool {
    let Some(line) = mountinfo
        .lines()
        .rfind(|l| l.split(' ').nth(4) == Some("/proc"))
    else {
        return true;
    };
    let Some((_, after)) = line.split_once(" - ") else {
        return true;
    };
    let mut f = after.split(' ');
    if f.next() != Some("proc") {
        return true;
    }
    let opts = f.nth(1).unwrap_or("");
    opts.split(',').any(|o| {
        matches!(o.split_once('='), Some(("hidepid", v)) if v != "0" && v != "off")
            || o.starts_with("subset=")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nspid_gives_the_innermost_pid() {
        assert_eq!(nspid_last("Name:\tx\nNSpid:\t4242\t17\t1\n"), Some(1));
        assert_eq!(nspid_last("NSpid:\t4242\n"), Some(4242));
        assert_eq!(nspid_last("Pid:\t3\n"), None);
    }

    #[test]
    fn hidepid_and_subset_hide() {
        let m = |opts: &str| format!("22 1 0:5 / /proc rw,nosuid shared:1 - proc proc {opts}\n");
        assert!(!proc_hides(&m("rw")));
        assert!(!proc_hides(&m("rw,hidepid=0")));
        assert!(proc_hides(&m("rw,hidepid=2")));
        assert!(proc_hides(&m("rw,hidepid=invisible")));
        assert!(proc_hides(&m("rw,subset=pid")));
        // The last mount on /proc is the one seen.
        assert!(proc_hides(&format!("{}{}", m("rw"), m("rw,hidepid=1"))));
        assert!(proc_hides("22 1 0:5 / /sys rw - sysfs sysfs rw\n"));
    }

    /// A miss proves death only to a walk begun after the marker was read;
    /// an earlier walk says `Later`, and a fresh lookup walks again.
    #[test]
    fn a_miss_proves_nothing_to_a_walk_begun_before_the_read() {
        let own = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        if own != crate::sidecar_markers::procfs::INITIAL_PID_NS_INODE
            || crate::sidecar_markers::sys::geteuid() != 0
        {
            panic!("this test needs root in the initial pid namespace");
        }
        // A namespace inode no process has.
        let (ns, pid) = (1, 7);
        let pids = HostPids::new();
        let before = Instant::now();
        assert_eq!(pids.lookup(own, ns, pid, before, false), Lookup::Absent);
        let after = Instant::now();
        assert_eq!(pids.lookup(own, ns, pid, after, false), Lookup::Later);
        assert_eq!(pids.lookup(own, ns, pid, after, true), Lookup::Absent);
        // The fresh walk is shared: no further one for earlier reads.
        let started = pids.map.lock().unwrap().as_ref().unwrap().started;
        assert_eq!(pids.lookup(own, ns, pid, after, true), Lookup::Absent);
        let again = pids.map.lock().unwrap().as_ref().unwrap().started;
        assert_eq!(started, again);
    }

    /// Root here (the tests run as root in the initial user namespace)
    /// may see what hidepid hides; root of a user namespace of its own may
    /// not.
    #[test]
    fn only_the_hosts_root_sees_past_hidepid() {
        assert!(may_see_hidden(), "the tests run as the host's root");
        let out = std::process::Command::new("unshare")
            .args([
                "-U",
                "-r",
                "sh",
                "-c",
                "readlink /proc/self/ns/user; grep CapEff /proc/self/status",
            ])
            .output()
            .expect("unshare (util-linux)");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "the kernel refused a user namespace: {text}"
        );
        assert!(
            !text.contains(&format!("user:[{INITIAL_USER_NS_INODE}]")),
            "{text}"
        );
    }

    #[test]
    fn a_walk_finds_nothing_of_our_own_namespace() {
        let own = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        let map = walk(own);
        assert!(map.pids.values().all(|&p| p != std::process::id()));
    }
}
