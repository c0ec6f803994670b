//! The `firma` command line as an operator scripts it: `inspect` and its
//! reason codes, read-only `status --no-gc`, `-q`, the stderr notes of a
//! listing, a missing runtime directory, `get` of several ids, escaped text
//! for people with exact JSON for programs, and colour only on a real
//! terminal. Every fixture is real: example sidecar processes, dead pids, a
//! zombie, a socket file without a listener, hand-written markers.

use std::collections::BTreeMap;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::common::*;
use firma_stack::sidecar_markers::{
    DEFAULT_TIMEOUT, MAX_TIMEOUT, MarkerReport, SidecarEntry, State, Verdict,
};

/// The default table fits 100 columns: no LISTEN (`-o wide` has it).
const HEADER: &str = "SANDBOX  AGENT  SESSION  STATE  PID  UPTIME\n";

/// `firma --runtime-dir RT ARGS...` with stdout and stderr piped.
/// A marker for this (live) test process, plus `extra` TOML lines.
fn own_marker(rt: &Path, id: &str, extra: &str) -> std::path::PathBuf {
    write_marker(rt, id, &metadata(id, std::process::id().into(), extra))
}

/// Every state and every kind of breakage in one runtime dir.
struct Zoo {
    _sidecars: Vec<Sidecar>,
    zombie: Child,
}

impl Drop for Zoo {
    fn drop(&mut self) {
        let _ = self.zombie.wait();
    }
}

const LIVE: [&str; 5] = ["nosock", "refused", "serving", "tcp-slow", "wedged"];
const STALE: [&str; 4] = ["dead", "otherboot", "reused", "zombie"];
const BROKEN: [&str; 5] = ["empty", "garbage", "hollow", "mismatch", "no-such-dir.txt"];

fn zoo(rt: &Path) -> Zoo {
    let sidecars = vec![
        Sidecar::start(rt, "serving", &[]),
        Sidecar::start(rt, "wedged", &["--mode", "wedged"]),
        Sidecar::start(rt, "nosock", &["--mode", "no-socket"]),
        Sidecar::syn_dropping(rt, "tcp-slow"),
    ];
    let zombie = Sidecar::start(rt, "zombie", &[]).kill_leave_zombie();

    // A socket file nobody listens on: bind, then close the listener; the
    // file stays and connect() is refused.
    let refused = own_marker(rt, "refused", "");
    drop(UnixListener::bind(refused.join("sidecar.sock")).unwrap());
    assert!(refused.join("sidecar.sock").exists());

    write_stale(rt, "dead", dead_pid());
    let ns = own_pid_ns();
    own_marker(
        rt,
        "reused",
        &format!(
            "boot_id = \"{}\"\npid_start_ticks = {}\npid_ns_inode = {ns}\n",
            boot_id(),
            start_ticks(std::process::id()) + 1000
        ),
    );
    // The same boot id with its first hex digit changed: another boot.
    let boot = boot_id();
    let flipped = if boot.starts_with('0') { "1" } else { "0" };
    own_marker(
        rt,
        "otherboot",
        &format!(
            "boot_id = \"{flipped}{}\"\npid_ns_inode = {ns}\n",
            &boot[1..]
        ),
    );

    write_marker(rt, "garbage", "\u{1}\u{1b}[31m not = [toml\n");
    write_marker(
        rt,
        "mismatch",
        &metadata("someone-else", std::process::id().into(), ""),
    );
    write_marker(rt, "empty", "");
    std::fs::create_dir_all(rt.join("run/hollow")).unwrap();
    // A plain file with a valid sandbox-id name: not_a_directory.
    std::fs::write(rt.join("run/no-such-dir.txt"), "x").unwrap();
    Zoo {
        _sidecars: sidecars,
        zombie,
    }
}

