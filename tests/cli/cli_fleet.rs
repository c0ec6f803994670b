//! The operator's daily commands (docs/design.md, "Surfaces", "Selecting",
//! "Waiting"): selecting and shaping listings (`--state`, `--agent`,
//! `--format`, `--sort`, `--no-headers`, `-o wide`, `--json-lines`), the
//! original project's `status --sandbox-id`, `check`'s exit statuses,
//! `wait` on the watch stream, parallel `stop` with `--all` and
//! `--ignore-missing`, and `run` registering a real process. Every
//! sidecar is a real process.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use firma_stack::sidecar_markers::SidecarEntry;

/// `firma --runtime-dir RT sidecar run --id ID ARGS -- CMD...`, spawned;
/// returns once the marker exists and the process runs `comm` (the
/// program the exec chain ends in: `sh -c '…; exec sleep'` runs `sleep`).
fn run_sidecar(rt: &Path, id: &str, args: &[&str], cmd: &[&str], comm: &str) -> Child {
    let child = Command::new(FIRMA)
        .arg("--runtime-dir")
        .arg(rt)
        .args(["sidecar", "run", "--id", id])
        .args(args)
        .arg("--")
        .args(cmd)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    wait_until("the marker and the exec", || {
        rt.join("run").join(id).join("metadata.toml").exists()
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == comm)
    });
    child
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn status_selects_by_state_and_agent_and_shapes_its_output() {
    let rt = runtime();
    let _fleet = [
        ("alpha", &["--agent", "planner"][..]),
        ("beta", &["--mode", "no-socket", "--agent", "coder"]),
        ("gamma", &["--mode", "no-socket", "--agent", "planner"]),
    ]
    .map(|(id, args)| Sidecar::start(rt.path(), id, args));

    // Only the unhealthy ids: what `docker ps --filter health=unhealthy -q` gives.
    let (code, out, _) = firma_in(
        rt.path(),
        &["sidecar", "status", "-q", "--state", "unhealthy"],
    );
    assert_eq!((code, out.as_str()), (0, "beta\ngamma\n"));
    // Repeatable states are ORed; parts are ANDed.
    let (_, out, _) = firma_in(
        rt.path(),
        &[
            "sidecar",
            "status",
            "-q",
            "--state",
            "running",
            "--state",
            "unhealthy",
            "--agent",
            "planner",
        ],
    );
    assert_eq!(out, "alpha\ngamma\n");
    // A state that is not one is a usage error.
    assert_eq!(
        firma_in(rt.path(), &["sidecar", "status", "--state", "fine"]).0,
        2
    );

    // A template over the entry's fields, escaped; sorted by a field.
    let (code, out, err) = firma_in(
        rt.path(),
        &[
            "sidecar",
            "status",
            "--format",
            "{sandbox_id}\\t{agent_id}\\t{state}",
            "--sort",
            "agent_id",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "beta\tcoder\tunhealthy\nalpha\tplanner\trunning\ngamma\tplanner\tunhealthy\n"
    );
    // Named columns, without the header.
    let (_, out, _) = firma_in(
        rt.path(),
        &[
            "sidecar",
            "status",
            "--format",
            "sandbox_id,state",
            "--no-headers",
        ],
    );
    assert_eq!(
        lines(&out),
        ["alpha  running", "beta   unhealthy", "gamma  unhealthy"]
    );
    // An unknown field is one line naming the fields, exit 2.
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "status", "--format", "{sandbox}"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(
        err.starts_with("firma: --format: unknown field \"sandbox\" (fields: sandbox_id"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1);

    // JSON lines: one exact entry per line.
    let (_, out, _) = firma_in(
        rt.path(),
        &["sidecar", "status", "--json-lines", "--state", "running"],
    );
    let e: SidecarEntry = serde_json::from_str(out.trim_end()).unwrap();
    assert_eq!((e.sandbox_id.as_str(), lines(&out).len()), ("alpha", 1));
}

#[test]
fn the_default_table_fits_100_columns_and_wide_has_the_socket() {
    let rt = runtime();
    // The socket path alone (<rt>/run/<id>/sidecar.sock) is about 60
    // columns: with it the table would be about 125 wide.
    let deep = rt.path();
    let _s = Sidecar::start(
        deep,
        "web-frontend-7",
        &["--agent", "planner-v2", "--session", "sess-2026-12-06"],
    );
    let (_, out, _) = firma_in(deep, &["sidecar", "status"]);
    assert!(out.lines().all(|l| l.chars().count() <= 100), "{out}");
    assert!(!out.contains("LISTEN") && !out.contains(".sock"), "{out}");
    let (_, out, _) = firma_in(deep, &["sidecar", "status", "-o", "wide"]);
    assert!(
        out.contains("LISTEN") && out.contains("/web-frontend-7/sidecar.sock"),
        "{out}"
    );
}

#[test]
fn the_upstream_status_form_answers_one_sandbox_and_an_empty_array() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "alpha", &[]);
    let _b = Sidecar::start(rt.path(), "beta", &[]);
    let (code, out, _) = firma_in(
        rt.path(),
        &["sidecar", "status", "--sandbox-id", "beta", "--json"],
    );
    assert_eq!(code, 0);
    let v: Vec<SidecarEntry> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].sandbox_id, "beta");
    let (code, out, err) = firma_in(
        rt.path(),
        &["sidecar", "status", "--sandbox-id", "nope", "--json"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (0, "[]\n", ""));
}

