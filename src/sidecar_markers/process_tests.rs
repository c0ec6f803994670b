//! Unit tests of `process.rs`: parsing `/proc` files and boot ids, and
//! the liveness of this very process under every identity the marker
//! might record.

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

fn meta_for(pid: u32, boot: Option<String>, ticks: Option<u64>) -> MetadataFile {
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
    let mut m = meta_for(me, rec.boot_id, Some(rec.start_ticks));
    m.pid_ns_inode = Some(1);
    assert!(matches!(liveness(&m), Liveness::Unverifiable(_)));
}