fn expected_reasons() -> BTreeMap<&'static str, (&'static str, Option<State>, &'static str)> {
    use State::*;
    BTreeMap::from([
        ("serving", ("live", Some(Running), "serving")),
        ("wedged", ("live", Some(Unhealthy), "backlog_full")),
        ("nosock", ("live", Some(Unhealthy), "endpoint_missing")),
        ("refused", ("live", Some(Unhealthy), "connection_refused")),
        ("tcp-slow", ("live", Some(Unhealthy), "timeout")),
        ("dead", ("stale", Some(Stopped), "process_gone")),
        ("zombie", ("stale", Some(Stopped), "zombie")),
        ("reused", ("stale", Some(Stopped), "pid_reused")),
        ("otherboot", ("stale", Some(Stopped), "other_boot")),
        ("garbage", ("broken", None, "parse_error")),
        ("mismatch", ("broken", None, "id_mismatch")),
        ("empty", ("broken", None, "parse_error")),
        ("hollow", ("broken", None, "io_error")),
        ("no-such-dir.txt", ("broken", None, "not_a_directory")),
    ])
}

#[test]
fn inspect_gives_every_reason_and_status_no_gc_removes_nothing() {
    let rt = runtime();
    let _zoo = zoo(rt.path());
    let before = run_names(rt.path());
    assert_eq!(before.len(), LIVE.len() + STALE.len() + BROKEN.len());

    // JSON: the exact serde serialization of the reports.
    let (code, out, err) = firma_in(
        rt.path(),
        &["sidecar", "inspect", "--json", "--timeout-ms", "300"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(err, "");
    let reports: Vec<MarkerReport> = serde_json::from_str(&out).unwrap();
    assert_eq!(serde_json::to_string(&reports).unwrap() + "\n", out);
    let got: BTreeMap<&str, (&str, Option<State>, &str)> = reports
        .iter()
        .map(|r| {
            (
                r.name.as_str(),
                (r.verdict.as_str(), r.state, r.reason.as_str()),
            )
        })
        .collect();
    assert_eq!(got, expected_reasons(), "{out}");
    for r in &reports {
        assert_eq!(r.entry.is_none(), r.verdict == Verdict::Broken, "{r:?}");
        assert_eq!(r.error.is_some(), r.verdict == Verdict::Broken, "{r:?}");
        assert!(!r.detail.is_empty() && !r.detail.contains('\n'), "{r:?}");
    }
    assert_eq!(run_names(rt.path()), before, "inspect removed something");

    // The table: one row per entry, sorted, the reason in its own column.
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "inspect", "--timeout-ms", "300"]);
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME ") && lines[0].contains(" REASON "));
    assert_eq!(lines.len(), 1 + before.len(), "{out}");
    let reason_col = lines[0].find("REASON").unwrap();
    for (line, (name, (_, _, reason))) in lines[1..].iter().zip(expected_reasons()) {
        assert!(line.starts_with(&format!("{name} ")), "{line}");
        assert!(line[reason_col..].starts_with(reason), "{line}");
    }
    assert!(!out.contains('\u{1b}') && !out.contains('\u{1}'), "{out:?}");

    // Names pick rows, in argument order; an unknown name is exit 1.
    let (code, out, err) = firma_in(
        rt.path(),
        &["sidecar", "inspect", "serving", "nope", "garbage"],
    );
    assert_eq!(code, 1);
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].starts_with("serving ") && rows[1].starts_with("garbage "));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("firma: no entry \"nope\" in "), "{err}");

    // status --no-gc: the live ones, nothing removed, nothing "collected".
    let (code, out, err) = firma_in(
        rt.path(),
        &["sidecar", "status", "--no-gc", "--timeout-ms", "300"],
    );
    assert_eq!(code, 0, "{err}");
    let listed: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(listed, LIVE);
    assert_eq!(
        err,
        format!(
            "firma: 5 markers could not be read: {} (see firma sidecar inspect)\n",
            BROKEN.join(", ")
        )
    );
    assert_eq!(
        run_names(rt.path()),
        before,
        "status --no-gc removed something"
    );

    // status: collects the stale ones and says which, on stderr only.
    let (code, out, err) = firma_in(
        rt.path(),
        &["sidecar", "status", "--json", "--timeout-ms", "300"],
    );
    assert_eq!(code, 0, "{err}");
    let live: Vec<SidecarEntry> = serde_json::from_str(&out).unwrap();
    assert_eq!(serde_json::to_string(&live).unwrap() + "\n", out);
    let ids: Vec<&str> = live.iter().map(|e| e.sandbox_id.as_str()).collect();
    assert_eq!(ids, LIVE);
    assert_eq!(
        err,
        format!(
            "firma: collected 4 stale markers: {}\n\
             firma: 5 markers could not be read: {} (see firma sidecar inspect)\n",
            STALE.join(", "),
            BROKEN.join(", ")
        )
    );
    let mut left: Vec<&str> = LIVE.iter().chain(&BROKEN).copied().collect();
    left.sort();
    assert_eq!(run_names(rt.path()), left);
}

