//! `firma sidecar metrics` (docs/design.md, "Metrics"): the Prometheus text format, the
//! atomic textfile writer, and the real engine reading both.
//!
//! The rendering and writer tests run in every `cargo test`. The tests that
//! run promtool, node_exporter and a Prometheus server are `#[ignore]`d
//! there and run by `make test-metrics` (part of `make test`) with
//! `--include-ignored`, after the Makefile installed the tools; a missing
//! tool makes them fail, never skip.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::tools::{Guarded, free_port, prometheus_server, promtool_checks, repo_file};
use crate::common::{
    FIRMA, Sidecar, firma_as_nobody, firma_in, meta, names_in, runtime, succeed, write_marker,
};
use firma_stack::sidecar_markers::metrics::{
    Format, MetricsModel, STATES, escape_label_value, write_textfile,
};
use firma_stack::sidecar_markers::{MetadataFile, SidecarEntry, State, create_marker};

/// Strings that would break or forge exposition lines if not escaped.
const HOSTILE_AGENT: &str = "agent\"} 1\nfirma_sidecar_up{sandbox_id=\"forged\"} 1\n# x";
const HOSTILE_SESSION: &str = "back\\slash\\\"quote\\n not-a-newline";
const HOSTILE_URL: &str = "https://a.invalid/\"\\\n\r\t\u{2028}é";
const HOSTILE_BUNDLE: &str = "\\\n\"";

// ---------------------------------------------------------------------
// A small independent reader of the text format, to check what we wrote
// and what node_exporter serves.

#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: String,
}

/// Parses one sample line strictly (the escapes of format 0.0.4 only).
fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' '])
        .ok_or_else(|| format!("no value in {line:?}"))?;
    let name = &line[..name_end];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return Err(format!("bad metric name in {line:?}"));
    }
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        loop {
            // label name
            let start = chars.peek().map(|&(i, _)| i).ok_or("unterminated labels")?;
            if r[start..].starts_with('}') {
                chars.next();
                break;
            }
            let eq = r[start..].find('=').ok_or("label without =")? + start;
            let key = r[start..eq].to_owned();
            while chars.peek().is_some_and(|&(i, _)| i <= eq) {
                chars.next();
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err(format!("label value not quoted in {line:?}"));
            }
            let mut value = String::new();
            loop {
                match chars.next().ok_or("unterminated label value")?.1 {
                    '"' => break,
                    '\\' => match chars.next().ok_or("dangling backslash")?.1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        c => return Err(format!("bad escape \\{c} in {line:?}")),
                    },
                    '\n' => return Err("raw newline in a label value".into()),
                    c => value.push(c),
                }
            }
            if labels.insert(key.clone(), value).is_some() {
                return Err(format!("label {key} twice in {line:?}"));
            }
            match chars.next().map(|(_, c)| c) {
                Some(',') => continue,
                Some('}') => break,
                other => return Err(format!("unexpected {other:?} after a label in {line:?}")),
            }
        }
        let at = chars.peek().map_or(r.len(), |&(i, _)| i);
        rest = &r[at..];
    }
    let value = rest
        .strip_prefix(' ')
        .ok_or_else(|| format!("no space before the value in {line:?}"))?;
    if value.is_empty() || value.contains(' ') {
        return Err(format!("bad value {value:?} in {line:?}"));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value: value.to_owned(),
    })
}

/// Every sample of an exposition; panics on any malformed line.
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| parse_sample(l).unwrap_or_else(|e| panic!("{e}\nin:\n{text}")))
        .collect()
}

fn find<'a>(samples: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> String {
    let found = find(samples, name, labels);
    assert_eq!(
        found.len(),
        1,
        "one {name} {labels:?} expected, got {found:?}"
    );
    found[0].value.clone()
}

// ---------------------------------------------------------------------
// Rendering, from hand-made observations.

fn entry(id: &str, state: State) -> SidecarEntry {
    SidecarEntry {
        sandbox_id: id.into(),
        agent_id: format!("agent-{id}"),
        session_id: format!("session-{id}"),
        authority_url: "https://authority.invalid".into(),
        policy_bundle_version: "v1".into(),
        pid: 4242,
        started_at: "2026-11-29T12:00:00Z".into(),
        state,
        listen: String::new(),
        uptime_secs: Some(77),
    }
}

