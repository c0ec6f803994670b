//! Collecting the markers of containerised sidecars (docs/design.md,
//! "Liveness"): a marker whose pid namespace has no process left at the
//! recorded pid is collected by `gc` from the host; the live ones beside
//! it are kept, whatever order one scan reads them in.
//!
//! Real pid namespaces (`unshare`), root; where the kernel refuses one,
//! the test fails saying so.

use crate::common::pod::Pod;
use crate::common::*;
use firma_stack::sidecar_markers::{gc_stale, list, scan};

/// Six containers, three killed, beside a live and a dead host sidecar:
/// one `gc` collects exactly the dead (the containerised ones too), and a
/// second finds nothing more.
#[test]
fn gc_collects_the_markers_of_dead_containers_and_keeps_the_live() {
    let rt = runtime();
    let mut pods: Vec<(String, Pod)> = (0..6)
        .map(|i| {
            let id = format!("pod-{i}");
            let p = Pod::start(&["-p", "-f", "--mount-proc"], rt.path(), &id);
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