#[test]
fn quiet_prints_the_live_ids_only() {
    let rt = runtime();
    let _sidecars = one_of_each(rt.path(), ["alpha", "beta", "gamma", "delta"]);
    for flag in ["-q", "--quiet"] {
        let (code, out, err) = firma_in(rt.path(), &["sidecar", "status", "--no-gc", flag]);
        assert_eq!((code, out.as_str()), (0, "alpha\nbeta\n"), "{err}");
        assert!(err.contains("1 marker could not be read: delta"), "{err}");
    }
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "status", "-q"]);
    assert_eq!((code, out.as_str()), (0, "alpha\nbeta\n"));
    assert!(
        err.contains("firma: collected 1 stale marker: gamma\n"),
        "{err}"
    );
    // -q and --json say different things: refused.
    assert_eq!(
        firma_in(rt.path(), &["sidecar", "status", "-q", "--json"]).0,
        2
    );
}

#[test]
fn missing_runtime_dir_warns_on_stderr_and_exits_0() {
    let parent = runtime();
    let missing = parent.path().join("typo");
    let shown = missing.to_str().unwrap();
    let warning = format!("firma: runtime directory {shown} does not exist\n");
    for (args, stdout) in [
        (&["sidecar", "status"][..], HEADER),
        (&["sidecar", "status", "--json"][..], "[]\n"),
        (&["sidecar", "status", "--no-gc", "-q"][..], ""),
        (&["sidecar", "gc"][..], ""),
        (&["sidecar", "gc", "--json"][..], "[]\n"),
        (&["sidecar", "inspect", "--json"][..], "[]\n"),
    ] {
        let (code, out, err) = firma_in(&missing, args);
        assert_eq!((code, out.as_str()), (0, stdout), "{args:?}");
        assert_eq!(err, warning, "{args:?}");
    }
    // Named ids are still missing (exit 1), and the warning says why.
    let (code, out, err) = firma_in(&missing, &["sidecar", "get", "web-1"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with(&warning), "{err}");
    assert!(!missing.exists());
}

#[test]
fn empty_table_keeps_its_header_and_notes_go_to_stderr() {
    let rt = runtime();
    let shown = rt.path().to_str().unwrap();
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "status"]);
    assert_eq!((code, out.as_str()), (0, HEADER));
    assert_eq!(err, format!("firma: no live sidecars in {shown}\n"));
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "status", "--json"]);
    assert_eq!((code, out.as_str(), err.as_str()), (0, "[]\n", ""));
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "gc"]);
    assert_eq!((code, out.as_str()), (0, ""));
    assert_eq!(err, format!("firma: no stale markers in {shown}\n"));
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "inspect"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "NAME  VERDICT  STATE  REASON  DETAIL\n")
    );
    assert_eq!(err, format!("firma: no markers in {shown}/run\n"));

    // A relative --runtime-dir is named absolutely.
    let (code, _, err) = firma(&["--runtime-dir", "no-such-relative-dir", "sidecar", "status"]);
    assert_eq!(code, 0);
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        err,
        format!(
            "firma: runtime directory {}/no-such-relative-dir does not exist\n",
            cwd.display()
        )
    );
}

