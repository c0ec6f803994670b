//! Liveness that holds in containers and odd processes (docs/design.md, "Liveness"): a live
//! sidecar is never judged stopped, and a dead one is still collected where
//! its death is provable. Real namespaces (`unshare`), a real process whose
//! leader thread exited, a real `hidepid=1` /proc and a non-root reader.
//!
//! Every fixture here needs root and a kernel that allows the namespace;
//! where the kernel refuses, the test fails with a message saying so —
//! it never passes silently.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::common::{
    FIRMA, Sidecar, boot_id, dead_pid, first_line, id_states, json_output, json_under_hidepid,
    json_under_hidepid_in, meta, metadata, need_root, proc_state, root_runtime, runtime,
    start_ticks, start_unshared, wait_until, write_marker, write_stale,
};
use firma_stack::sidecar_markers::{
    MetadataFile, State, create_marker, gc_stale, get, inspect, list,
};

const NEED_ROOT: &str = "these tests build namespaces and mounts";

/// Runs `unshare ARGS -- firma-example-sidecar ...` and waits for `ready`.
struct Contained {
    child: Child,
    marker: PathBuf,
}

impl Contained {
    fn start(unshare: &[&str], runtime: &Path, id: &str) -> Contained {
        need_root(NEED_ROOT);
        match start_unshared(unshare, runtime, id) {
            Ok((child, marker)) => Contained { child, marker },
            Err((line, stderr)) => panic!(
                "the kernel refused `unshare {unshare:?}` (or the sidecar failed): {line:?} {stderr}"
            ),
        }
    }

    /// SIGKILLs the whole namespace (unshare --kill-child) and reaps it.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Contained {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn recorded(marker: &Path) -> MetadataFile {
    toml::from_str(&std::fs::read_to_string(marker.join("metadata.toml")).unwrap()).unwrap()
}

#[test]
fn supervisor_in_its_own_pid_namespace_deletes_no_host_marker() {
    let rt = root_runtime(NEED_ROOT);
    let live = Sidecar::start(rt.path(), "host-live", &[]);
    // A host marker of a dead pid, written by the writer (records the host
    // pid namespace) — and one written by hand without the key.
    let dead = dead_pid();
    let mut m = meta("host-dead", dead);
    m.boot_id = Some(boot_id());
    m.pid_start_ticks = Some(1);
    create_marker(rt.path(), &m).unwrap();
    write_stale(rt.path(), "host-dead-old", dead);
    let dir = rt.path().to_str().unwrap();
    let v = json_output(
        Command::new("unshare")
            .args(["-p", "-f", "--mount-proc", FIRMA, "--runtime-dir", dir])
            .args(["sidecar", "status", "--json"]),
        "kernel refused the pid namespace, or status failed",
    );
    assert_eq!(
        id_states(&v),
        [
            ("host-dead".to_owned(), "unknown".to_owned()),
            ("host-dead-old".to_owned(), "unknown".to_owned()),
            ("host-live".to_owned(), "running".to_owned()),
        ],
        "from inside a pid namespace nothing is provably dead"
    );
    for id in ["host-live", "host-dead", "host-dead-old"] {
        assert!(rt.path().join("run").join(id).exists(), "{id} was removed");
    }
    // From the host, the dead ones are provably dead and are collected.
    let mut removed = gc_stale(rt.path()).unwrap();
    removed.sort();
    assert_eq!(removed, ["host-dead", "host-dead-old"]);
    drop(live);
}

#[test]
fn sidecar_in_a_time_namespace_keeps_its_identity() {
    let rt = runtime();
    let c = Contained::start(&["-T", "--boottime", "1000", "-f"], rt.path(), "in-timens");
    let meta = recorded(&c.marker);
    assert_eq!(meta.boottime_offset_ns, Some(1_000_000_000_000));
    assert_eq!(
        get(rt.path(), "in-timens").unwrap().unwrap().state,
        State::Running
    );
    assert_eq!(gc_stale(rt.path()).unwrap(), Vec::<String>::new());
    // Its death is provable (same pid namespace): collected.
    c.kill();
    let pid = meta.pid;
    wait_until("the sidecar to be gone", || {
        !Path::new(&format!("/proc/{pid}")).exists()
    });
    assert_eq!(gc_stale(rt.path()).unwrap(), ["in-timens"]);
}

