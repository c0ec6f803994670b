//! Unit tests of `process.rs` across pid namespaces: what a writer
//! records of its own, which pids a reader may judge here, a scan's map
//! of host pids walked before a marker was read, and a process found in a
//! real pid namespace (`unshare -p`).

use super::tests::{host_with, judged, me, meta_for, nested_host};
use super::*;

/// What a writer records of its namespaces is what the kernel says of
/// this process: the inode of `/proc/self/ns/pid`, and the boottime
/// offset of `/proc/self/timens_offsets` (0 where the file is absent).
#[test]
fn own_namespaces_are_the_kernels_view_of_this_process() {
    use std::os::unix::fs::MetadataExt;
    let ns = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
    let offset = std::fs::read_to_string("/proc/self/timens_offsets")
        .map(|s| parse_boottime_offset(&s).unwrap())
        .unwrap_or(0);
    assert_eq!(own_namespaces(), (Some(ns), offset));
    assert_ne!(ns, 0);
    assert_ne!(ns, 1);
}

/// `judge_here` takes only pids of the reader's own pid namespace (or of
/// none recorded): called with another one, or by a reader whose own is
/// unknown, it proves nothing, whatever lives under that number here.
#[test]
fn judge_here_refuses_a_pid_of_another_or_an_unknown_namespace() {
    let (pid, ticks, boot) = me();
    let m = meta_for(pid, Some(boot), Some(ticks));
    let mut fds = sys::MarkerFds::default();
    assert_eq!(
        judge_here(&m, &nested_host(), &mut fds).unwrap(),
        Liveness::Unverifiable("recorded in another pid namespace than the reader's")
    );
    let unknown = Host {
        pid_ns: None,
        ..host_with(host().boot_id, 0)
    };
    assert_eq!(
        judged(&m, &unknown),
        Liveness::Unverifiable("this reader's pid namespace is unknown")
    );
}

/// A scan's map walked before a marker was read proves nothing by a miss
/// (the process may have started after the walk): the scan judges it
/// again at its end ([`LATER`]), with a map walked then, whose miss
/// proves the process gone.
#[test]
fn a_miss_in_a_scans_map_walked_before_the_marker_was_read_is_judged_later() {
    let (pid, ticks, boot) = me();
    let mut m = meta_for(pid, Some(boot), Some(ticks));
    m.pid_ns_inode = Some(1);
    let h = host_with(host().boot_id, 0);
    let pids = HostPids::new();
    // The scan's walk, before the marker is read.
    pids.lookup(h.pid_ns.unwrap(), 1, 1, Instant::now(), true);
    let read_at = Instant::now();
    let mut fds = sys::MarkerFds::default();
    let first = judge(&m, &h, &mut fds, &Foreign::of_scan(&pids, read_at, false)).unwrap();
    assert_eq!(first, (Liveness::Unverifiable(LATER), None));
    let again = judge(&m, &h, &mut fds, &Foreign::of_scan(&pids, read_at, true)).unwrap();
    assert_eq!(again, (Liveness::Gone, None));
}

/// A new pid namespace (`unshare -p -f --kill-child`, root) whose first
/// process runs `sh -c 'true & exec sleep 30'`: pid 1 there a live
/// `sleep`, pid 2 its child, a zombie it never reaps. Killed on drop.
struct PidNs {
    unshare: std::process::Child,
    ns: u64,
}

impl PidNs {
    fn start() -> PidNs {
        use std::os::unix::fs::MetadataExt;
        let unshare = std::process::Command::new("unshare")
            .args(["-p", "-f", "--kill-child", "sh", "-c"])
            .arg("true & exec sleep 30")
            .spawn()
            .expect("unshare(1) is needed for a pid namespace");
        let mut ns = PidNs { unshare, ns: 0 };
        let link = format!("/proc/{}/ns/pid_for_children", ns.unshare.id());
        ns.ns = ns.poll("the new pid namespace", || {
            let ino = std::fs::metadata(&link).ok()?.ino();
            (Some(ino) != host().pid_ns).then_some(ino)
        });
        ns
    }

    /// Polls `f` for up to 10 s; fails loudly, naming `what`, when the
    /// kernel refused the namespace or it never showed.
    fn poll<T>(&mut self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let end = Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(v) = f() {
                return v;
            }
            if let Ok(Some(status)) = self.unshare.try_wait() {
                panic!("unshare -p exited ({status}) before {what} showed: refused?");
            }
            assert!(Instant::now() < end, "{what} never showed");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// This reader's pid of the namespace's `pid`, once in state `state`.
    fn here(&mut self, pid: u32, state: u8) -> u32 {
        let ns = self.ns;
        self.poll("the namespace's process", || {
            std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
                let here: u32 = e.file_name().to_str()?.parse().ok()?;
                let st = std::fs::read(format!("/proc/{here}/stat")).ok()?;
                (crate::sidecar_markers::host_pids::is_at(here, ns, pid)
                    && parse_proc_stat(&st)?.state == state)
                    .then_some(here)
            })
        })
    }
}

impl Drop for PidNs {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// A marker recorded in another pid namespace is judged by the process
/// found there (its pid here is what `stop` would signal): its start
/// ticks prove it the marker's (with a boot id: verified, without one or
/// the ticks: found but not proved, a namespace inode may be reused) or a
/// reused pid; a whole-process zombie there is stopped, a live
/// single-threaded process is not; another boot is proved before any
/// lookup.
#[test]
fn a_process_found_in_its_pid_namespace_is_judged_by_what_the_marker_records() {
    let mut pidns = PidNs::start();
    let sleep = pidns.here(1, b'S');
    let zombie = pidns.here(2, b'Z');
    let h = host_with(host().boot_id, 0);
    let at = |pid: u32, boot: Option<&str>, ticks: Option<u64>| {
        let mut m = meta_for(pid, boot.map(str::to_owned), ticks);
        m.pid_ns_inode = Some(pidns.ns);
        judge(&m, &h, &mut sys::MarkerFds::default(), &Foreign::now()).unwrap()
    };
    let rec = identity(sleep).unwrap().unwrap();
    let (boot, ticks) = (rec.boot_id.as_deref(), rec.start_ticks);
    let found = |l| (l, Some(sleep));
    assert_eq!(
        at(1, boot, Some(ticks)),
        found(Liveness::Alive(Identity::Verified))
    );
    let unproved = found(Liveness::Alive(Identity::Foreign(MAPPED_UNPROVED)));
    assert_eq!(at(1, boot, None), unproved);
    assert_eq!(at(1, None, Some(ticks)), unproved);
    assert_eq!(at(1, None, None), unproved);
    assert_eq!(at(1, boot, Some(ticks + 1)), found(Liveness::Reused));
    assert_eq!(
        at(1, Some("00000000-0000-0000-0000-000000000001"), Some(ticks)),
        (Liveness::OtherBoot, None)
    );
    let zticks = identity(zombie).unwrap().unwrap().start_ticks;
    assert_eq!(at(2, boot, Some(zticks)), (Liveness::Zombie, Some(zombie)));
    assert_eq!(at(2, None, None), (Liveness::Zombie, Some(zombie)));
}
