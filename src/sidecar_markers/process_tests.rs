//! Unit tests of `process.rs`: parsing `/proc` files and boot ids, and
//! the liveness of this very process under every identity the marker
//! might record. Pid namespaces are `process_ns_tests.rs`.

use super::*;

#[test]
fn stat_with_parens_and_spaces_in_comm() {
    let line = b"42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10\n";
    let st = parse_proc_stat(line).unwrap();
    assert_eq!(st.state, b'S');
    assert_eq!(st.start_ticks, 98765);
}

#[test]
fn boot_ids_compare_as_uuids() {
    let canon = parse_uuid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0").unwrap();
    for spelling in [
        "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
        "{0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0}",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
        " 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0\n",
    ] {
        assert_eq!(parse_uuid(spelling), Some(canon), "{spelling:?}");
    }
    for bad in [
        "",
        "not-a-uuid",
        "0f1e2d3c-4b5a-6978-8796",
        "{0f1e}",
        "g".repeat(32).as_str(),
    ] {
        assert_eq!(parse_uuid(bad), None, "{bad:?}");
    }
}

#[test]
fn status_and_stat_flags_parse() {
    let status = b"Name:\tx\nPPid:\t7\nUid:\t1000\t1001\t1002\t1003\nGid:\t0\t0\t0\t0\n";
    assert_eq!(parse_status(status), Some(([1000, 1001, 1002, 1003], 7)));
    assert_eq!(parse_status(b"Uid:\t1\t2\t3\nPPid:\t1\n"), None);
    assert_eq!(parse_status(b"PPid:\t1\n"), None);
    let kthread = b"2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 2 0 0\n";
    let flags = parse_stat_flags(kthread).unwrap();
    assert_eq!(flags, 2_129_984);
    assert_ne!(flags & PF_KTHREAD, 0);
    let me = credentials(std::process::id()).unwrap().unwrap();
    assert!(!me.kthread);
    assert_eq!(me.ppid, std::os::unix::process::parent_id());
    assert_eq!(me.uids[0], sys::proc::getuid());
    let kthreadd = credentials(2).unwrap().unwrap();
    assert!(kthreadd.kthread, "pid 2 is kthreadd on Linux");
}

#[test]
fn timens_offsets_parse() {
    let text = "monotonic           0         0\nboottime         1000         5\n";
    assert_eq!(parse_boottime_offset(text), Some(1_000_000_000_005));
    assert_eq!(normalised_ticks(150_000, 1_000_000_000_000, 100), 50_000);
    assert_eq!(normalised_ticks(10, -2_000_000_000, 100), 210);
}

pub(super) fn meta_for(pid: u32, boot: Option<String>, ticks: Option<u64>) -> MetadataFile {
    MetadataFile {
        sandbox_id: "s".into(),
        agent_id: "a".into(),
        session_id: "s".into(),
        authority_url: "u".into(),
        policy_bundle_version: "p".into(),
        pid,
        started_at: "t".into(),
        listen: None,
        boot_id: boot,
        pid_start_ticks: ticks,
        pid_ns_inode: host().pid_ns,
        boottime_offset_ns: Some(host().boottime_offset_ns),
    }
}

#[test]
fn own_process_is_alive_and_identity_matches() {
    let me = std::process::id();
    let rec = identity(me).unwrap().unwrap();
    let m = meta_for(me, rec.boot_id.clone(), Some(rec.start_ticks));
    assert_eq!(liveness(&m), Liveness::Alive(Identity::Verified));
    let m = meta_for(me, rec.boot_id.clone(), Some(rec.start_ticks + 1));
    assert_eq!(liveness(&m), Liveness::Reused);
    let other = "00000000-0000-0000-0000-000000000001".to_owned();
    let m = meta_for(me, Some(other), Some(rec.start_ticks));
    assert_eq!(liveness(&m), Liveness::OtherBoot);
    let m = meta_for(me, Some("another-boot".into()), Some(rec.start_ticks));
    assert!(matches!(liveness(&m), Liveness::Unverifiable(_)));
    // Recorded in a pid namespace no process is in: this reader (root, in
    // the initial pid namespace, /proc its own) sees every process, so
    // nothing there proves the recorded process gone — though a process
    // with that number and start time lives here.
    let mut m = meta_for(me, rec.boot_id, Some(rec.start_ticks));
    m.pid_ns_inode = Some(1);
    assert_eq!(liveness(&m), Liveness::Gone);
}