/// A snapshot model of `sidecars` (live and stopped), two collected and
/// one broken marker, as one scan would give it.
fn observation(sidecars: Vec<SidecarEntry>) -> MetricsModel {
    MetricsModel {
        sidecars: sidecars
            .into_iter()
            .map(|e| (e.sandbox_id.clone(), e))
            .collect(),
        collected: 2,
        broken: Some(BTreeMap::from([("parse_error".to_owned(), 1)])),
        scan: Some((
            Duration::from_micros(1500),
            UNIX_EPOCH + Duration::from_millis(1_796_000_000_123),
        )),
        runtime_dir_up: true,
        synced: true,
        ..MetricsModel::default()
    }
}

fn render(m: &MetricsModel) -> String {
    m.render(Format::Text)
}

/// The families of a snapshot, in order (the watcher's add its own).
const FAMILIES: [&str; 10] = [
    "firma_sidecar_up",
    "firma_sidecar_start_time_seconds",
    "firma_sidecars",
    "firma_sidecars_by_policy",
    "firma_markers_broken",
    "firma_markers_collected",
    "firma_runtime_dir_up",
    "firma_scan_duration_seconds",
    "firma_scan_timestamp_seconds",
    "firma_build_info",
];

#[test]
fn label_values_escape_backslash_quote_and_newline_only() {
    assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    assert_eq!(escape_label_value("tab\tcr\ré"), "tab\tcr\ré");
    // A NUL (a TOML escape can put one in a marker string) would cut a C
    // string short: it is shown as U+FFFD.
    assert_eq!(escape_label_value("a\0b"), "a\u{fffd}b");
}

#[test]
fn a_hostile_marker_can_neither_break_nor_forge_a_line() {
    let mut e = entry("hostile", State::Unhealthy);
    e.agent_id = HOSTILE_AGENT.into();
    e.session_id = HOSTILE_SESSION.into();
    e.authority_url = HOSTILE_URL.into();
    e.policy_bundle_version = HOSTILE_BUNDLE.into();
    let text = render(&observation(vec![e]));

    // The exact bytes of the up line: each quote, backslash and newline escaped.
    assert!(
        text.contains(
            "firma_sidecar_up{sandbox_id=\"hostile\",agent_id=\"agent\\\"} 1\\nfirma_sidecar_up\
             {sandbox_id=\\\"forged\\\"} 1\\n# x\",session_id=\"back\\\\slash\\\\\\\"quote\\\\n \
             not-a-newline\"} 0\n"
        ),
        "{text}"
    );
    // Every line is a comment or a well-formed sample; nothing was forged.
    let samples = parse(&text);
    assert!(find(&samples, "firma_sidecar_up", &[("sandbox_id", "forged")]).is_empty());
    for l in text.lines() {
        assert!(
            l.starts_with("# HELP firma_")
                || l.starts_with("# TYPE firma_")
                || FAMILIES.iter().any(|f| {
                    l.strip_prefix(f)
                        .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
                }),
            "unexpected line {l:?} in\n{text}"
        );
    }
    // The values read back exactly.
    let up = find(&samples, "firma_sidecar_up", &[("sandbox_id", "hostile")]);
    assert_eq!(up.len(), 1);
    assert_eq!(up[0].labels["agent_id"], HOSTILE_AGENT);
    assert_eq!(up[0].labels["session_id"], HOSTILE_SESSION);
    let policy = find(&samples, "firma_sidecars_by_policy", &[]);
    assert_eq!(policy.len(), 1);
    assert_eq!(policy[0].labels["authority_url"], HOSTILE_URL);
    assert_eq!(policy[0].labels["policy_bundle_version"], HOSTILE_BUNDLE);
    assert!(!text.contains("pid="), "{text}");
}

#[test]
fn every_family_has_help_and_type_gauge_once_in_order() {
    let text = render(&observation(vec![entry("a", State::Running)]));
    let mut seen = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, l) in lines.iter().enumerate() {
        if let Some(rest) = l.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(rest.len() > name.len() + 1, "empty help for {name}");
            assert_eq!(lines[i + 1], format!("# TYPE {name} gauge"));
            seen.push(name.to_owned());
        }
    }
    assert_eq!(seen, FAMILIES);
    // Samples sit under their own family.
    let mut current = "";
    for l in &lines {
        if let Some(rest) = l.strip_prefix("# TYPE ") {
            current = rest.split(' ').next().unwrap();
        } else if !l.starts_with('#') {
            assert_eq!(parse_sample(l).unwrap().name, current, "{l}");
        }
    }
    assert!(text.ends_with('\n'));
}

