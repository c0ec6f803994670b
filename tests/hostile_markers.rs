//! DESIGN §4.1–4.3 and §4.6: never delete what is not provably stale, never
//! follow a symlink, never block, and validate caller-supplied ids.

mod common;

use std::ffi::CString;
use std::os::unix::fs::symlink;
use std::time::{Duration, Instant};

use common::*;
use firma_stack::sidecar_markers::{
    MAX_METADATA_BYTES, ProbeOptions, StackError, gc_stale, get, list, list_with, probe_entry,
    validate_sandbox_id,
};

fn mkfifo(path: &std::path::Path) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
}

fn assert_parse_error(r: Result<impl std::fmt::Debug, StackError>, needle: &str) {
    match r {
        Err(StackError::MarkerParse { reason, path }) => {
            assert!(
                reason.contains(needle),
                "reason {reason:?} lacks {needle:?}"
            );
            assert!(path.is_absolute());
        }
        other => panic!("expected a parse error about {needle:?}, got {other:?}"),
    }
}

#[test]
fn corrupt_and_mismatched_markers_are_skipped_and_kept() {
    let rt = runtime();
    let dead = dead_pid();
    let _live = Sidecar::start(rt.path(), "live", &[]);
    write_marker(rt.path(), "garbage", "this is { not toml");
    write_marker(
        rt.path(),
        "missing-key",
        "sandbox_id = \"missing-key\"\npid = 5\n",
    );
    write_marker(rt.path(), "binary", "\u{0}\u{1}\u{2}");
    std::fs::write(
        rt.path().join("run/binary/metadata.toml"),
        [0xff, 0xfe, 0x00],
    )
    .unwrap();
    // A stale-looking marker whose directory name differs from its id.
    write_marker(rt.path(), "renamed", &metadata("original", dead.into(), ""));
    // A directory without metadata.toml (a writer mid-way, or debris).
    std::fs::create_dir_all(rt.path().join("run/empty")).unwrap();

    let ids: Vec<_> = list(rt.path())
        .unwrap()
        .into_iter()
        .map(|e| e.sandbox_id)
        .collect();
    assert_eq!(ids, ["live"]);
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert_eq!(
        run_names(rt.path()),
        [
            "binary",
            "empty",
            "garbage",
            "live",
            "missing-key",
            "renamed"
        ]
    );

    assert_parse_error(get(rt.path(), "garbage"), "invalid metadata.toml");
    assert_parse_error(get(rt.path(), "missing-key"), "missing field");
    assert_parse_error(get(rt.path(), "binary"), "not UTF-8");
    match get(rt.path(), "renamed") {
        Err(e @ StackError::IdentityMismatch { .. }) => {
            assert_eq!(e.code(), "identity_mismatch");
            let msg = e.to_string();
            assert!(msg.contains("original") && msg.contains("renamed"), "{msg}");
        }
        other => panic!("expected identity mismatch, got {other:?}"),
    }
    match get(rt.path(), "empty") {
        Err(e @ StackError::Io { .. }) => {
            assert_eq!(e.errno(), Some(libc::ENOENT));
            assert!(e.to_string().contains("run/empty/metadata.toml"), "{e}");
        }
        other => panic!("expected an I/O error, got {other:?}"),
    }
}

#[test]
fn unknown_keys_are_ignored() {
    let rt = runtime();
    write_marker(
        rt.path(),
        "future",
        &metadata(
            "future",
            dead_pid().into(),
            "new_key = 1\n[table]\nx = \"y\"\n",
        ),
    );
    assert!(get(rt.path(), "future").unwrap().is_some());
}

