//! Unit tests of `read.rs`: the size cap, what each odd `metadata.toml` or
//! marker entry is reported as, and `sidecar.pid`'s age.

use super::*;
use crate::sidecar_markers::error::ErrorCode;
use std::fs::File;
use std::os::unix::fs::symlink;
use std::time::UNIX_EPOCH;

/// A `run/` directory in a fresh temporary directory, open.
struct Run {
    _tmp: tempfile::TempDir,
    path: PathBuf,
    fd: OwnedFd,
}

impl Run {
    fn new() -> Run {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("run");
        std::fs::create_dir(&path).unwrap();
        let fd = sys::open(&path, sys::DIR_FLAGS).unwrap();
        Run {
            _tmp: tmp,
            path,
            fd,
        }
    }

    /// The marker `id` holding `metadata` as its `metadata.toml`.
    fn marker(&self, id: &str, metadata: &[u8]) -> PathBuf {
        let dir = self.path.join(id);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(dir.join("metadata.toml"), metadata).unwrap();
        dir
    }

    /// Reads the entry `name` of this `run/`.
    fn read(&self, name: &str) -> std::result::Result<Marker, Broken> {
        let c = CString::new(name).unwrap();
        let loc = Loc::Entry {
            run: self.fd.as_fd(),
            name: &c,
        };
        read_marker(loc, self.path.join(name), &mut sys::MarkerFds::default())
    }

    /// `sidecar.pid`'s age in the marker `id`, at `now`.
    fn uptime(&self, id: &str, now: SystemTime) -> Result<Option<u64>> {
        let c = CString::new(id).unwrap();
        let loc = Loc::Entry {
            run: self.fd.as_fd(),
            name: &c,
        };
        uptime_secs(
            loc,
            &self.path.join(id),
            now,
            &mut sys::MarkerFds::default(),
        )
    }
}

/// `b`'s error says `what`.
fn assert_says(b: &Broken, what: &str) {
    let msg = b.error.to_string();
    assert!(msg.contains(what), "{msg} does not say {what:?}");
}

fn seed(id: &str) -> String {
    toml::to_string(&MetadataFile::seed_for_test(id, 42)).unwrap()
}

/// The marker's `metadata.toml` padded with a comment to `len` bytes.
fn padded(id: &str, len: usize) -> Vec<u8> {
    let mut text = seed(id).into_bytes();
    text.extend_from_slice(b"#");
    text.resize(len - 1, b'x');
    text.push(b'\n');
    text
}

#[test]
fn metadata_of_exactly_the_cap_is_read_one_byte_more_is_not() {
    let run = Run::new();
    run.marker("at", &padded("at", MAX_METADATA_BYTES));
    run.marker("over", &padded("over", MAX_METADATA_BYTES + 1));
    let m = run.read("at").unwrap_or_else(|b| panic!("{}", b.error));
    assert_eq!(m.meta.sandbox_id, "at");
    let b = run.read("over").err().expect("one byte over the cap");
    assert_eq!(b.reason, Reason::ParseError);
    assert_says(&b, "larger than 65536 bytes");
}

/// A `metadata.toml` that is a symlink is named as such (the file, not its
/// marker); a marker entry that is a symlink is named as the directory.
#[test]
fn a_symlink_is_named_as_what_it_stands_for() {
    let run = Run::new();
    let real = run.marker("real", seed("real").as_bytes());
    let dir = run.path.join("linked-file");
    std::fs::create_dir(&dir).unwrap();
    symlink(real.join("metadata.toml"), dir.join("metadata.toml")).unwrap();
    symlink(&real, run.path.join("linked-dir")).unwrap();
    for (name, path, says) in [
        (
            "linked-file",
            dir.join("metadata.toml"),
            "metadata.toml is a symlink",
        ),
        (
            "linked-dir",
            run.path.join("linked-dir"),
            "marker directory is a symlink",
        ),
    ] {
        let b = run.read(name).err().expect("a symlink is not followed");
        assert_eq!(b.reason, Reason::Symlink, "{name}");
        assert_eq!(b.error.path(), Some(path.as_path()), "{name}");
        assert_says(&b, says);
    }
}

/// A marker entry that is a file is not a directory; a `metadata.toml`
/// that is a socket (which `open` refuses with `ENXIO`) is malformed like
/// a FIFO, not an I/O error.
#[test]
fn a_file_entry_and_a_socket_metadata_are_malformed_markers() {
    let run = Run::new();
    std::fs::write(run.path.join("file"), "x").unwrap();
    let b = run.read("file").err().expect("a file is no marker");
    assert_eq!(b.reason, Reason::NotADirectory, "{}", b.error);
    assert_eq!(b.error.code(), ErrorCode::MarkerParse);
    let dir = run.path.join("sock");
    std::fs::create_dir(&dir).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(dir.join("metadata.toml")).unwrap();
    let b = run.read("sock").err().expect("a socket is no metadata");
    assert_eq!(b.reason, Reason::ParseError, "{}", b.error);
    assert_says(&b, "not a regular file");
}