#[test]
fn inspect_selects_by_reason() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "alpha", &[]);
    write_marker(rt.path(), "junk", "not = [toml");
    write_stale(rt.path(), "dead", dead_pid());
    let (code, out, _) = firma_in(
        rt.path(),
        &[
            "sidecar",
            "inspect",
            "--reason",
            "parse_error",
            "--reason",
            "process_gone",
            "--format",
            "{name} {reason}",
        ],
    );
    assert_eq!(
        (code, out.as_str()),
        (0, "dead process_gone\njunk parse_error\n")
    );
    // Read-only: the stale marker is still there.
    assert!(rt.path().join("run/dead").exists());
}

#[test]
fn check_exits_0_only_when_every_id_is_running_and_names_the_worst() {
    let rt = runtime();
    let _ok = Sidecar::start(rt.path(), "ok", &[]);
    let _sick = Sidecar::start(rt.path(), "sick", &["--mode", "no-socket"]);
    write_stale(rt.path(), "dead", dead_pid());
    let check = |ids: &[&str]| {
        let mut args = vec!["sidecar", "check"];
        args.extend_from_slice(ids);
        firma_in(rt.path(), &args)
    };
    assert_eq!(check(&["ok"]), (0, "ok running\n".into(), String::new()));
    assert_eq!(check(&["ok", "sick"]).0, 4);
    assert_eq!(check(&["sick", "dead"]).0, 6);
    let (code, out, _) = check(&["dead", "nope", "ok"]);
    assert_eq!(
        (code, out.as_str()),
        (1, "dead stopped\nnope missing\nok running\n")
    );
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "check", "-q", "sick"]);
    assert_eq!((code, out.as_str()), (4, ""));
    // Read-only: the stale marker is left for gc.
    assert!(rt.path().join("run/dead").exists());
}

/// The arguments of `firma sidecar wait ID --for STATE --timeout TIMEOUT`.
fn wait_args<'a>(id: &'a str, state: &'a str, timeout: &'a str) -> [&'a str; 7] {
    ["sidecar", "wait", id, "--for", state, "--timeout", timeout]
}

#[test]
fn wait_follows_the_stream_until_running_or_gone_and_times_out_with_7() {
    let rt = runtime();
    // Started while wait is already waiting: seen through inotify.
    let waiter = firma_command(rt.path(), &wait_args("late", "running", "20s"))
        .arg("--json")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let late = Sidecar::start(rt.path(), "late", &[]);
    let out = waiter.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["met"], true);
    assert_eq!(v["sidecars"][0]["state"], "running");

    // Gone: the process exits while wait waits (a pidfd, not a poll).
    let waiter = firma_command(rt.path(), &wait_args("late", "gone", "20s"))
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let t = Instant::now();
    late.kill_and_reap();
    let status = { waiter }.wait().unwrap();
    assert_eq!(status.code(), Some(0));
    assert_within(t, Duration::from_secs(5), "wait");

    // A timeout: exit 7 and a line saying what was seen.
    let _sick = Sidecar::start(rt.path(), "sick", &["--mode", "no-socket"]);
    let t = Instant::now();
    let (code, _, err) = firma_in(rt.path(), &wait_args("sick", "running", "500ms"));
    assert_eq!(code, 7);
    assert_within(t, Duration::from_secs(5), "wait");
    assert!(err.contains("sick is unhealthy after"), "{err}");
}