#[test]
fn stopped_sidecar_shows_no_uptime_in_the_table_but_json_keeps_it() {
    let rt = runtime();
    let dir = write_stale(rt.path(), "gone", dead_pid());
    std::fs::write(dir.join("sidecar.pid"), "1\n").unwrap();
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "gone"]);
    assert_eq!(code, 0);
    let header = out.lines().next().unwrap();
    let row = out.lines().nth(1).unwrap();
    let col = header.find("UPTIME").unwrap();
    assert!(row[header.find("STATE").unwrap()..].starts_with("stopped "));
    assert_eq!(row[col..].trim_end(), "-", "{out}");
    let (_, out, _) = firma_in(rt.path(), &["sidecar", "get", "gone", "--json"]);
    let e: SidecarEntry = serde_json::from_str(&out).unwrap();
    assert_eq!(e.state, State::Stopped);
    assert!(
        e.uptime_secs.is_some(),
        "the pid file gives an uptime: {out}"
    );
}

#[test]
fn hostile_strings_are_escaped_for_people_and_exact_in_json() {
    let rt = runtime();
    // TOML escapes: a newline that would forge a row, a clear-screen escape
    // sequence and a bell.
    own_marker(rt.path(), "hostile", "");
    let raw_agent = "evil\nforged  running  1  0s  /x\u{1b}[2J\u{7}";
    let toml = metadata("hostile", std::process::id().into(), "").replace(
        "agent_id = \"agent\"",
        "agent_id = \"evil\\nforged  running  1  0s  /x\\u001b[2J\\u0007\"",
    );
    write_marker(rt.path(), "hostile", &toml);
    let shown = "evil\\nforged  running  1  0s  /x\\u{1b}[2J\\u{7}";
    // An entry name with controls (not a sandbox id: broken, invalid_name).
    std::fs::create_dir(rt.path().join("run/bad\n\u{1b}[31mname")).unwrap();
    // A garbage marker full of control bytes.
    write_marker(rt.path(), "noise", "\u{1b}]0;pwned\u{7}\n\r\u{1b}[2J = =\n");

    let clean = |s: &str| {
        assert!(
            !s.chars()
                .any(|c| c.is_control() && c != '\n' || c == '\u{1b}'),
            "control characters reached the output: {s:?}"
        );
    };
    for args in [
        &["sidecar", "status", "--no-gc"][..],
        &["sidecar", "get", "hostile"][..],
    ] {
        let (code, out, err) = firma_in(rt.path(), args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert_eq!(out.lines().count(), 2, "a row was forged: {out}");
        assert!(out.lines().nth(1).unwrap().contains(shown), "{out}");
        clean(&out);
        clean(&err);
        assert!(err.lines().count() <= 1, "{err}");
    }
    let (_, _, err) = firma_in(rt.path(), &["sidecar", "status", "--no-gc"]);
    assert_eq!(
        err,
        "firma: 2 markers could not be read: bad\\n\\u{1b}[31mname, noise \
         (see firma sidecar inspect)\n"
    );

    let (code, out, err) = firma_in(rt.path(), &["sidecar", "inspect"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.lines().count(), 4, "{out}");
    clean(&out);

    // Errors are one line without raw bytes.
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "get", "noise"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("firma: cannot parse marker "), "{err}");
    clean(&err);

    // JSON keeps the bytes exactly.
    let (_, out, _) = firma_in(rt.path(), &["sidecar", "status", "--no-gc", "--json"]);
    let live: Vec<SidecarEntry> = serde_json::from_str(&out).unwrap();
    assert_eq!(live[0].agent_id, raw_agent);
    assert_eq!(serde_json::to_string(&live).unwrap() + "\n", out);
    let (_, out, _) = firma_in(rt.path(), &["sidecar", "inspect", "--json", "hostile"]);
    let reports: Vec<MarkerReport> = serde_json::from_str(&out).unwrap();
    assert_eq!(reports[0].entry.as_ref().unwrap().agent_id, raw_agent);
}

/// Runs `firma ARGS` under a real pseudo-terminal (util-linux `script`),
/// with NO_COLOR set to `no_color` (or unset); returns what the terminal
/// received.
fn on_a_terminal(rt: &Path, args: &str, no_color: Option<&str>) -> String {
    let cmd = format!("'{FIRMA}' --runtime-dir '{}' {args}", rt.display());
    let mut c = Command::new("script");
    c.args(["-qfec", &cmd, "/dev/null"])
        .stdin(Stdio::null())
        .env_remove("NO_COLOR");
    if let Some(v) = no_color {
        c.env("NO_COLOR", v);
    }
    let out = c.output().unwrap_or_else(|e| {
        panic!("cannot run `script` (util-linux) to get a pseudo-terminal: {e}")
    });
    assert!(
        out.status.success(),
        "script failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn state_is_coloured_on_a_terminal_only_and_never_with_no_color() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "green", &[]);
    let _b = Sidecar::start(rt.path(), "amber", &["--mode", "no-socket"]);

    let tty = on_a_terminal(rt.path(), "sidecar status -o wide", None);
    assert!(tty.contains("\u{1b}[32mrunning\u{1b}[0m"), "{tty:?}");
    assert!(tty.contains("\u{1b}[33munhealthy\u{1b}[0m"), "{tty:?}");
    // Colour does not move the columns: LISTEN starts at the same offset
    // once the escape codes are taken out.
    let plain = tty
        .replace("\u{1b}[32m", "")
        .replace("\u{1b}[33m", "")
        .replace("\u{1b}[0m", "");
    let lines: Vec<&str> = plain.lines().collect();
    let col = lines[0].find("LISTEN").unwrap();
    assert!(
        lines[1..3].iter().all(|l| l[col..].starts_with('/')),
        "{plain}"
    );

    let tty = on_a_terminal(rt.path(), "sidecar inspect", None);
    assert!(tty.contains("\u{1b}[32mlive\u{1b}[0m"), "{tty:?}");

    // The no-color.org rule: present and non-empty disables; empty does not.
    for v in ["1", "0", "yes"] {
        let tty = on_a_terminal(rt.path(), "sidecar status", Some(v));
        assert!(!tty.contains('\u{1b}'), "NO_COLOR={v}: {tty:?}");
        assert!(tty.contains("running"), "{tty:?}");
    }
    let tty = on_a_terminal(rt.path(), "sidecar status", Some(""));
    assert!(tty.contains("\u{1b}[32mrunning"), "NO_COLOR empty: {tty:?}");

    // Piped: never.
    for args in [&["sidecar", "status"][..], &["sidecar", "inspect"][..]] {
        let (_, out, err) = firma_in(rt.path(), args);
        assert!(
            !out.contains('\u{1b}') && !err.contains('\u{1b}'),
            "{out:?}"
        );
    }
}

#[test]
fn get_several_ids_prints_the_found_and_exits_1_for_a_missing_one() {
    let rt = runtime();
    let _ac = ["a", "c"].map(|id| Sidecar::start(rt.path(), id, &[]));
    write_marker(rt.path(), "junk", "junk");

    let (code, out, err) = firma_in(rt.path(), &["sidecar", "get", "c", "b", "a"]);
    assert_eq!(code, 1);
    let ids: Vec<&str> = out
        .lines()
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(ids, ["SANDBOX", "c", "a"]);
    assert_eq!(
        err,
        format!("firma: no sidecar \"b\" in {}\n", rt.path().display())
    );
    assert_eq!(firma_in(rt.path(), &["sidecar", "get", "a", "c"]).0, 0);

    // JSON: always one value per id and line (never an array), in
    // argument order, null if missing.
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "a", "b", "c", "--json"]);
    assert_eq!(code, 1);
    let v: Vec<Option<SidecarEntry>> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let again: String = v
        .iter()
        .map(|e| serde_json::to_string(e).unwrap() + "\n")
        .collect();
    assert_eq!(again, out);
    let ids: Vec<Option<&str>> = v
        .iter()
        .map(|e| e.as_ref().map(|e| e.sandbox_id.as_str()))
        .collect();
    assert_eq!(ids, [Some("a"), None, Some("c")]);
    // One id keeps its exact form: the object, or null.
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "a", "--json"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("{\"sandbox_id\":\"a\","), "{out}");
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "b", "--json"]);
    assert_eq!((code, out.as_str()), (1, "null\n"));

    // An invalid id is refused before anything is shown.
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "get", "a", "../etc"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err.lines().count(), 1);
    assert!(
        err.starts_with("firma: invalid sandbox id \"../etc\""),
        "{err}"
    );
    // A broken marker among several: exit 2; the table shows the others,
    // JSON shows nothing (a partial answer is never taken for a whole one).
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "get", "a", "junk", "b"]);
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(
        err.lines()
            .next()
            .unwrap()
            .starts_with("firma: cannot parse marker ")
    );
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "a", "junk", "--json"]);
    assert_eq!((code, out.as_str()), (2, ""));
}