#[test]
fn boot_ids_spelled_differently_are_the_same_boot() {
    let rt = runtime();
    let me = std::process::id();
    let ticks = start_ticks(me);
    let canon = boot_id();
    let upper = canon.to_uppercase();
    let braces = format!("{{{canon}}}");
    let bare = canon.replace('-', "");
    for (id, spelling) in [("upper", &upper), ("braces", &braces), ("bare", &bare)] {
        let extra = format!("boot_id = \"{spelling}\"\npid_start_ticks = {ticks}\n");
        write_marker(rt.path(), id, &metadata(id, me.into(), &extra));
    }
    // Not a UUID: proves nothing, never "another boot".
    let extra = format!("boot_id = \"boot-7\"\npid_start_ticks = {ticks}\n");
    write_marker(
        rt.path(),
        "not-uuid",
        &metadata("not-uuid", me.into(), &extra),
    );
    // Really another boot: stale.
    let extra =
        format!("boot_id = \"00000000-0000-4000-8000-000000000001\"\npid_start_ticks = {ticks}\n");
    write_marker(
        rt.path(),
        "other-boot",
        &metadata("other-boot", me.into(), &extra),
    );
    let reports = inspect(rt.path()).unwrap();
    let got: Vec<(&str, &str, &str)> = reports
        .iter()
        .map(|r| (r.name.as_str(), r.verdict.as_str(), r.reason.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("bare", "live", "endpoint_missing"),
            ("braces", "live", "endpoint_missing"),
            ("not-uuid", "live", "unverifiable"),
            ("other-boot", "stale", "other_boot"),
            ("upper", "live", "endpoint_missing"),
        ]
    );
    assert_eq!(gc_stale(rt.path()).unwrap(), ["other-boot"]);
}

/// A process whose main thread called `pthread_exit` while a worker serves.
const LEADER_EXIT_C: &str = r#"
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
static int fd;
static void *serve(void *a) {
    (void)a;
    for (;;) { int c = accept(fd, 0, 0); if (c >= 0) close(c); }
    return 0;
}
int main(int argc, char **argv) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    if (argc < 2) return 2;
    strncpy(sa.sun_path, argv[1], sizeof sa.sun_path - 1);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 16)) return 1;
    pthread_t t;
    pthread_create(&t, 0, serve, 0);
    printf("ready\n");
    fflush(stdout);
    pthread_exit(0);
}
"#;

fn build_leader_exit() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("firma-leader-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("leader_exit.c");
    let bin = dir.join("leader_exit");
    std::fs::write(&src, LEADER_EXIT_C).unwrap();
    let st = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .arg("-lpthread")
        .status()
        .expect("a C compiler (cc) builds the leader-exit helper");
    assert!(st.success(), "cc failed to build the leader-exit helper");
    bin
}

#[test]
fn zombie_leader_with_a_serving_thread_is_alive_until_the_whole_process_exits() {
    let rt = runtime();
    let bin = build_leader_exit();
    let sock = rt.path().join("leader.sock");
    let mut child = Command::new(&bin)
        .arg(&sock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(first_line(&mut child), "ready\n");
    let pid = child.id();
    wait_until("the leader to become a zombie", || proc_state(pid) == "Z");
    let mut m = meta("leader-exit", pid);
    m.listen = Some(sock.to_str().unwrap().to_owned());
    create_marker(rt.path(), &m).unwrap();
    let e = get(rt.path(), "leader-exit").unwrap().unwrap();
    assert_eq!(
        e.state,
        State::Running,
        "a Z leader with a live thread is alive"
    );
    assert_eq!(gc_stale(rt.path()).unwrap(), Vec::<String>::new());
    assert_eq!(list(rt.path()).unwrap().len(), 1);
    // The whole process dies (not reaped yet: a true zombie) → collected.
    child.kill().unwrap();
    wait_until("the worker thread to exit", || {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map(|s| s.contains("Threads:\t1\n"))
            .unwrap_or(true)
    });
    assert_eq!(proc_state(pid), "Z");
    assert_eq!(gc_stale(rt.path()).unwrap(), ["leader-exit"]);
    child.wait().unwrap();
    let _ = std::fs::remove_dir_all(bin.parent().unwrap());
}

/// `/proc` mounted `hidepid=1` in a private mount namespace, read by a
/// non-root user: a root-owned live sidecar is not readable there
/// (`EPERM`/`EACCES` on `/proc/<pid>/stat`), which means "alive, identity
/// unchecked" — never a failed listing, never stopped.
#[test]
fn hidepid_proc_and_a_non_root_reader_still_list() {
    let rt = root_runtime(NEED_ROOT);
    let live = Sidecar::start(rt.path(), "root-live", &[]);
    write_stale(rt.path(), "root-dead", dead_pid());
    let v = json_under_hidepid(1, rt.path(), "status");
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1, "{v}");
    assert_eq!(arr[0]["sandbox_id"], "root-live");
    assert_ne!(arr[0]["state"], "stopped");
    // The dead one is provably dead (ESRCH) but nobody may remove it: kept,
    // and the listing did not fail.
    assert!(rt.path().join("run/root-live").exists());
    assert!(rt.path().join("run/root-dead").exists());
    drop(live);
}

