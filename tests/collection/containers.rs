//! Collecting the markers of containerised sidecars (docs/design.md,
//! "Liveness"): a marker whose pid namespace has no process left at the
//! recorded pid is collected by `gc` from the host; the live ones beside
//! it are kept, whatever order one scan reads them in.
//!
//! Real pid namespaces (`unshare`), root; where the kernel refuses one,
//! the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::*;
use firma_stack::sidecar_markers::{gc_stale, list, scan};

struct Pod {
    child: Child,
    marker: PathBuf,
}

impl Pod {
    fn start(runtime: &Path, id: &str) -> Pod {
        need_root("these tests build pid namespaces");
        let mut child = Command::new("unshare")
            .args(["-p", "-f", "--mount-proc", "--kill-child", SIDECAR])
            .arg("--runtime-dir")
            .arg(runtime)
            .args(["--id", id])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("unshare (util-linux) must be installed to test namespaces");
        let line = first_line(&mut child);
        match line.strip_prefix("ready ") {
            Some(m) => Pod {
                child,
                marker: PathBuf::from(m.trim_end()),
            },
            None => {
                let out = child.wait_with_output().unwrap();
                panic!(
                    "the kernel refused `unshare -p -f --mount-proc` (or the sidecar failed): \
                     {line:?} {}",
                    String::from_utf8_lossy(&out.stderr)
                )
            }
        }
    }

    /// SIGKILLs the namespace and waits until its sidecar's socket no
    /// longer has a listener (the namespace is then dead).
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let sock = self.marker.join("sidecar.sock");
        wait_until("the namespace to die", || {
            std::os::unix::net::UnixStream::connect(&sock).is_err()
        });
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Six containers, three killed, beside a live and a dead host sidecar:
/// one `gc` collects exactly the dead (the containerised ones too), and a
/// second finds nothing more.
#[test]
fn gc_collects_the_markers_of_dead_containers_and_keeps_the_live() {
    let rt = runtime();
    let mut pods: Vec<(String, Pod)> = (0..6)
        .map(|i| {
            let id = format!("pod-{i}");
            let p = Pod::start(rt.path(), &id);
            (id, p)
        })
        .collect();
    let host = Sidecar::start(rt.path(), "host-live", &[]);
    write_stale(rt.path(), "host-dead", dead_pid());
    let mut dead = vec!["host-dead".to_owned()];
    for i in [0, 3, 5] {
        let (id, pod) = pods.remove(
            pods.iter()
                .position(|(id, _)| *id == format!("pod-{i}"))
                .unwrap(),
        );
        pod.kill();
        dead.push(id);
    }
    dead.sort();
    assert_eq!(gc_stale(rt.path()).unwrap(), dead);
    assert_eq!(gc_stale(rt.path()).unwrap(), Vec::<String>::new());
    let live: Vec<String> = list(rt.path())
        .unwrap()
        .into_iter()
        .map(|e| e.sandbox_id)
        .collect();
    assert_eq!(live, ["host-live", "pod-1", "pod-2", "pod-4"]);
    let report = scan(rt.path(), &Default::default()).unwrap();
    assert!(report.collected.is_empty(), "{report:?}");
    drop(host);
}