#[test]
fn symlinked_entry_in_run_is_neither_listed_nor_removed() {
    let rt = runtime();
    let outside = runtime();
    // A perfectly stale marker, but outside run/, reached through a symlink.
    let target = write_stale(outside.path(), "victim", dead_pid());
    std::fs::create_dir_all(rt.path().join("run")).unwrap();
    symlink(&target, rt.path().join("run/victim")).unwrap();
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(
        target.join("metadata.toml").exists(),
        "followed a symlink and deleted outside run/"
    );
    assert!(
        std::fs::symlink_metadata(rt.path().join("run/victim"))
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_parse_error(get(rt.path(), "victim"), "symlink");
}

#[test]
fn symlinked_metadata_is_a_parse_error_and_kept() {
    let rt = runtime();
    let outside = runtime();
    let real = outside.path().join("metadata.toml");
    std::fs::write(&real, metadata("linked", dead_pid().into(), "")).unwrap();
    let dir = rt.path().join("run/linked");
    std::fs::create_dir_all(&dir).unwrap();
    symlink(&real, dir.join("metadata.toml")).unwrap();
    assert_parse_error(get(rt.path(), "linked"), "symlink");
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert!(dir.exists() && real.exists());
}

#[test]
fn run_itself_a_symlink_is_refused() {
    let rt = runtime();
    let outside = runtime();
    write_stale(outside.path(), "victim", dead_pid());
    symlink(outside.path().join("run"), rt.path().join("run")).unwrap();
    let err = gc_stale(rt.path()).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ELOOP), "{err}");
    assert!(list(rt.path()).is_err());
    assert!(outside.path().join("run/victim/metadata.toml").exists());
}

#[test]
fn fifo_and_device_named_metadata_never_block() {
    let rt = runtime();
    let fifo_dir = rt.path().join("run/fifo");
    std::fs::create_dir_all(&fifo_dir).unwrap();
    mkfifo(&fifo_dir.join("metadata.toml"));
    let t = Instant::now();
    assert_parse_error(get(rt.path(), "fifo"), "not a regular file");
    assert!(list(rt.path()).unwrap().is_empty());
    assert_parse_error(probe_entry(&fifo_dir), "not a regular file");
    assert!(t.elapsed() < Duration::from_secs(10));
    assert!(fifo_dir.join("metadata.toml").exists());

    if is_root() {
        let dev_dir = rt.path().join("run/device");
        std::fs::create_dir_all(&dev_dir).unwrap();
        let c = CString::new(dev_dir.join("metadata.toml").as_os_str().as_encoded_bytes()).unwrap();
        // A character device like /dev/zero (1, 5): reading it never ends.
        // SAFETY: valid path; mknod of a char device as root.
        assert_eq!(
            unsafe { libc::mknod(c.as_ptr(), libc::S_IFCHR | 0o644, libc::makedev(1, 5)) },
            0
        );
        assert_parse_error(get(rt.path(), "device"), "not a regular file");
    }
}

#[test]
fn huge_metadata_is_a_parse_error_read_bounded() {
    let rt = runtime();
    let dir = write_marker(rt.path(), "huge", &metadata("huge", dead_pid().into(), ""));
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(dir.join("metadata.toml"))
        .unwrap();
    // A sparse gigabyte: reading it whole would be slow and large.
    f.set_len(1 << 30).unwrap();
    assert_parse_error(get(rt.path(), "huge"), "larger than");
    assert!(gc_stale(rt.path()).unwrap().is_empty());

    // Exactly at the cap is still read.
    let mut text = metadata("at-cap", dead_pid().into(), "");
    text.push('#');
    while text.len() < MAX_METADATA_BYTES - 1 {
        text.push('x');
    }
    text.push('\n');
    assert_eq!(text.len(), MAX_METADATA_BYTES);
    write_marker(rt.path(), "at-cap", &text);
    assert!(get(rt.path(), "at-cap").unwrap().is_some());
}

#[test]
fn nothing_outside_run_is_touched() {
    let rt = runtime();
    let dead = dead_pid();
    // Stale-looking metadata directly in the runtime dir and a sibling dir.
    std::fs::write(
        rt.path().join("metadata.toml"),
        metadata("x", dead.into(), ""),
    )
    .unwrap();
    let sib = rt.path().join("other/stale");
    std::fs::create_dir_all(&sib).unwrap();
    std::fs::write(
        sib.join("metadata.toml"),
        metadata("stale", dead.into(), ""),
    )
    .unwrap();
    write_stale(rt.path(), "stale", dead);
    assert_eq!(gc_stale(rt.path()).unwrap(), ["stale"]);
    assert!(rt.path().join("metadata.toml").exists());
    assert!(sib.join("metadata.toml").exists());
}

#[test]
fn files_and_odd_names_in_run_are_ignored() {
    let rt = runtime();
    let dead = dead_pid();
    std::fs::create_dir_all(rt.path().join("run")).unwrap();
    std::fs::write(rt.path().join("run/plain-file"), "x").unwrap();
    mkfifo(&rt.path().join("run/a-fifo"));
    // Valid markers under names a caller could never ask for.
    write_marker(
        rt.path(),
        "has space",
        &metadata("has space", dead.into(), ""),
    );
    write_marker(rt.path(), ".hidden", &metadata(".hidden", dead.into(), ""));
    // A marker being written by a live writer (this process).
    let tmp = format!(".tmp-{}-77", std::process::id());
    write_marker(rt.path(), &tmp, &metadata(&tmp, dead.into(), ""));
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert_eq!(
        run_names(rt.path()),
        [".hidden", tmp.as_str(), "a-fifo", "has space", "plain-file"]
    );
}