#[test]
fn up_start_time_and_counts_cover_every_state() {
    let sidecars = vec![
        entry("r1", State::Running),
        entry("r2", State::Running),
        entry("u1", State::Unhealthy),
        entry("k1", State::Unknown),
        entry("s1", State::Stopped),
    ];
    let samples = parse(&render(&observation(sidecars)));
    for (id, state) in [
        ("r1", State::Running),
        ("r2", State::Running),
        ("u1", State::Unhealthy),
        ("k1", State::Unknown),
        ("s1", State::Stopped),
    ] {
        let up = if state == State::Running { "1" } else { "0" };
        let labels = [
            ("sandbox_id", id),
            ("agent_id", &format!("agent-{id}")),
            ("session_id", &format!("session-{id}")),
        ];
        assert_eq!(value(&samples, "firma_sidecar_up", &labels), up, "{id}");
        // 2026-11-29T12:00:00Z
        assert_eq!(
            value(
                &samples,
                "firma_sidecar_start_time_seconds",
                &[("sandbox_id", id)]
            ),
            "1795953600"
        );
    }
    for (s, n) in [
        ("running", "2"),
        ("unhealthy", "1"),
        ("stopped", "1"),
        ("unknown", "1"),
    ] {
        assert_eq!(value(&samples, "firma_sidecars", &[("state", s)]), n, "{s}");
    }
    assert_eq!(
        value(
            &samples,
            "firma_sidecars_by_policy",
            &[
                ("authority_url", "https://authority.invalid"),
                ("policy_bundle_version", "v1")
            ]
        ),
        "5"
    );
    assert_eq!(
        value(
            &samples,
            "firma_markers_broken",
            &[("reason", "parse_error")]
        ),
        "1"
    );
    assert_eq!(value(&samples, "firma_markers_collected", &[]), "2");
    assert_eq!(
        value(&samples, "firma_scan_duration_seconds", &[]),
        "0.001500"
    );
    assert_eq!(
        value(&samples, "firma_scan_timestamp_seconds", &[]),
        "1796000000.123000"
    );
}

#[test]
fn unknown_start_has_no_series_and_empty_scan_counts_zeros() {
    let mut e = entry("fresh", State::Running);
    e.started_at = "not a time".into();
    e.uptime_secs = None;
    let samples = parse(&render(&observation(vec![e])));
    assert!(find(&samples, "firma_sidecar_start_time_seconds", &[]).is_empty());

    let samples = parse(&render(&MetricsModel {
        broken: Some(BTreeMap::new()),
        scan: Some((Duration::ZERO, UNIX_EPOCH)),
        runtime_dir_up: true,
        ..MetricsModel::default()
    }));
    for s in STATES {
        assert_eq!(
            value(&samples, "firma_sidecars", &[("state", s.as_str())]),
            "0"
        );
    }
    assert!(find(&samples, "firma_markers_broken", &[]).is_empty());
    assert_eq!(value(&samples, "firma_markers_collected", &[]), "0");
    assert_eq!(
        value(&samples, "firma_scan_timestamp_seconds", &[]),
        "0.000000"
    );
    // sidecars x4, collected, dir up, duration, timestamp, build info.
    assert_eq!(samples.len(), 9);
}

// ---------------------------------------------------------------------
// The textfile writer and the CLI.

fn leftovers(dir: &Path) -> Vec<String> {
    let mut v = names_in(dir);
    v.retain(|n| n.ends_with(".tmp"));
    v
}

