//! The `firma` command line as an operator sees it: tables, JSON, exit codes.

use crate::common::*;
use firma_stack::sidecar_markers::{SidecarEntry, list};

#[test]
fn status_table_shows_states_and_empty_dir_says_so() {
    let rt = runtime();
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "status"]);
    assert_eq!(code, 0);
    // The header always; the note on stderr (stdout stays data).
    assert!(out.starts_with("SANDBOX"), "{out}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(err.starts_with("firma: no live sidecars in "), "{err}");

    let _a = Sidecar::start(
        rt.path(),
        "alpha",
        &["--agent", "planner", "--session", "s-9"],
    );
    let _b = Sidecar::start(rt.path(), "beta", &["--mode", "wedged"]);
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "status", "-o", "wide"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    for col in [
        "SANDBOX", "AGENT", "SESSION", "STATE", "PID", "UPTIME", "STARTED", "LISTEN",
    ] {
        assert!(lines[0].contains(col), "{}", lines[0]);
    }
    assert!(
        lines[1].starts_with("alpha ")
            && lines[1].contains(" planner ")
            && lines[1].contains(" running ")
    );
    assert!(lines[2].starts_with("beta ") && lines[2].contains(" unhealthy "));
    // Columns are aligned: STATE starts at the same offset on every line.
    let col = lines[0].find("STATE").unwrap();
    assert!(lines[1][col..].starts_with("running"));
    assert!(lines[2][col..].starts_with("unhealthy"));
}

#[test]
fn status_json_is_exactly_the_serialized_entries() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "alpha", &[]);
    let _b = Sidecar::start(rt.path(), "beta", &["--tcp", "127.0.0.1:0"]);
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "status", "--json"]);
    assert_eq!(code, 0);
    let parsed: Vec<SidecarEntry> = serde_json::from_str(&out).unwrap();
    assert_eq!(
        parsed,
        list(rt.path())
            .unwrap()
            .into_iter()
            .map(|mut e| {
                // uptime may tick over between the two calls.
                e.uptime_secs = parsed
                    .iter()
                    .find(|p| p.sandbox_id == e.sandbox_id)
                    .unwrap()
                    .uptime_secs;
                e
            })
            .collect::<Vec<_>>()
    );
    // Byte for byte the serialization of the entries, so field order is the
    // struct's, which is the documented JSON order.
    assert_eq!(out.trim_end(), serde_json::to_string(&parsed).unwrap());
}

#[test]
fn get_exit_codes_found_missing_and_invalid() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "here", &[]);
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "here", "--json"]);
    assert_eq!(code, 0);
    assert!(out.contains(r#""sandbox_id":"here""#) && out.contains(r#""state":"running""#));
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "here"]);
    assert_eq!(code, 0);
    assert!(out.lines().nth(1).unwrap().starts_with("here "));

    let (code, out, _) = firma_in(rt.path(), &["sidecar", "get", "absent", "--json"]);
    assert_eq!((code, out.as_str()), (1, "null\n"));
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "get", "absent"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.contains("no sidecar \"absent\""), "{err}");

    let (code, out, err) = firma_in(rt.path(), &["sidecar", "get", "../etc", "--json"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("firma: invalid sandbox id \"../etc\""),
        "{err}"
    );
}

#[test]
fn gc_lists_removed_ids_in_text_and_json() {
    let rt = runtime();
    let dead = dead_pid();
    write_stale(rt.path(), "s-2", dead);
    write_stale(rt.path(), "s-1", dead);
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "gc"]);
    assert_eq!((code, out.as_str()), (0, "removed s-1\nremoved s-2\n"));
    let (code, out, err) = firma_in(rt.path(), &["sidecar", "gc"]);
    assert_eq!(code, 0);
    assert_eq!(out, "");
    assert!(err.starts_with("firma: no stale markers in "), "{err}");
    write_stale(rt.path(), "s-3", dead);
    let (code, out, _) = firma_in(rt.path(), &["sidecar", "gc", "--json"]);
    assert_eq!((code, out.as_str()), (0, "[\"s-3\"]\n"));
}

#[test]
fn errors_exit_2_with_one_clear_line_and_no_backtrace() {
    let rt = runtime();
    std::fs::write(rt.path().join("run"), "not a directory").unwrap();
    for args in [["sidecar", "status"], ["sidecar", "gc"]] {
        let (code, out, err) = firma_in(rt.path(), &args);
        assert_eq!(code, 2);
        assert!(out.is_empty());
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("/run") && err.contains("Not a directory"),
            "{err}"
        );
        assert!(!err.contains("panicked") && !err.contains("backtrace"));
    }
    // Usage errors also exit 2.
    assert_eq!(firma(&["sidecar", "frobnicate"]).0, 2);
    assert_eq!(
        firma_in(rt.path(), &["--timeout-ms", "0", "sidecar", "status"]).0,
        2
    );
    assert_eq!(
        firma_in(rt.path(), &["--timeout-ms", "soon", "sidecar", "status"]).0,
        2
    );
}

#[test]
fn default_runtime_dir_follows_the_environment() {
    let rt = runtime();
    write_stale(rt.path(), "env-stale", dead_pid());
    let out = std::process::Command::new(FIRMA)
        .env("FIRMA_STATE_DIR", rt.path())
        .args(["sidecar", "gc", "--json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[\"env-stale\"]\n");
    let xdg = runtime();
    write_stale(&xdg.path().join("firma"), "xdg-stale", dead_pid());
    let out = std::process::Command::new(FIRMA)
        .env("FIRMA_STATE_DIR", "")
        .env("XDG_RUNTIME_DIR", xdg.path())
        .args(["sidecar", "gc", "--json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "[\"xdg-stale\"]\n");
}
