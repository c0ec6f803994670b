//! The writer: markers appear atomically, record process identity, and are
//! never overwritten; remove_marker removes exactly one marker.

use std::os::unix::fs::{PermissionsExt, symlink};

use crate::common::*;
use firma_stack::sidecar_markers::{MetadataFile, StackError, create_marker, get, remove_marker};

#[test]
fn created_marker_is_private_complete_and_records_identity() {
    let rt = runtime();
    let me = std::process::id();
    let m = MetadataFile {
        agent_id: "agent-7".into(),
        session_id: "session-7".into(),
        ..meta("w-1", me)
    };
    let dir = create_marker(rt.path(), &m).unwrap();
    assert_eq!(dir, rt.path().join("run/w-1"));
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    assert_eq!(
        std::fs::read_to_string(dir.join("sidecar.pid")).unwrap(),
        format!("{me}\n")
    );
    let text = std::fs::read_to_string(dir.join("metadata.toml")).unwrap();
    let parsed: MetadataFile = toml::from_str(&text).unwrap();
    assert_eq!(parsed.boot_id, Some(boot_id()));
    assert_eq!(parsed.pid_start_ticks, Some(start_ticks(me)));
    // Only the marker is left in run/: no temp names.
    assert_eq!(run_names(rt.path()), ["w-1"]);
    // The reader sees exactly what was written.
    let e = get(rt.path(), "w-1").unwrap().unwrap();
    assert_eq!(
        (e.agent_id.as_str(), e.session_id.as_str(), e.pid),
        ("agent-7", "session-7", me)
    );
    assert!(e.uptime_secs.is_some());
}

#[test]
fn existing_marker_is_never_overwritten() {
    let rt = runtime();
    let me = std::process::id();
    create_marker(rt.path(), &meta("dup", me)).unwrap();
    let before = std::fs::read(rt.path().join("run/dup/metadata.toml")).unwrap();
    let mut other = meta("dup", me);
    other.agent_id = "intruder".into();
    let err = create_marker(rt.path(), &other).unwrap_err();
    assert!(
        matches!(&err, StackError::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists),
        "{err:?}"
    );
    assert_eq!(
        std::fs::read(rt.path().join("run/dup/metadata.toml")).unwrap(),
        before
    );
    // Even an empty directory squatting the name is not replaced.
    std::fs::create_dir(rt.path().join("run/squat")).unwrap();
    assert!(create_marker(rt.path(), &meta("squat", me)).is_err());
    assert_eq!(run_names(rt.path()), ["dup", "squat"]);
}

#[test]
fn writer_rejects_bad_input_and_leaves_nothing() {
    let rt = runtime();
    assert!(matches!(
        create_marker(rt.path(), &meta("../escape", 1)),
        Err(StackError::InvalidSandboxId { .. })
    ));
    assert!(matches!(
        create_marker(rt.path(), &meta("zero", 0)),
        Err(StackError::InvalidArgument { .. })
    ));
    let mut bad_listen = meta("listen", std::process::id());
    bad_listen.listen = Some("example.com:80".into());
    let err = create_marker(rt.path(), &bad_listen).unwrap_err();
    assert!(err.to_string().contains("names are not resolved"), "{err}");
    let err = create_marker(rt.path(), &meta("dead", dead_pid())).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ESRCH), "{err}");
    assert!(run_names(rt.path()).is_empty());
}

#[test]
fn remove_marker_removes_one_marker_and_never_a_symlink() {
    let rt = runtime();
    let me = std::process::id();
    create_marker(rt.path(), &meta("mine", me)).unwrap();
    create_marker(rt.path(), &meta("theirs", me)).unwrap();
    assert!(remove_marker(rt.path(), "mine").unwrap());
    assert!(!remove_marker(rt.path(), "mine").unwrap());
    assert_eq!(run_names(rt.path()), ["theirs"]);
    let outside = runtime();
    symlink(outside.path(), rt.path().join("run/link")).unwrap();
    assert!(matches!(
        remove_marker(rt.path(), "link"),
        Err(StackError::MarkerParse { .. })
    ));
    assert!(outside.path().exists());
    assert!(!remove_marker(runtime().path(), "none").unwrap());
}

#[test]
fn leftover_temp_directory_does_not_block_writers_or_readers() {
    let rt = runtime();
    let me = std::process::id();
    // A writer killed between mkdir and rename leaves a .tmp- directory,
    // possibly under the very name our process would pick next.
    for n in 0..4 {
        let d = rt.path().join(format!("run/.tmp-{me}-{n}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("metadata.toml"), "half").unwrap();
    }
    create_marker(rt.path(), &meta("after-crash", me)).unwrap();
    assert!(get(rt.path(), "after-crash").unwrap().is_some());
}

#[test]
fn temp_directory_of_a_dead_writer_is_collected_but_a_live_writers_is_not() {
    let rt = runtime();
    let dead = dead_pid();
    let me = std::process::id();
    let dead_tmp = rt.path().join(format!("run/.tmp-{dead}-0"));
    let live_tmp = rt.path().join(format!("run/.tmp-{me}-999"));
    for d in [&dead_tmp, &live_tmp] {
        std::fs::create_dir_all(d).unwrap();
        std::fs::write(d.join("metadata.toml"), "half").unwrap();
    }
    assert!(
        firma_stack::sidecar_markers::gc_stale(rt.path())
            .unwrap()
            .is_empty()
    );
    assert!(!dead_tmp.exists());
    assert!(
        live_tmp.exists(),
        "removed the temp dir of a writer still running"
    );
}