/// Runs `firma` under umask 077, so a 0644 file proves the explicit fchmod.
fn firma_umask_077(args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(FIRMA);
    cmd.args(args);
    // SAFETY: umask is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[test]
fn textfile_is_replaced_atomically_with_mode_0644_whatever_the_umask() {
    let rt = runtime();
    let _a = Sidecar::start(rt.path(), "alpha", &[]);
    let out = tempfile::tempdir().unwrap();
    let path = out.path().join("firma.prom");
    std::fs::write(&path, "old\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let old_ino = std::fs::metadata(&path).unwrap().ino();

    let rt_s = rt.path().to_str().unwrap();
    let (code, stdout, stderr) = firma_umask_077(&[
        "--runtime-dir",
        rt_s,
        "sidecar",
        "metrics",
        "--textfile",
        path.to_str().unwrap(),
    ]);
    assert_eq!((code, stdout.as_str(), stderr.as_str()), (0, "", ""));
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    assert_ne!(
        meta.ino(),
        old_ino,
        "a new file is renamed over the old one"
    );
    let samples = parse(&std::fs::read_to_string(&path).unwrap());
    assert_eq!(
        value(&samples, "firma_sidecar_up", &[("sandbox_id", "alpha")]),
        "1"
    );
    assert!(leftovers(out.path()).is_empty());

    // stdout carries the same exposition when no --textfile is given.
    let (code, stdout, _) = firma_in(rt.path(), &["sidecar", "metrics"]);
    assert_eq!(code, 0);
    let samples = parse(&stdout);
    assert_eq!(
        value(&samples, "firma_sidecars", &[("state", "running")]),
        "1"
    );
}

/// What a file the writer must never touch holds.
const KEEP: &str = "keep me\n";

/// A file `victim` in `dir` holding [`KEEP`].
fn file_to_protect(dir: &Path) -> PathBuf {
    let victim = dir.join("victim");
    std::fs::write(&victim, KEEP).unwrap();
    victim
}

#[test]
fn a_symlink_at_the_textfile_path_is_replaced_not_followed() {
    let out = tempfile::tempdir().unwrap();
    let victim = file_to_protect(out.path());
    let path = out.path().join("firma.prom");
    std::os::unix::fs::symlink(&victim, &path).unwrap();
    write_textfile(&path, b"x 1\n").unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), KEEP);
    assert!(std::fs::symlink_metadata(&path).unwrap().is_file());
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "x 1\n");
}

/// What an entry planted in the textfile's directory is, to see it is
/// still exactly that afterwards.
#[derive(Debug, PartialEq)]
enum Planted {
    Link(PathBuf),
    File(Vec<u8>),
    Dir,
}

fn planted(path: &Path) -> Planted {
    let m = std::fs::symlink_metadata(path).unwrap();
    if m.file_type().is_symlink() {
        Planted::Link(std::fs::read_link(path).unwrap())
    } else if m.is_dir() {
        Planted::Dir
    } else {
        Planted::File(std::fs::read(path).unwrap())
    }
}