#[test]
fn timeout_is_offered_only_where_something_is_probed() {
    let default_ms = DEFAULT_TIMEOUT.as_millis().to_string();
    let max_ms = MAX_TIMEOUT.as_millis().to_string();
    for sub in ["status", "get", "inspect"] {
        let (code, out, _) = firma(&["sidecar", sub, "--help"]);
        assert_eq!(code, 0);
        let line = out.lines().find(|l| l.contains("--timeout-ms")).unwrap();
        let text = out.replace('\n', " ");
        assert!(
            text.contains(&format!("1 to {max_ms}; default {default_ms}")),
            "{sub}: {line}"
        );
    }
    let (code, out, _) = firma(&["sidecar", "gc", "--help"]);
    assert_eq!(code, 0);
    assert!(!out.contains("--timeout-ms"), "{out}");
    assert!(out.contains("Never probes"), "{out}");
    assert!(
        out.contains("--json") && out.contains("removed ids"),
        "{out}"
    );
    let (_, out, _) = firma(&["sidecar", "get", "--help"]);
    let json = out.lines().find(|l| l.contains("--json")).unwrap();
    assert!(json.contains("argument order"), "{json}");

    let rt = runtime();
    assert_eq!(
        firma_in(rt.path(), &["sidecar", "gc", "--timeout-ms", "5"]).0,
        2
    );
    let over = (MAX_TIMEOUT.as_millis() + 1).to_string();
    assert_eq!(
        firma_in(rt.path(), &["sidecar", "status", "--timeout-ms", &over]).0,
        2
    );
    assert_eq!(
        firma_in(rt.path(), &["sidecar", "status", "--timeout-ms", "0"]).0,
        2
    );
    assert_eq!(
        firma_in(rt.path(), &["sidecar", "status", "--timeout-ms", &max_ms]).0,
        0
    );
    // Older scripts put it before the subcommand; still accepted.
    assert_eq!(
        firma_in(
            rt.path(),
            &["--timeout-ms", "100", "sidecar", "gc", "--json"]
        )
        .0,
        0
    );
}