/// `sidecar.pid` that is not a regular file has no age: a directory, or a
/// FIFO (looked at, never opened for reading: that would wait for a
/// writer).
#[test]
fn a_sidecar_pid_that_is_not_a_file_has_no_age() {
    let run = Run::new();
    let dir = run.marker("m", seed("m").as_bytes());
    // An hour ahead: a file written after `now` was taken may carry a
    // later mtime, which would have no age either.
    let now = SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(run.uptime("m", now).unwrap(), None, "no sidecar.pid");
    std::fs::write(dir.join("sidecar.pid"), "42\n").unwrap();
    assert!(run.uptime("m", now).unwrap().is_some(), "a regular file");
    std::fs::remove_file(dir.join("sidecar.pid")).unwrap();
    std::fs::create_dir(dir.join("sidecar.pid")).unwrap();
    assert_eq!(run.uptime("m", now).unwrap(), None, "a directory");
    std::fs::remove_dir(dir.join("sidecar.pid")).unwrap();
    mkfifo(&dir.join("sidecar.pid"));
    let got = never_waits("the age of a FIFO", move || {
        run.uptime("m", now).map_err(|e| e.to_string())
    });
    assert_eq!(got.unwrap(), None, "a FIFO");
}

fn mkfifo(path: &Path) {
    let made = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(made.success(), "mkfifo {path:?}");
}

/// `f()`, which must not block: a generous bound, then the test fails
/// (the thread left blocked).
fn never_waits<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(f()));
    rx.recv_timeout(Duration::from_secs(10))
        .unwrap_or_else(|_| panic!("{what} waited"))
}

/// A `metadata.toml` that is a FIFO is opened without waiting for a
/// writer (`O_NONBLOCK`) and is a parse error, not a regular file.
#[test]
fn a_fifo_metadata_is_malformed_without_waiting() {
    let run = Run::new();
    let dir = run.path.join("fifo");
    std::fs::create_dir(&dir).unwrap();
    mkfifo(&dir.join("metadata.toml"));
    let got = never_waits("reading a FIFO metadata.toml", move || {
        run.read("fifo")
            .err()
            .map(|b| (b.reason, b.error.to_string()))
    });
    let (reason, msg) = got.expect("a FIFO is no metadata");
    assert_eq!(reason, Reason::ParseError, "{msg}");
    assert!(msg.contains("not a regular file"), "{msg}");
}

/// The age is whole seconds from the mtime (nanoseconds included) to
/// `now`; an mtime before 1970 or after `now` gives none.
#[test]
fn an_age_counts_from_the_mtime() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("sidecar.pid");
    let f = File::create(&file).unwrap();
    let now = UNIX_EPOCH + Duration::from_secs(1000);
    let age = |mtime: SystemTime| {
        f.set_modified(mtime).unwrap();
        uptime(&sys::fstat(f.as_fd()).unwrap(), now)
    };
    assert_eq!(age(UNIX_EPOCH + Duration::from_millis(900_500)), Some(99));
    assert_eq!(age(UNIX_EPOCH + Duration::from_secs(900)), Some(100));
    assert_eq!(age(UNIX_EPOCH), Some(1000));
    assert_eq!(age(UNIX_EPOCH - Duration::from_secs(1)), None);
    assert_eq!(age(now + Duration::from_secs(1)), None);
}

/// No marker directory at all is no marker (`None`); a marker directory
/// without `metadata.toml` is a broken marker, an error.
#[test]
fn with_marker_tells_an_absent_marker_from_a_broken_one() {
    let run = Run::new();
    let rt = run.path.parent().unwrap();
    let found = |id: &str| with_marker(rt, id, None, |_, _, m, _| m.meta.sandbox_id);
    assert_eq!(found("absent").unwrap(), None);
    std::fs::create_dir(run.path.join("empty")).unwrap();
    let e = found("empty").expect_err("a marker without metadata.toml");
    assert!(e.is_not_found(), "{e}");
    run.marker("here", seed("here").as_bytes());
    assert_eq!(found("here").unwrap().as_deref(), Some("here"));
}

/// The descriptors a read holds for its marker (`metadata.toml`,
/// `sidecar.pid`) never leak into a program another thread starts.
#[test]
fn a_markers_descriptors_never_leak_into_a_program_started_meanwhile() {
    let run = Run::new();
    let dir = run.marker("leak", seed("leak").as_bytes());
    std::fs::write(dir.join("sidecar.pid"), "42\n").unwrap();
    let name = CString::new("leak").unwrap();
    let files = [dir.join("metadata.toml"), dir.join("sidecar.pid")];
    let leaked = crate::sidecar_markers::leak_tests::inherited_while(
        || {
            let loc = Loc::Entry {
                run: run.fd.as_fd(),
                name: &name,
            };
            // Each kept while the other is read.
            let mut fds = sys::MarkerFds::default();
            let _ = uptime_secs(loc, &dir, SystemTime::now(), &mut fds);
            let _ = read_marker(loc, dir.clone(), &mut fds);
            let _ = uptime_secs(loc, &dir, SystemTime::now(), &mut fds);
        },
        |listing| {
            files
                .iter()
                .any(|f| listing.contains(&format!("-> {}\n", f.display())))
        },
    );
    assert_eq!(leaked, None);
}
