//! docs/design.md, "Trust", "The judged marker stays the judged marker":
//! between judging a marker and removing it, the collector proves it holds
//! the very `metadata.toml` it judged — same inode *and* same bytes — so a
//! sidecar restarted under the same id keeps its new marker even when that
//! marker's `metadata.toml` gets the freed inode number (ext4 hands it out
//! again at once). Real fixtures: an ext4 image on a loop device, a real
//! sidecar process, the library's own writer as the launcher.
//! (The collection side — `take` given a stale judgement after the marker
//! was re-created on the same inode — is pinned by the unit tests in
//! `src/sidecar_markers/gc_tests.rs`.)

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::common::ext4::Ext4;
use crate::common::*;
use firma_stack::sidecar_markers::{StopOptions, create_marker, list, stop};

fn inode(path: &Path) -> u64 {
    std::fs::symlink_metadata(path).unwrap().ino()
}

/// `stop` races a restart: the sidecar, on SIGTERM, removes its own marker
/// (and its log file) and waits; the launcher then writes a replacement
/// under the same id for a new, live process; only then does the old
/// sidecar exit. `stop` sees its process exit and collects — and must leave
/// the replacement alone, unreported.
///
/// The replacement's `metadata.toml` lands on the judged one's inode number
/// by ext4's rule (the lowest free inode of the group): the log, made before
/// the marker, frees the number the new marker directory takes (the old
/// directory's stays in use while the test holds it open), and the new
/// `metadata.toml` takes the old one's. The test checks the number was
/// reused and fails loudly when it was not.
#[test]
fn a_sidecar_restarted_during_stop_keeps_its_new_marker() {
    let fs = Ext4::new();
    let rt = fs.mnt.join("rt");
    std::fs::create_dir_all(rt.join("run")).unwrap();
    let marker = rt.join("run/web");
    let log = rt.join("web.log");
    // The old sidecar: writes its log, says "up"; on SIGTERM removes its
    // marker and log, says "removed", and exits once told to (a line on
    // stdin).
    let mut old = Command::new("sh")
        .args([
            "-c",
            r#"echo started > "$2"
               trap 'rm -rf "$1" "$2"; echo removed; read _; exit 0' TERM
               echo up
               while :; do sleep 1 & wait $!; done"#,
            "sidecar",
        ])
        .arg(&marker)
        .arg(&log)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = old.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let said = |what: &str| {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("the sidecar did not say {what:?}: {e}"));
        assert_eq!(line, what);
    };
    said("up");
    create_marker(&rt, &meta("web", old.id())).unwrap();
    let judged_inode = inode(&marker.join("metadata.toml"));
    // The old marker directory's inode stays in use while a descriptor on
    // it is open (as a collector's or a lock's would be), so the new
    // directory takes the log's freed number and the new metadata.toml the
    // judged one's.
    let held_dir = std::fs::File::open(&marker).unwrap();

    let rt2 = rt.clone();
    let stopper = std::thread::spawn(move || {
        let opts = StopOptions {
            grace: Duration::from_secs(30),
            ..StopOptions::default()
        };
        stop(&rt2, "web", &opts)
    });
    said("removed");
    assert!(
        !marker.exists() && !log.exists(),
        "the sidecar did not clean up"
    );
    // The launcher restarts the run under the same id.
    let mut new = Command::new("sleep").arg("60").spawn().unwrap();
    create_marker(&rt, &meta("web", new.id())).unwrap();
    let new_inode = inode(&marker.join("metadata.toml"));
    drop(held_dir);
    writeln!(old.stdin.as_mut().unwrap()).unwrap();
    let outcome = stopper.join().unwrap();
    let status = old.wait().unwrap();

    let survived = has_metadata(&marker);
    let listed: Vec<(String, u32)> = list(&rt)
        .unwrap()
        .into_iter()
        .map(|e| (e.sandbox_id, e.pid))
        .collect();
    let _ = new.kill();
    let _ = new.wait();

    let outcome = outcome.unwrap().expect("the marker was there");
    assert!(status.success(), "the old sidecar: {status:?}");
    assert_eq!(
        new_inode, judged_inode,
        "ext4 did not hand the freed inode number to the replacement's metadata.toml: this \
         test cannot show what it is for"
    );
    assert_eq!(outcome.signals, ["SIGTERM"], "{outcome:?}");
    assert!(outcome.exited, "{outcome:?}");
    assert!(survived, "stop deleted the restarted sidecar's new marker");
    assert!(
        !outcome.collected,
        "stop reported the replacement collected: {outcome:?}"
    );
    assert_eq!(listed, [("web".to_owned(), new.id())]);
    assert_eq!(run_names(&rt), ["web"], "nothing may be left beside it");
}