#[test]
fn stop_works_in_parallel_with_all_and_ignore_missing_and_json_per_id() {
    let rt = runtime();
    // Sidecars that ignore SIGTERM: each costs the whole grace period.
    let mut kids: Vec<Child> = (0..6)
        .map(|i| {
            run_sidecar(
                rt.path(),
                &format!("deaf-{i}"),
                &["--agent", "deaf"],
                &["sh", "-c", "trap '' TERM; exec sleep 1000"],
                "sleep",
            )
        })
        .collect();
    let _other = Sidecar::start(rt.path(), "other", &["--agent", "keep"]);
    let t = Instant::now();
    let (code, out, err) = firma_in(
        rt.path(),
        &[
            "sidecar",
            "stop",
            "--all",
            "--agent",
            "deaf",
            "--grace-ms",
            "1500",
            "--json",
        ],
    );
    let took = t.elapsed();
    assert_eq!(code, 0, "{err}");
    // Sequential would be 6 × 1.5 s.
    assert!(took < Duration::from_secs(6), "{took:?}");
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let ids: Vec<&str> = v
        .iter()
        .map(|o| o["sandbox_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["deaf-0", "deaf-1", "deaf-2", "deaf-3", "deaf-4", "deaf-5"]
    );
    assert!(
        v.iter().all(|o| o["killed"] == true && o["exited"] == true),
        "{out}"
    );
    for k in &mut kids {
        k.wait().unwrap();
    }
    assert_eq!(run_names(rt.path()), ["other"]);

    // Twice: exit 1 and null; with --ignore-missing exit 0, still null.
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "stop", "deaf-0", "--json"]);
    assert_eq!((code, out.as_str()), (1, "[null]\n"));
    let (code, out, err) = firma_in(
        rt.path(),
        &["sidecar", "stop", "deaf-0", "--ignore-missing", "--json"],
    );
    assert_eq!((code, out.as_str(), err.as_str()), (0, "[null]\n", ""));
    // A failure mixed in: exit 2 and still one element per id.
    write_marker(rt.path(), "junk", "not = [toml");
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "stop", "deaf-1", "junk", "--json"]);
    assert_eq!(code, 2);
    let v: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(v.len(), 2);
    assert!(
        v[0].is_null() && v[1]["sandbox_id"] == "junk" && v[1]["error"]["code"].is_string(),
        "{out}"
    );
}

#[test]
fn run_registers_any_command_with_its_identity_and_gc_collects_it_after() {
    let rt = runtime();
    let mut child = run_sidecar(
        rt.path(),
        "shell-1",
        &["--agent", "sh", "--session", "s1"],
        &["sleep", "1000"],
        "sleep",
    );
    let pid = child.id();
    let meta = std::fs::read_to_string(rt.path().join("run/shell-1/metadata.toml")).unwrap();
    // The identity stop verifies: this pid, its start time, this boot.
    assert!(meta.contains(&format!("pid = {pid}\n")), "{meta}");
    assert!(
        meta.contains(&format!("pid_start_ticks = {}\n", start_ticks(pid))),
        "{meta}"
    );
    assert!(meta.contains(&boot_id()), "{meta}");
    // Listed: alive (unhealthy: sleep serves no socket).
    let (_, out, _) = firma_in(
        rt.path(),
        &[
            "sidecar",
            "status",
            "--format",
            "{sandbox_id} {pid} {agent_id}",
        ],
    );
    assert_eq!(out, format!("shell-1 {pid} sh\n"));
    // stop accepts it (identity verified) and stops it.
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "stop", "shell-1"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("sent SIGTERM"), "{out}");
    child.wait().unwrap();

    // Nothing can remove the marker after exec: a process that dies by
    // itself leaves a stale one, and gc collects it.
    let mut child = run_sidecar(rt.path(), "shell-2", &[], &["sleep", "1000"], "sleep");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(rt.path().join("run/shell-2").exists());
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "gc"]);
    assert_eq!((code, out.as_str()), (0, "removed shell-2\n"));

    // A command that cannot be exec'd: exit 2, marker removed.
    let (code, _, err) = firma_in(
        rt.path(),
        &["sidecar", "run", "--id", "bad", "--", "/no/such/cmd"],
    );
    assert_eq!(code, 2);
    assert!(err.starts_with("firma: cannot run /no/such/cmd"), "{err}");
    assert!(!rt.path().join("run/bad").exists());
}