#[test]
fn a_stale_marker_that_cannot_be_removed_is_one_stderr_line_and_the_rest_goes_on() {
    let rt = root_runtime("a read-only bind mount");
    let view = runtime();
    let _live = Sidecar::start(rt.path(), "live", &[]);
    write_stale(rt.path(), "stuck-stale", dead_pid());
    // A monitoring container's view: the runtime dir bind-mounted
    // read-only, in a private mount namespace so nothing leaks.
    let script = format!(
        "mount --bind '{rt}' '{view}' && mount -o remount,bind,ro '{view}' || exit 99; \
         '{FIRMA}' --runtime-dir '{view}' sidecar status; echo \"status=$?\"; \
         '{FIRMA}' --runtime-dir '{view}' sidecar gc; echo \"gc=$?\"",
        rt = rt.path().display(),
        view = view.path().display(),
    );
    let out = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    if out.status.code() == Some(99) {
        eprintln!("skipped: the kernel refused a read-only bind mount here: {stderr}");
        return;
    }
    assert!(
        stdout.contains("status=0") && stdout.contains("gc=0"),
        "{stdout}{stderr}"
    );
    assert!(stdout.lines().any(|l| l.starts_with("live ")), "{stdout}");
    let problem = format!(
        "firma: cannot remove stale marker {}/run/stuck-stale: ",
        view.path().display()
    );
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with(&problem) && lines[0].contains("Read-only"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("firma: no stale markers in "),
        "{stderr}"
    );
    assert!(lines[2].starts_with(&problem), "{stderr}");
    assert!(rt.path().join("run/stuck-stale").exists());
}