/// Every name the old writer would try (`.firma-metrics-<pid>-<n>-<attempt>.tmp`,
/// 17 attempts per call, `n` a per-process counter) planted for this
/// process's pid and the first 512 values of the counter, as symlinks to a
/// file to protect, dangling symlinks into a directory that must stay
/// empty, plain files and directories; plus a farm of symlinks under other
/// `.firma-metrics-*.tmp` names. The old writer failed with EEXIST after its
/// 17 tries. The file must be written, nothing planted followed or changed,
/// and no temporary file of ours left behind. As a non-root user (so
/// `linkat` goes through `/proc/self/fd`, without `CAP_DAC_READ_SEARCH`)
/// the CLI writes among the farm as well.
#[test]
fn planted_temp_names_and_a_symlink_farm_neither_block_nor_redirect_the_textfile() {
    let out = tempfile::tempdir().unwrap();
    let guarded = tempfile::tempdir().unwrap();
    let victim = file_to_protect(guarded.path());
    let void = guarded.path().join("void");
    std::fs::create_dir(&void).unwrap();
    let pid = std::process::id();
    let mut names = Vec::new();
    for n in 0..512u32 {
        for attempt in 0..17u32 {
            names.push(format!(".firma-metrics-{pid}-{n}-{attempt}.tmp"));
        }
    }
    for i in 0..2048u32 {
        names.push(format!(".firma-metrics-{i:032x}.tmp"));
        names.push(format!(
            ".firma-metrics-{:032x}.tmp",
            u128::MAX - u128::from(i)
        ));
    }
    for (i, name) in names.iter().enumerate() {
        let at = out.path().join(name);
        match i % 4 {
            0 => std::os::unix::fs::symlink(&victim, &at).unwrap(),
            1 => std::os::unix::fs::symlink(void.join(format!("t{i}")), &at).unwrap(),
            2 => std::fs::write(&at, format!("planted {i}\n")).unwrap(),
            _ => std::fs::create_dir(&at).unwrap(),
        }
    }
    let before: Vec<(String, Planted)> = names
        .iter()
        .map(|n| (n.clone(), planted(&out.path().join(n))))
        .collect();
    let check_untouched = |when: &str| {
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), KEEP, "{when}");
        assert_eq!(std::fs::read_dir(&void).unwrap().count(), 0, "{when}");
        for (name, was) in &before {
            assert_eq!(&planted(&out.path().join(name)), was, "{when}: {name}");
        }
        let mut expected: Vec<&String> = names.iter().collect();
        expected.sort();
        let left = leftovers(out.path());
        assert_eq!(
            left.iter().collect::<Vec<_>>(),
            expected,
            "{when}: a temp file was left"
        );
    };

    let path = out.path().join("firma.prom");
    for round in 0..3 {
        write_textfile(&path, format!("x {round}\n").as_bytes()).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("x {round}\n")
        );
        let m = std::fs::symlink_metadata(&path).unwrap();
        assert!(m.is_file());
        assert_eq!(m.permissions().mode() & 0o7777, 0o644);
        check_untouched(&format!("round {round}"));
    }

    // The CLI, as another user, in a directory of its own among the farm.
    use std::os::unix::fs::chown;
    let nobody = 65534;
    chown(out.path(), Some(nobody), Some(nobody)).unwrap();
    let rt = tempfile::tempdir().unwrap();
    chown(rt.path(), Some(nobody), Some(nobody)).unwrap();
    std::fs::set_permissions(guarded.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let user_path = out.path().join("user.prom");
    succeed(
        firma_as_nobody(rt.path())
            .args(["sidecar", "metrics", "--textfile"])
            .arg(&user_path),
        "metrics --textfile as nobody",
    );
    let m = std::fs::symlink_metadata(&user_path).unwrap();
    assert!(m.is_file());
    assert_eq!((m.uid(), m.permissions().mode() & 0o7777), (nobody, 0o644));
    let text = std::fs::read_to_string(&user_path).unwrap();
    assert!(text.contains("# TYPE firma_sidecars gauge"), "{text}");
    check_untouched("the CLI as another user");
}

#[test]
fn a_missing_directory_is_one_line_naming_it() {
    let rt = runtime();
    let out = tempfile::tempdir().unwrap();
    let missing = out.path().join("no-such-dir");
    let path = missing.join("firma.prom");
    let (code, stdout, stderr) = firma_in(
        rt.path(),
        &["sidecar", "metrics", "--textfile", path.to_str().unwrap()],
    );
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert_eq!(
        stderr,
        format!(
            "firma: cannot write metrics to {}: directory {} does not exist\n",
            path.display(),
            missing.display()
        )
    );
    assert!(!missing.exists());

    let file = out.path().join("plain");
    std::fs::write(&file, "").unwrap();
    let err = write_textfile(&file.join("x.prom"), b"")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "cannot write metrics to {}/x.prom: {} is not a directory",
            file.display(),
            file.display()
        )
    );
    for bad in ["dir/", "dir/.", "dir/.."] {
        let err = write_textfile(&out.path().join(bad), b"")
            .unwrap_err()
            .to_string();
        assert!(err.ends_with(&format!("/{bad}: it names no file")), "{err}");
    }
    let err = write_textfile(Path::new(""), b"").unwrap_err().to_string();
    assert_eq!(err, "cannot write metrics: the path is empty");
}

#[test]
fn a_failed_rename_leaves_no_temp_file_and_the_target_untouched() {
    let out = tempfile::tempdir().unwrap();
    // A non-empty directory where the file should go: rename(2) refuses.
    let path = out.path().join("firma.prom");
    std::fs::create_dir(&path).unwrap();
    std::fs::write(path.join("inside"), "").unwrap();
    let err = write_textfile(&path, b"x 1\n").unwrap_err().to_string();
    assert!(
        err.starts_with(&format!(
            "cannot rename a temporary file over {}: ",
            path.display()
        )),
        "{err}"
    );
    assert!(!err.contains('\n'));
    assert!(
        leftovers(out.path()).is_empty(),
        "{:?}",
        leftovers(out.path())
    );
    assert!(path.join("inside").exists());
}

// ---------------------------------------------------------------------
// The real fixture and the real engine.

/// Plain HTTP/1.0 GET; `None` when nothing answers (yet).
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    let raw = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_owned()))
}