#[test]
fn interrupted_collection_is_finished_later() {
    let rt = runtime();
    // What a collector killed between rename and removal leaves behind.
    let left = rt.path().join("run/.gc-999999-0");
    std::fs::create_dir_all(left.join("nested")).unwrap();
    std::fs::write(left.join("metadata.toml"), "x").unwrap();
    std::fs::write(left.join("nested/file"), "x").unwrap();
    symlink("/etc/passwd", left.join("link")).unwrap();
    assert!(
        gc_stale(rt.path()).unwrap().is_empty(),
        "leftovers are not reported as ids"
    );
    assert!(!left.exists());
    assert!(std::path::Path::new("/etc/passwd").exists());
}

#[test]
fn missing_run_is_empty_and_unreadable_run_is_an_error() {
    let rt = runtime();
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
    assert_eq!(get(rt.path(), "anything").unwrap(), None);
    assert!(list(rt.path().join("does/not/exist")).unwrap().is_empty());
    // run/ is a regular file: not enumerable, a clear I/O error.
    std::fs::write(rt.path().join("run"), "").unwrap();
    let err = list(rt.path()).unwrap_err();
    assert_eq!(err.code(), "io");
    assert_eq!(err.errno(), Some(libc::ENOTDIR));
    assert!(err.to_string().contains("/run"), "{err}");
}

#[test]
fn invalid_sandbox_ids_are_errors_never_paths() {
    let rt = runtime();
    write_stale(rt.path(), "ok", dead_pid());
    let long = "a".repeat(256);
    for bad in [
        "",
        ".",
        "..",
        "../ok",
        "a/b",
        "/etc",
        ".hidden",
        "sp ace",
        "tab\t",
        "nul\0",
        "é",
        long.as_str(),
    ] {
        let err = get(rt.path(), bad).unwrap_err();
        assert!(
            matches!(err, StackError::InvalidSandboxId { .. }),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.code(), "invalid_argument");
        assert!(validate_sandbox_id(bad).is_err());
    }
    for good in ["a", "A-Z_0.9", "x.", &"a".repeat(255)] {
        validate_sandbox_id(good).unwrap();
    }
}

#[test]
fn probe_entry_reads_any_marker_dir_and_checks_identity() {
    let rt = runtime();
    let sc = Sidecar::start(rt.path(), "probe-me", &[]);
    let e = probe_entry(&sc.marker).unwrap();
    assert_eq!(e.sandbox_id, "probe-me");
    // Copy the marker elsewhere under another name: identity mismatch.
    let other = rt.path().join("copy");
    std::fs::create_dir(&other).unwrap();
    std::fs::copy(sc.marker.join("metadata.toml"), other.join("metadata.toml")).unwrap();
    assert!(matches!(
        probe_entry(&other),
        Err(StackError::IdentityMismatch { .. })
    ));
    assert!(probe_entry(rt.path().join("nope")).unwrap_err().errno() == Some(libc::ENOENT));
    let _ = list_with(rt.path(), &ProbeOptions::default()).unwrap();
}

#[test]
fn empty_paths_are_invalid_arguments_not_the_current_directory() {
    use firma_stack::sidecar_markers::{MetadataFile, create_marker, remove_marker};
    for err in [
        list("").unwrap_err(),
        gc_stale("").unwrap_err(),
        get("", "id").unwrap_err(),
        probe_entry("").unwrap_err(),
        remove_marker("", "id").unwrap_err(),
        create_marker(
            "",
            &MetadataFile {
                sandbox_id: "id".into(),
                agent_id: String::new(),
                session_id: String::new(),
                authority_url: String::new(),
                policy_bundle_version: String::new(),
                pid: std::process::id(),
                started_at: String::new(),
                listen: None,
                boot_id: None,
                pid_start_ticks: None,
                pid_ns_inode: None,
                boottime_offset_ns: None,
            },
        )
        .unwrap_err(),
    ] {
        assert_eq!(err.code(), "invalid_argument", "{err}");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
