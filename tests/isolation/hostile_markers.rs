//! docs/design.md, "Invariants" (1–3 and 6) through the Rust API only: what each error says
//! and carries, and arguments no other surface can pass. Which markers are
//! skipped, kept, refused or never followed (symlinks, FIFOs, huge or corrupt
//! files, odd names, `run/` itself a symlink or a file, ids a caller must not
//! pass) is checked on every surface by the conformance suite
//! (tests/conformance).

use std::ffi::CString;
use std::os::unix::fs::symlink;

use crate::common::*;
use firma_stack::sidecar_markers::{
    StackError, gc_stale, get, list, probe_entry, validate_sandbox_id,
};

/// Each malformed marker is a parse error whose reason says what is wrong,
/// with the absolute path of what was read.
#[test]
fn parse_errors_say_what_is_wrong() {
    let rt = runtime();
    let dead = dead_pid();
    write_marker(rt.path(), "garbage", "this is { not toml");
    write_marker(
        rt.path(),
        "missing-key",
        "sandbox_id = \"missing-key\"\npid = 5\n",
    );
    let binary = write_marker(rt.path(), "binary", "");
    std::fs::write(binary.join("metadata.toml"), [0xff, 0xfe, 0x00]).unwrap();
    let linked = write_marker(rt.path(), "linked", "");
    std::fs::remove_file(linked.join("metadata.toml")).unwrap();
    let real = rt.path().join("real.toml");
    std::fs::write(&real, metadata("linked", dead.into(), "")).unwrap();
    symlink(&real, linked.join("metadata.toml")).unwrap();
    let huge = write_marker(rt.path(), "huge", &metadata("huge", dead.into(), ""));
    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(huge.join("metadata.toml"))
        .unwrap();
    f.set_len(1 << 30).unwrap();
    let fifo = write_marker(rt.path(), "fifo", "");
    std::fs::remove_file(fifo.join("metadata.toml")).unwrap();
    mknod(&fifo.join("metadata.toml"), libc::S_IFIFO, 0);
    write_marker(rt.path(), "bad-pid", &metadata("bad-pid", 0, ""));
    let mut cases = vec![
        ("garbage", "invalid metadata.toml"),
        ("missing-key", "missing field"),
        ("binary", "not UTF-8"),
        ("linked", "symlink"),
        ("huge", "larger than"),
        ("fifo", "not a regular file"),
        ("bad-pid", "pid"),
    ];
    if is_root() {
        // A character device like /dev/zero (1, 5): reading it never ends.
        let dev = write_marker(rt.path(), "device", "");
        std::fs::remove_file(dev.join("metadata.toml")).unwrap();
        mknod(
            &dev.join("metadata.toml"),
            libc::S_IFCHR,
            libc::makedev(1, 5),
        );
        cases.push(("device", "not a regular file"));
    } else {
        eprintln!("not root: the character-device case is not run");
    }
    for (id, needle) in cases {
        match get(rt.path(), id) {
            Err(StackError::MarkerParse { reason, path }) => {
                assert!(
                    reason.contains(needle),
                    "{id}: reason {reason:?} lacks {needle:?}"
                );
                assert!(
                    path.is_absolute() && path.starts_with(rt.path()),
                    "{id}: {path:?}"
                );
            }
            other => panic!("{id}: expected a parse error about {needle:?}, got {other:?}"),
        }
    }
    assert!(list(rt.path()).unwrap().is_empty());
    assert!(gc_stale(rt.path()).unwrap().is_empty());
}

#[test]
fn identity_mismatch_and_missing_metadata_name_both_sides() {
    let rt = runtime();
    write_marker(
        rt.path(),
        "renamed",
        &metadata("original", dead_pid().into(), ""),
    );
    std::fs::create_dir_all(rt.path().join("run/empty")).unwrap();
    let e = get(rt.path(), "renamed").unwrap_err();
    assert!(matches!(e, StackError::IdentityMismatch { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("original") && msg.contains("renamed"), "{msg}");
    let e = get(rt.path(), "empty").unwrap_err();
    assert!(e.to_string().contains("run/empty/metadata.toml"), "{e}");
    let e = probe_entry(rt.path().join("nope")).unwrap_err();
    assert!(e.to_string().contains("nope"), "{e}");
}

fn mknod(path: &std::path::Path, kind: libc::mode_t, dev: libc::dev_t) {
    let c = CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: valid NUL-terminated path.
    assert_eq!(
        unsafe { libc::mknod(c.as_ptr(), kind | 0o644, dev) },
        0,
        "mknod {path:?}"
    );
}

/// The grammar itself; the ids every surface refuses are a conformance
/// scenario. A NUL byte can only be passed from Rust (and is refused).
#[test]
fn sandbox_id_grammar() {
    let long = "a".repeat(256);
    for bad in [
        "",
        ".",
        "..",
        "../ok",
        "a/b",
        ".hidden",
        "sp ace",
        "nul\0",
        "é",
        long.as_str(),
    ] {
        let err = validate_sandbox_id(bad).unwrap_err();
        assert!(
            matches!(err, StackError::InvalidSandboxId { .. }),
            "{bad:?}: {err:?}"
        );
        assert_eq!(err.code(), "invalid_argument");
    }
    let err = get(runtime().path(), "nul\0").unwrap_err();
    assert!(
        matches!(err, StackError::InvalidSandboxId { .. }),
        "{err:?}"
    );
    for good in ["a", "A-Z_0.9", "x.", &"a".repeat(255)] {
        validate_sandbox_id(good).unwrap();
    }
}

#[test]
fn empty_paths_are_invalid_arguments_not_the_current_directory() {
    use firma_stack::sidecar_markers::{create_marker, remove_marker};
    for err in [
        list("").unwrap_err(),
        gc_stale("").unwrap_err(),
        get("", "id").unwrap_err(),
        probe_entry("").unwrap_err(),
        remove_marker("", "id").unwrap_err(),
        create_marker("", &meta("id", std::process::id())).unwrap_err(),
    ] {
        assert_eq!(err.code(), "invalid_argument", "{err}");
        assert!(err.to_string().contains("is empty"), "{err}");
    }
}