/// A reader's view of itself, as `judge` takes it, with the given boot id
/// and boottime offset (the rest this process's own).
pub(super) fn host_with(boot_id: Option<u128>, boottime_offset_ns: i64) -> Host {
    Host {
        boot_id,
        pid_ns: host().pid_ns,
        boottime_offset_ns,
        clk_tck: 100,
    }
}

pub(super) fn judged(meta: &MetadataFile, host: &Host) -> Liveness {
    judge(meta, host, &mut sys::MarkerFds::default(), &Foreign::now())
        .unwrap()
        .0
}

/// This process's start ticks and boot id, as its own writer would record.
pub(super) fn me() -> (u32, u64, String) {
    let me = std::process::id();
    let rec = identity(me).unwrap().unwrap();
    (me, rec.start_ticks, rec.boot_id.unwrap())
}

#[test]
fn a_boot_id_without_start_ticks_or_the_reverse_is_not_a_verified_identity() {
    let (pid, ticks, boot) = me();
    let h = host_with(host().boot_id, 0);
    let only_boot = meta_for(pid, Some(boot.clone()), None);
    assert_eq!(
        judged(&only_boot, &h),
        Liveness::Alive(Identity::NotRecorded)
    );
    let only_ticks = meta_for(pid, None, Some(ticks));
    assert_eq!(
        judged(&only_ticks, &h),
        Liveness::Alive(Identity::NotRecorded)
    );
    // Half an identity still proves what it can: other ticks, a reused pid.
    let wrong_ticks = meta_for(pid, None, Some(ticks + 5));
    assert_eq!(judged(&wrong_ticks, &h), Liveness::Reused);
    // Both: verified.
    let both = meta_for(pid, Some(boot), Some(ticks));
    assert_eq!(judged(&both, &h), Liveness::Alive(Identity::Verified));
}

/// A reader that cannot read its own boot id can prove nothing with a
/// recorded one: unverifiable, never "another boot", never verified; a
/// marker that records none is judged as before.
#[test]
fn a_reader_without_its_own_boot_id_proves_nothing_with_a_recorded_one() {
    let (pid, ticks, boot) = me();
    let blind = host_with(None, 0);
    for recorded in [boot.clone(), "00000000-0000-0000-0000-000000000001".into()] {
        let m = meta_for(pid, Some(recorded), Some(ticks));
        assert_eq!(
            judged(&m, &blind),
            Liveness::Unverifiable("this host's boot id is unreadable")
        );
    }
    let m = meta_for(pid, None, Some(ticks));
    assert_eq!(judged(&m, &blind), Liveness::Alive(Identity::NotRecorded));
    let m = meta_for(pid, None, Some(ticks + 3));
    assert_eq!(judged(&m, &blind), Liveness::Reused);
}

/// A marker written in a time namespace records the ticks seen there and
/// the namespace's boottime offset. Offsets that are not whole ticks
/// (sub-tick, negative, with nanoseconds) round either way, so one tick
/// of difference is tolerated then, never more; whole-tick-free readers
/// and writers compare exactly.
#[test]
fn boottime_offsets_normalise_start_ticks_within_one_tick() {
    let (pid, ticks, boot) = me();
    let h = host_with(host().boot_id, 0);
    let at = |recorded: u64, offset_ns: i64| {
        let mut m = meta_for(pid, Some(boot.clone()), Some(recorded));
        m.boottime_offset_ns = Some(offset_ns);
        judged(&m, &h)
    };
    let alive = Liveness::Alive(Identity::Verified);
    // Sub-tick (3 ms at 100 Hz): the writer saw the same tick or the next.
    for seen in [ticks, ticks + 1] {
        assert_eq!(at(seen, 3_000_000), alive, "sub-tick, seen {seen}");
    }
    assert_eq!(at(ticks + 2, 3_000_000), Liveness::Reused);
    // Negative, −4.75 s = −475 ticks: seen 475 (or 476) ticks earlier.
    for seen in [ticks - 475, ticks - 476] {
        assert_eq!(at(seen, -4_750_000_000), alive, "negative, seen {seen}");
    }
    assert_eq!(at(ticks - 478, -4_750_000_000), Liveness::Reused);
    assert_eq!(at(ticks - 472, -4_750_000_000), Liveness::Reused);
    // Large with nanoseconds: 1000 s + 500 ns.
    let off = 1_000_000_000_500;
    for seen in [ticks + 100_000, ticks + 100_001] {
        assert_eq!(at(seen, off), alive, "large, seen {seen}");
    }
    assert_eq!(at(ticks + 100_003, off), Liveness::Reused);
    assert_eq!(at(ticks + 99_998, off), Liveness::Reused);
    // Whole offsets on both sides compare exactly: one tick is a reuse.
    assert_eq!(at(ticks, 0), alive);
    assert_eq!(at(ticks + 1, 0), Liveness::Reused);
    assert_eq!(at(ticks - 1, 0), Liveness::Reused);
}