/// The same fixture, inspected: `EACCES` on `/proc/<pid>/stat` is read as
/// "the identity cannot be checked here" (`permission_denied`, the detail
/// saying so), never as a failed read of `/proc` (`unverifiable`) nor as
/// a process gone.
#[test]
fn under_hidepid_1_a_denied_stat_is_an_unchecked_identity_not_unverifiable() {
    let rt = root_runtime(NEED_ROOT);
    let live = Sidecar::start(rt.path(), "root-live", &[]);
    crate::common::open_up(rt.path());
    let dir = rt.path().to_str().unwrap();
    let script = format!(
        "mount -t proc -o hidepid=1 proc /proc && \
         exec setpriv --reuid 65534 --regid 65534 --clear-groups \
         {FIRMA} --runtime-dir {dir} sidecar inspect --json"
    );
    let v = json_output(
        Command::new("unshare").args(["-m", "--propagation", "private", "sh", "-c", &script]),
        "hidepid inspect failed (or the kernel refused the mount namespace)",
    );
    let arr = v.as_array().unwrap();
    assert_eq!(arr.len(), 1, "{v}");
    assert_eq!(arr[0]["verdict"], "live", "{v}");
    assert_eq!(arr[0]["reason"], "permission_denied", "{v}");
    let detail = arr[0]["detail"].as_str().unwrap();
    assert!(
        detail.contains("permission denied reading /proc/<pid>/stat"),
        "{detail}"
    );
    drop(live);
}

/// A non-root reader in a pid namespace of its own (not the initial one),
/// its `/proc` that namespace's, mounted `hidepid=1`, then `hidepid=2`: a
/// root process lives there under the pid of a marker that records no pid
/// namespace (as writers without the key, all in the initial one, did).
/// That pid may name another process than the marker's: whether `/proc`
/// denies its stat (1) or hides it (2, `kill(pid, 0)` saying `EPERM`), its
/// identity is foreign, which no opt-out of `stop` overrides — never
/// merely unchecked.
#[test]
fn a_reader_in_its_own_pid_namespace_calls_a_denied_or_hidden_unrecorded_pid_foreign() {
    let rt = root_runtime(NEED_ROOT);
    // In the new namespace: sh is pid 1, mount pid 2, sleep pid 3.
    write_marker(rt.path(), "unrecorded", &metadata("unrecorded", 3, ""));
    let sleep_at_3 = "sleep 60 &\ntest $! = 3 || { echo \"sleep is pid $!, not 3\" >&2; exit 1; }";
    for hidepid in [1, 2] {
        let v = json_under_hidepid_in(
            &["-p", "-f", "-m"],
            sleep_at_3,
            hidepid,
            rt.path(),
            "inspect",
        );
        let arr = v.as_array().unwrap();
        assert_eq!(arr.len(), 1, "{v}");
        assert_eq!(arr[0]["verdict"], "live", "hidepid={hidepid}: {v}");
        let detail = arr[0]["detail"].as_str().unwrap();
        assert!(
            detail.contains(
                "identity not checked: the marker records no pid namespace and the reader is not in the initial one"
            ),
            "hidepid={hidepid}: {detail}"
        );
    }
}