const WAIT: Duration = Duration::from_secs(60);

/// Polls `f` until it returns `Some`, at most [`WAIT`] ("never hangs").
fn wait_for<T>(what: &str, server: &mut Guarded, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        server.check_alive();
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; {} said:\n{}",
            server.name,
            server.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The fixture: real sidecars serving, wedged and dead, a hostile
/// marker for a live (sleeping) process, and a broken entry.
struct Fixture {
    rt: tempfile::TempDir,
    _serving: Sidecar,
    _wedged: Sidecar,
    _sleeper: Guarded,
}

fn fixture() -> Fixture {
    let rt = runtime();
    let serving = Sidecar::start(rt.path(), "serving", &["--agent", "agent-s"]);
    let wedged = Sidecar::start(
        rt.path(),
        "wedged",
        &["--mode", "wedged", "--agent", "agent-w"],
    );
    Sidecar::start(rt.path(), "dead", &["--agent", "agent-d"]).kill_and_reap();
    let sleeper = Guarded::spawn(
        "sleep",
        Command::new("sleep").arg("600"),
        rt.path().join("sleep.log"),
    );
    create_marker(
        rt.path(),
        &MetadataFile {
            agent_id: HOSTILE_AGENT.into(),
            session_id: HOSTILE_SESSION.into(),
            authority_url: HOSTILE_URL.into(),
            policy_bundle_version: HOSTILE_BUNDLE.into(),
            ..meta("hostile", sleeper.child.id())
        },
    )
    .unwrap();
    write_marker(rt.path(), "broken", "this is not = toml [");
    Fixture {
        rt,
        _serving: serving,
        _wedged: wedged,
        _sleeper: sleeper,
    }
}

impl Fixture {
    fn metrics(&self, extra: &[&str]) -> String {
        let mut args = vec!["sidecar", "metrics"];
        args.extend(extra);
        let (code, stdout, stderr) = firma_in(self.rt.path(), &args);
        assert_eq!((code, stderr.as_str()), (0, ""), "firma {args:?}");
        stdout
    }
}

/// What the fixture must look like: (sandbox id, agent id, state).
const EXPECTED: [(&str, &str, &str); 4] = [
    ("dead", "agent-d", "stopped"),
    ("hostile", HOSTILE_AGENT, "unhealthy"),
    ("serving", "agent-s", "running"),
    ("wedged", "agent-w", "unhealthy"),
];

/// Checks one exposition of the fixture (ours or node_exporter's).
fn check_fixture(samples: &[Sample], with_dead: bool) {
    for (id, agent, state) in EXPECTED {
        let up = find(samples, "firma_sidecar_up", &[("sandbox_id", id)]);
        if id == "dead" && !with_dead {
            assert!(up.is_empty(), "{up:?}");
            continue;
        }
        assert_eq!(up.len(), 1, "{id}: {up:?}");
        assert_eq!(up[0].labels["agent_id"], agent);
        let want = if state == "running" { "1" } else { "0" };
        assert_eq!(up[0].value, want, "{id}");
        let start = find(
            samples,
            "firma_sidecar_start_time_seconds",
            &[("sandbox_id", id)],
        );
        assert_eq!(start.len(), 1, "{id}: {start:?}");
    }
    let up = find(samples, "firma_sidecar_up", &[("sandbox_id", "hostile")]);
    assert_eq!(up[0].labels["session_id"], HOSTILE_SESSION);
    let policy = find(
        samples,
        "firma_sidecars_by_policy",
        &[
            ("authority_url", HOSTILE_URL),
            ("policy_bundle_version", HOSTILE_BUNDLE),
        ],
    );
    assert_eq!(policy.len(), 1, "{policy:?}");
    assert_eq!(policy[0].value, "1");
    assert!(find(samples, "firma_sidecar_up", &[("sandbox_id", "forged")]).is_empty());
    let stopped = if with_dead { "1" } else { "0" };
    assert_eq!(
        value(samples, "firma_sidecars", &[("state", "stopped")]),
        stopped
    );
    assert_eq!(
        value(samples, "firma_sidecars", &[("state", "running")]),
        "1"
    );
    assert_eq!(
        value(samples, "firma_sidecars", &[("state", "unhealthy")]),
        "2"
    );
    assert_eq!(
        value(samples, "firma_sidecars", &[("state", "unknown")]),
        "0"
    );
    let broken = find(samples, "firma_markers_broken", &[]);
    assert_eq!(broken.len(), 1, "{broken:?}");
    assert_eq!(broken[0].value, "1");
    assert!(broken[0].labels.contains_key("reason"), "{broken:?}");
}

#[test]
#[ignore = "needs promtool: run by `make test-metrics`"]
fn promtool_accepts_the_real_output_and_the_alert_rules() {
    let fx = fixture();
    let no_gc = fx.metrics(&["--no-gc"]);
    check_fixture(&parse(&no_gc), true);
    let gc = fx.metrics(&[]);
    check_fixture(&parse(&gc), false);
    assert_eq!(value(&parse(&gc), "firma_markers_collected", &[]), "1");
    // Both outputs, the alert rules, and the rules' own unit tests
    // (FirmaRuntimeDirDown fires on firma_runtime_dir_up 0, where no
    // sidecar series exists at all).
    let (checked, _) = promtool_checks(
        &[&no_gc, &gc],
        "docs/prometheus/alerts.yml",
        "docs/prometheus/alerts_test.yml",
    );
    assert!(checked.contains("SUCCESS: 3 rules found"), "{checked}");
}

/// A mistyped runtime directory is loud: `firma_runtime_dir_up` 0 in the
/// exposition and the textfile, one warning line on stderr, exit 0 (the
/// file is still written, so the alert on it can fire).
#[test]
fn a_missing_runtime_dir_is_exported_as_down_and_warned_about() {
    let rt = runtime();
    let typo = rt.path().join("typo");
    let (code, out, err) = firma_in(&typo, &["sidecar", "metrics"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(value(&parse(&out), "firma_runtime_dir_up", &[]), "0");
    assert_eq!(
        err,
        format!(
            "firma: runtime directory {} does not exist\n",
            typo.display()
        )
    );
    let (_, out, err) = firma_in(rt.path(), &["sidecar", "metrics"]);
    assert_eq!(value(&parse(&out), "firma_runtime_dir_up", &[]), "1");
    assert_eq!(err, "");
}

#[derive(Debug, PartialEq)]
struct Series {
    labels: BTreeMap<String, String>,
    value: String,
}

/// An instant query against Prometheus's HTTP API (bare metric names only:
/// no URL encoding needed).
fn query(port: u16, metric: &str) -> Option<Vec<Series>> {
    let (status, body) = http_get(port, &format!("/api/v1/query?query={metric}"))?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).expect("JSON from Prometheus");
    assert_eq!(v["status"], "success", "{body}");
    let result = v["data"]["result"].as_array()?;
    Some(
        result
            .iter()
            .map(|r| Series {
                labels: serde_json::from_value(r["metric"].clone()).unwrap(),
                value: r["value"][1].as_str().unwrap().to_owned(),
            })
            .collect(),
    )
}

#[test]
#[ignore = "needs prometheus-node-exporter and prometheus: run by `make test-metrics`"]
fn node_exporter_and_prometheus_read_the_sidecars() {
    let fx = fixture();
    let work = tempfile::tempdir().unwrap();
    let textdir = work.path().join("textfile");
    std::fs::create_dir(&textdir).unwrap();
    let prom_path = textdir.join("firma.prom");
    let prom_s = prom_path.to_str().unwrap();

    // node_exporter with only the textfile collector, on a port of our own.
    let ne_port = free_port();
    let mut ne = Guarded::spawn(
        "prometheus-node-exporter",
        Command::new("prometheus-node-exporter").args([
            format!("--web.listen-address=127.0.0.1:{ne_port}"),
            "--collector.disable-defaults".into(),
            "--collector.textfile".into(),
            format!("--collector.textfile.directory={}", textdir.display()),
        ]),
        work.path().join("node_exporter.log"),
    );

    // Read-only first: the dead sidecar's marker stays and shows as stopped.
    fx.metrics(&["--no-gc", "--textfile", prom_s]);
    let mode = std::fs::metadata(&prom_path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o644);
    let scraped = wait_for("node_exporter /metrics", &mut ne, || {
        http_get(ne_port, "/metrics").filter(|(s, _)| *s == 200)
    })
    .1;
    let samples = parse(&scraped);
    assert_eq!(
        value(&samples, "node_textfile_scrape_error", &[]),
        "0",
        "node_exporter rejected the file:\n{}",
        ne.log()
    );
    check_fixture(&samples, true);
    assert!(
        !find(&samples, "node_textfile_mtime_seconds", &[("file", prom_s)]).is_empty()
            || !find(
                &samples,
                "node_textfile_mtime_seconds",
                &[("file", "firma.prom")]
            )
            .is_empty(),
        "{scraped}"
    );

    // Prometheus scraping node_exporter every second, with the example rules.
    let pr_port = free_port();
    let config = work.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: firma-node\n    static_configs:\n\
             \x20     - targets: ['127.0.0.1:{ne_port}']\n",
            rules = repo_file("docs/prometheus/alerts.yml").display()
        ),
    )
    .unwrap();
    let mut pr = prometheus_server("prometheus", &config, work.path(), pr_port);

    let want_up = |series: &[Series], with_dead: bool| -> bool {
        let mut got: Vec<(String, String, String)> = series
            .iter()
            .map(|s| {
                (
                    s.labels["sandbox_id"].clone(),
                    s.labels["agent_id"].clone(),
                    s.value.clone(),
                )
            })
            .collect();
        got.sort();
        let want: Vec<(String, String, String)> = EXPECTED
            .iter()
            .filter(|(id, ..)| with_dead || *id != "dead")
            .map(|(id, agent, state)| {
                let up = if *state == "running" { "1" } else { "0" };
                (id.to_string(), agent.to_string(), up.to_string())
            })
            .collect();
        got == want
    };
    let series = wait_for("firma_sidecar_up in Prometheus", &mut pr, || {
        query(pr_port, "firma_sidecar_up").filter(|s| want_up(s, true))
    });
    let hostile = series
        .iter()
        .find(|s| s.labels["sandbox_id"] == "hostile")
        .unwrap();
    assert_eq!(hostile.labels["session_id"], HOSTILE_SESSION);
    assert_eq!(hostile.labels["job"], "firma-node");
    let policies = wait_for("firma_sidecars_by_policy in Prometheus", &mut pr, || {
        query(pr_port, "firma_sidecars_by_policy")
            .filter(|s| s.iter().any(|s| s.labels["authority_url"] == HOSTILE_URL))
    });
    let hostile = policies
        .iter()
        .find(|s| s.labels["authority_url"] == HOSTILE_URL)
        .unwrap();
    assert_eq!(hostile.labels["authority_url"], HOSTILE_URL);
    assert_eq!(hostile.labels["policy_bundle_version"], HOSTILE_BUNDLE);

    // The example rules evaluate: pending (their `for:` is 5 minutes) for
    // every sidecar that is not running, and for the broken marker.
    let alerts = wait_for("pending alerts", &mut pr, || {
        let (status, body) = http_get(pr_port, "/api/v1/alerts")?;
        let v: serde_json::Value = serde_json::from_str(&body).ok()?;
        let mut got: Vec<(String, String)> = v["data"]["alerts"]
            .as_array()?
            .iter()
            .map(|a| {
                (
                    a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                    a["labels"]["sandbox_id"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        got.sort();
        (status == 200 && got.len() == 4).then_some(got)
    });
    assert_eq!(
        alerts,
        [
            ("FirmaBrokenMarkers", ""),
            ("FirmaSidecarNotRunning", "dead"),
            ("FirmaSidecarNotRunning", "hostile"),
            ("FirmaSidecarNotRunning", "wedged"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
    );

    // Now with collection: the dead marker is removed, counted, and its
    // series goes stale in Prometheus.
    let before = SystemTime::now();
    fx.metrics(&["--textfile", prom_s]);
    assert!(!fx.rt.path().join("run/dead").exists());
    wait_for("the collection seen by Prometheus", &mut pr, || {
        let collected = query(pr_port, "firma_markers_collected")?;
        let up = query(pr_port, "firma_sidecar_up")?;
        (collected.len() == 1 && collected[0].value == "1" && want_up(&up, false)).then_some(())
    });
    let ts = query(pr_port, "firma_scan_timestamp_seconds").unwrap();
    let ts: f64 = ts[0].value.parse().unwrap();
    let before = before.duration_since(UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(ts >= before - 1.0, "{ts} < {before}");
    assert!(leftovers(&textdir).is_empty());
    ne.check_alive();
    pr.check_alive();
}