/// The reader's own offset counts too: a reader in a time namespace
/// 7.5 ticks ahead sees this process start 7 or 8 ticks later than a
/// writer in the initial namespace recorded.
#[test]
fn the_readers_own_boottime_offset_is_taken_off_its_ticks() {
    let (pid, ticks, boot) = me();
    let ahead = host_with(host().boot_id, 75_000_000);
    // judge reads the real /proc (initial-namespace ticks) and takes the
    // reader's offset off them: what a writer recorded is 7 or 8 less.
    for recorded in [ticks - 7, ticks - 8] {
        let m = meta_for(pid, Some(boot.clone()), Some(recorded));
        let m = MetadataFile {
            boottime_offset_ns: Some(0),
            ..m
        };
        assert_eq!(
            judged(&m, &ahead),
            Liveness::Alive(Identity::Verified),
            "{recorded}"
        );
    }
    let m = MetadataFile {
        boottime_offset_ns: Some(0),
        ..meta_for(pid, Some(boot), Some(ticks))
    };
    assert_eq!(judged(&m, &ahead), Liveness::Reused);
}

/// A reader in a pid namespace other than the initial one.
pub(super) fn nested_host() -> Host {
    Host {
        pid_ns: Some(4_026_530_000),
        ..host_with(host().boot_id, 0)
    }
}

fn no_ns(m: MetadataFile) -> MetadataFile {
    MetadataFile {
        pid_ns_inode: None,
        ..m
    }
}

/// A marker that records no pid namespace was written in the initial one:
/// only a reader there may take its pid for the marker's. Elsewhere a live
/// pid is `Foreign`, other ticks or no process prove nothing. (Found by
/// `make mutants`: none of this was pinned by a unit test.)
#[test]
fn a_marker_without_a_pid_namespace_is_the_readers_only_in_the_initial_one() {
    assert_eq!(
        host().pid_ns,
        Some(INITIAL_PID_NS_INODE),
        "this test must run in the initial pid namespace"
    );
    let (pid, ticks, boot) = me();
    let init = host_with(host().boot_id, 0);
    let nested = nested_host();
    let m = no_ns(meta_for(pid, Some(boot.clone()), Some(ticks)));
    assert_eq!(judged(&m, &init), Liveness::Alive(Identity::Verified));
    assert!(matches!(
        judged(&m, &nested),
        Liveness::Alive(Identity::Foreign(_))
    ));
    let other_ticks = no_ns(meta_for(pid, Some(boot.clone()), Some(ticks + 9)));
    assert_eq!(judged(&other_ticks, &init), Liveness::Reused);
    assert!(matches!(
        judged(&other_ticks, &nested),
        Liveness::Unverifiable(_)
    ));
    let dead = {
        let mut c = std::process::Command::new("true").spawn().unwrap();
        let p = c.id();
        c.wait().unwrap();
        p
    };
    let gone = no_ns(meta_for(dead, Some(boot), None));
    assert_eq!(judged(&gone, &init), Liveness::Gone);
    assert!(matches!(judged(&gone, &nested), Liveness::Unverifiable(_)));
}

fn state_of(pid: u32) -> u8 {
    let bytes = std::fs::read(format!("/proc/{pid}/stat")).unwrap();
    parse_proc_stat(&bytes).unwrap().state
}

/// A whole-process zombie is `Zombie` (from a nested reader only with its
/// start ticks recorded); a zombie *leader* whose other thread still runs
/// is alive — a real one: python's main thread calls `exit(2)`, the
/// system call that ends one thread, while another sleeps.
#[test]
fn a_whole_zombie_is_stopped_a_zombie_leader_with_live_threads_is_alive() {
    let init = host_with(host().boot_id, 0);
    // A whole-process zombie: exited, not reaped.
    let mut z = std::process::Command::new("true").spawn().unwrap();
    let zpid = z.id();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state_of(zpid) != b'Z' {
        assert!(std::time::Instant::now() < end, "`true` never exited");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let zticks = identity(zpid).unwrap().unwrap().start_ticks;
    assert_eq!(judged(&meta_for(zpid, None, None), &init), Liveness::Zombie);
    let bare = no_ns(meta_for(zpid, None, None));
    assert!(matches!(
        judged(&bare, &nested_host()),
        Liveness::Unverifiable(_)
    ));
    let ticked = no_ns(meta_for(zpid, None, Some(zticks)));
    assert_eq!(judged(&ticked, &nested_host()), Liveness::Zombie);
    z.wait().unwrap();
    // A zombie leader with a live thread.
    let mut leader = std::process::Command::new("python3")
        .args([
            "-c",
            "import ctypes, threading, time\n\
             threading.Thread(target=time.sleep, args=(30,)).start()\n\
             ctypes.CDLL(None).syscall(60, 0)\n",
        ])
        .spawn()
        .expect("python3 is needed for a zombie leader with a live thread");
    let lpid = leader.id();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state_of(lpid) != b'Z' {
        assert!(std::time::Instant::now() < end, "the leader never exited");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(zombie_leader_has_threads(lpid), Some(true));
    let m = meta_for(lpid, None, None);
    assert_eq!(judged(&m, &init), Liveness::Alive(Identity::NotRecorded));
    let _ = leader.kill();
    let _ = leader.wait();
}

/// A `sleep 30` child: a live single-threaded process of our own.
fn sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap()
}

/// [`sleeper`] and a marker recording its full identity, as a writer would.
fn recorded_sleeper() -> (std::process::Child, MetadataFile) {
    let child = sleeper();
    let pid = child.id();
    let rec = identity(pid).unwrap().unwrap();
    (child, meta_for(pid, rec.boot_id, Some(rec.start_ticks)))
}

/// A live single-threaded process (`sleep`) is alive, not a zombie: the
/// zombie rule looks at threads only for a `Z`/`X` leader. (Found by
/// `make mutants`: the test process itself has many threads.)
#[test]
fn a_live_single_threaded_process_is_alive() {
    let (mut child, m) = recorded_sleeper();
    let pid = child.id();
    let h = host_with(host().boot_id, 0);
    assert_eq!(zombie_leader_has_threads(pid), Some(false));
    assert_eq!(judged(&m, &h), Liveness::Alive(Identity::Verified));
    let _ = child.kill();
    let _ = child.wait();
}

/// The descriptor of `/proc/<pid>/stat` that a judgement leaves to the
/// scan's `MarkerFds` (closed with the marker's others) is close-on-exec,
/// as the kernel reports it in `/proc/self/fdinfo`: a supervisor that
/// lists on one thread and starts a program on another leaks none.
#[test]
fn the_stat_descriptor_a_judgement_keeps_is_close_on_exec() {
    let (mut child, m) = recorded_sleeper();
    let pid = child.id();
    let mut fds = sys::MarkerFds::default();
    assert_eq!(
        resolve_in(&m, &mut fds, &Foreign::now()).0,
        Liveness::Alive(Identity::Verified)
    );
    let stat = std::path::PathBuf::from(format!("/proc/{pid}/stat"));
    let flags: Vec<u32> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            (std::fs::read_link(e.path()).ok()? == stat).then_some(e.file_name())
        })
        .map(|fd| {
            let info =
                std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.to_string_lossy()))
                    .unwrap();
            let flags: String = sys::proc_field(&info, "flags:").unwrap();
            u32::from_str_radix(&flags, 8).unwrap()
        })
        .collect();
    assert!(
        !flags.is_empty(),
        "the judgement kept no descriptor of {stat:?}"
    );
    for f in flags {
        assert!(f & libc::O_CLOEXEC as u32 != 0, "flags {f:o}");
    }
    drop(fds);
    let _ = child.kill();
    let _ = child.wait();
}

/// A process that is gone has no credentials (`Ok(None)`: stop then
/// reports it exited), never an error; nor has it an identity.
#[test]
fn a_reaped_process_has_no_credentials_and_no_identity() {
    let mut child = std::process::Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert!(credentials(pid).unwrap().is_none());
    assert!(identity(pid).unwrap().is_none());
    assert_eq!(stat_flags(pid).unwrap(), None);
}

/// The caller's ancestors (never signalled by `stop`): its parent first,
/// then each one's parent as `/proc` gives it, up to the first process of
/// the pid namespace (pid 1), no pid twice, never 0.
#[test]
fn own_ancestors_run_from_the_parent_up_to_pid_1() {
    let chain = own_ancestors();
    assert_eq!(chain.first(), Some(&std::os::unix::process::parent_id()));
    assert_eq!(chain.last(), Some(&1), "{chain:?}");
    assert!(!chain.contains(&0), "{chain:?}");
    for pair in chain.windows(2) {
        let c = credentials(pair[0]).unwrap().unwrap();
        assert_eq!(c.ppid, pair[1], "{chain:?}");
    }
    let mut unique = chain.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), chain.len(), "{chain:?}");
}

/// The descriptors `credentials` and `zombie_leader_has_threads` open on
/// `/proc/<pid>/status` (for as long as one read) are close-on-exec: a
/// program another thread starts meanwhile inherits none. One thread
/// reads in a loop, so the descriptor is open much of the time; each of
/// up to 40 programs started lists what it inherited. (The correct code
/// cannot fail this; a descriptor without close-on-exec is caught within
/// a few programs.)
#[test]
fn descriptors_of_status_reads_never_leak_into_a_program_started_meanwhile() {
    let mut child = sleeper();
    let pid = child.id();
    let status = format!("/proc/{pid}/status");
    let leaked = crate::sidecar_markers::leak_tests::inherited_while(
        || {
            let _ = credentials(pid);
            let _ = zombie_leader_has_threads(pid);
        },
        |fds| fds.contains(&status),
    );
    assert_eq!(leaked, None);
    let _ = child.kill();
    let _ = child.wait();
}

/// The verdicts' predicates: stale only on proof of a stop; the opt-out
/// of `stop` only where the check could not be made; a scan's second
/// look only for its own reason.
#[test]
fn the_verdicts_predicates_say_what_each_verdict_allows() {
    let ids = [
        (Identity::Verified, false),
        (Identity::NotRecorded, true),
        (Identity::Unchecked("x"), true),
        (Identity::Foreign("x"), false),
    ];
    for (id, may) in ids {
        assert_eq!(id.opt_out_may_override(), may, "{id:?}");
        assert!(!Liveness::Alive(id).is_stale(), "{id:?}");
    }
    for l in [
        Liveness::Gone,
        Liveness::Zombie,
        Liveness::Reused,
        Liveness::OtherBoot,
    ] {
        assert!(l.is_stale(), "{l:?}");
        assert!(!is_later(l), "{l:?}");
    }
    assert!(!Liveness::Unverifiable(LATER).is_stale());
    assert!(is_later(Liveness::Unverifiable(LATER)));
    assert!(!is_later(Liveness::Unverifiable("boot_id is not a UUID")));
    assert!(!is_later(Liveness::Alive(Identity::Verified)));
}

/// A recorded boot id proves nothing when it is not a UUID; a UUID, this
/// boot's or another's, is a proof (of the same boot or another one); no
/// boot id recorded is no claim either way.
#[test]
fn a_boot_id_is_unproved_only_when_it_is_not_a_uuid() {
    let (pid, ticks, boot) = me();
    let with = |b: Option<&str>| meta_for(pid, b.map(str::to_owned), Some(ticks));
    assert!(is_boot_unproved(&with(Some("another-boot"))));
    assert!(!is_boot_unproved(&with(Some(&boot))));
    assert!(!is_boot_unproved(&with(Some(
        "00000000-0000-0000-0000-000000000001"
    ))));
    assert!(!is_boot_unproved(&with(None)));
}
