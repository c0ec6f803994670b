//! `firma sidecar exporter` (docs/design.md, "Metrics", "Exporter"): a real
//! exporter process over real sidecars, scraped over HTTP.
//!
//! The tests that need promtool or systemd-analyze are `#[ignore]`d here
//! and run by `make test-metrics` (filter `exporter`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tools::{free_port, promtool_checks, repo_file, run_tool};
use crate::common::{FIRMA, Sidecar, runtime, write_marker};

/// A running `firma sidecar exporter`; killed and reaped on drop.
pub struct Exporter {
    child: Child,
    pub listen: String,
    log: PathBuf,
}

impl Exporter {
    /// Starts `firma --runtime-dir DIR sidecar exporter --listen LISTEN
    /// EXTRA…`, its output in `log`.
    pub fn start_with(
        cmd: &mut Command,
        dir: &Path,
        listen: &str,
        extra: &[&str],
        log: PathBuf,
    ) -> Exporter {
        let out = std::fs::File::create(&log).unwrap();
        cmd.arg(FIRMA)
            .arg("--runtime-dir")
            .arg(dir)
            .args(["sidecar", "exporter", "--listen", listen])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        let child = cmd.spawn().expect("spawn firma sidecar exporter");
        Exporter {
            child,
            listen: listen.to_owned(),
            log,
        }
    }

    pub fn start(dir: &Path, extra: &[&str]) -> Exporter {
        let listen = format!("127.0.0.1:{}", free_port());
        let log = dir.with_extension("exporter.log");
        // `env` runs FIRMA: the same spawn path as the netns fleet's.
        Exporter::start_with(&mut Command::new("env"), dir, &listen, extra, log)
    }

    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        self.child.wait().unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET `path` with extra request headers: (status, head, body).
    pub fn get(&self, path: &str, headers: &[(&str, &str)]) -> Option<(u16, String, Vec<u8>)> {
        let mut req = format!("GET {path} HTTP/1.0\r\nHost: firma\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut raw = Vec::new();
        if self.listen.contains('/') {
            let mut s = UnixStream::connect(&self.listen).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(req.as_bytes()).ok()?;
            s.read_to_end(&mut raw).ok()?;
        } else {
            let addr: SocketAddr = self.listen.parse().unwrap();
            let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s.write_all(req.as_bytes()).ok()?;
            s.read_to_end(&mut raw).ok()?;
        }
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, head, raw[split + 4..].to_vec()))
    }

    /// Waits (at most 30 s) until `f` holds for a scrape; returns it.
    pub fn wait_metrics(&mut self, what: &str, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _, body)) = self.get("/metrics", &[]) {
                let body = String::from_utf8(body).unwrap();
                if f(&body) {
                    return body;
                }
                assert!(Instant::now() < deadline, "{what}: last scrape:\n{body}");
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the exporter exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no answer; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits for `/healthz` to say 200 (the watcher synced).
    pub fn wait_healthy(&mut self) {
        self.wait_metrics("healthz", |_| true);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.get("/healthz", &[]).map(|r| r.0) != Some(200) {
            assert!(Instant::now() < deadline, "never healthy:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the one sample `line_prefix` (name and labels exactly as
/// written), if present.
pub fn sample(text: &str, line_prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(line_prefix)?.strip_prefix(' '))
        .map(str::to_owned)
}

/// A sidecar serving as `serving` for `agent`, a wedged one as `wedged`, a
/// marker `broken` holding `broken_text`, and an exporter over them
/// inspecting every 100 ms, healthy; with its first scrape that counts the
/// broken marker.
fn serving_wedged_broken(
    rt: &Path,
    [serving, agent, wedged]: [&str; 3],
    broken_text: &str,
) -> (Sidecar, Sidecar, Exporter, String) {
    let serving = Sidecar::start(rt, serving, &["--agent", agent]);
    let wedged = Sidecar::start(rt, wedged, &["--mode", "wedged"]);
    write_marker(rt, "broken", broken_text);
    let mut ex = Exporter::start(rt, &["--inspect-interval-ms", "100"]);
    ex.wait_healthy();
    let body = ex.wait_metrics("broken counted", |b| {
        b.contains("firma_markers_broken{reason=")
    });
    (serving, wedged, ex, body)
}

#[test]
fn the_exporter_serves_the_watchers_view_and_follows_a_death() {
    const SERVING_UP: &str = "firma_sidecar_up{sandbox_id=\"serving\",agent_id=\"agent-s\",session_id=\"session-example\"}";
    let rt = runtime();
    let (serving, _wedged, mut ex, body) = serving_wedged_broken(
        rt.path(),
        ["serving", "agent-s", "wedged"],
        "this is not = toml [",
    );
    for (series, value) in [
        (SERVING_UP, "1"),
        (
            "firma_sidecar_up{sandbox_id=\"wedged\",agent_id=\"agent-example\",session_id=\"session-example\"}",
            "0",
        ),
        ("firma_sidecars{state=\"running\"}", "1"),
        ("firma_sidecars{state=\"unhealthy\"}", "1"),
        ("firma_runtime_dir_up", "1"),
        ("firma_watch_synced", "1"),
    ] {
        assert_eq!(sample(&body, series).as_deref(), Some(value), "{series}");
    }
    assert!(
        body.contains("firma_sidecar_start_time_seconds{sandbox_id=\"serving\"} "),
        "{body}"
    );
    // The policy is counted per host, not per sidecar.
    assert!(
        body.lines()
            .any(|l| l.starts_with("firma_sidecars_by_policy{authority_url=") && l.ends_with(" 2")),
        "{body}"
    );
    // No pid on any series.
    assert!(!body.contains("pid="), "{body}");

    // The death is seen without a scan at scrape time: the pidfd wakes the
    // watcher, which collects the marker.
    serving.kill_and_reap();
    let body = ex.wait_metrics("the death", |b| {
        sample(b, "firma_markers_collected_total").as_deref() == Some("1")
    });
    assert_eq!(sample(&body, SERVING_UP), None);
    assert_eq!(
        sample(&body, "firma_sidecars{state=\"running\"}").as_deref(),
        Some("0")
    );
    assert!(!rt.path().join("run/serving").exists());
}

#[test]
fn formats_gzip_and_routes_are_negotiated() {
    let rt = runtime();
    let _s = Sidecar::start(rt.path(), "s", &[]);
    let mut ex = Exporter::start(rt.path(), &[]);
    ex.wait_healthy();

    let (status, head, body) = ex
        .get(
            "/metrics",
            &[(
                "Accept",
                "application/openmetrics-text; version=1.0.0,text/plain;q=0.5",
            )],
        )
        .unwrap();
    let body = String::from_utf8(body).unwrap();
    assert_eq!(status, 200);
    assert!(
        head.contains("application/openmetrics-text; version=1.0.0"),
        "{head}"
    );
    assert!(body.ends_with("# EOF\n"), "{body}");
    assert!(
        body.contains("# TYPE firma_markers_collected counter\nfirma_markers_collected_total 0\n")
    );
    assert!(body.contains("# TYPE firma_build info\nfirma_build_info{"));

    let (_, head, body) = ex.get("/metrics", &[("Accept", "text/plain")]).unwrap();
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    assert!(!String::from_utf8(body).unwrap().contains("# EOF"));

    let (status, head, gz) = ex.get("/metrics", &[("Accept-Encoding", "gzip")]).unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-encoding: gzip"),
        "{head}"
    );
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "gzip magic");
    let mut gunzip = Command::new("gzip")
        .arg("-dc")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    gunzip.stdin.take().unwrap().write_all(&gz).unwrap();
    let plain = String::from_utf8(gunzip.wait_with_output().unwrap().stdout).unwrap();
    assert!(
        plain.contains("firma_sidecar_up{sandbox_id=\"s\","),
        "{plain}"
    );

    assert_eq!(ex.get("/healthz", &[]).unwrap().0, 200);
    assert_eq!(ex.get("/nope", &[]).unwrap().0, 404);
}

/// The warning lines of `stderr`.
fn warnings(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("firma: warning: "))
        .collect()
}

/// A runtime directory that fails the core's trust checks (here: writable
/// by others) is warned about by the exporter and the textfile mode, once
/// and in the words of `status`; the exposition is still served.
#[test]
fn an_untrusted_runtime_dir_is_warned_about_once_in_the_words_of_status() {
    use std::os::unix::fs::PermissionsExt;
    let rt = runtime();
    std::fs::set_permissions(rt.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let (code, _, err) = crate::common::firma_in(rt.path(), &["sidecar", "status"]);
    assert_eq!(code, 0, "{err}");
    let status = warnings(&err);
    assert_eq!(status.len(), 1, "{err}");
    assert!(status[0].contains("is not trusted"), "{err}");

    let (code, out, err) = crate::common::firma_in(rt.path(), &["sidecar", "metrics"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(warnings(&err), status, "sidecar metrics:\n{err}");
    assert!(out.contains("firma_runtime_dir_up 1\n"), "{out}");

    let mut ex = Exporter::start(rt.path(), &["--inspect-interval-ms", "100"]);
    ex.wait_healthy();
    // Several inspect passes and scrapes later, still the one warning.
    ex.wait_metrics("a second inspect pass", |b| {
        b.contains("firma_scan_timestamp_seconds ")
    });
    std::thread::sleep(Duration::from_millis(300));
    ex.wait_metrics("a scrape", |_| true);
    let log = ex.log();
    assert_eq!(warnings(&log), status, "sidecar exporter:\n{log}");
}

#[test]
fn a_missing_runtime_dir_is_runtime_dir_up_0_and_a_unix_socket_serves() {
    let rt = runtime();
    let missing = rt.path().join("missing");
    let sock = rt.path().join("exporter.sock");
    let log = rt.path().join("exporter.log");
    let mut ex = Exporter::start_with(
        &mut Command::new("env"),
        &missing,
        sock.to_str().unwrap(),
        &[],
        log,
    );
    let body = ex.wait_metrics("a scrape over the socket", |_| true);
    assert_eq!(sample(&body, "firma_runtime_dir_up").as_deref(), Some("0"));
    assert_eq!(
        sample(&body, "firma_sidecars{state=\"running\"}").as_deref(),
        Some("0")
    );
    // SIGTERM ends it with status 0 and removes its socket.
    let status = ex.terminate();
    assert_eq!(status.code(), Some(0), "{}", ex.log());
    assert!(!sock.exists());
}

#[test]
#[ignore = "needs promtool: run by `make test-metrics`"]
fn exporter_promtool_checks_the_exposition_and_the_rules() {
    let rt = runtime();
    let (_s, _w, _ex, body) = serving_wedged_broken(rt.path(), ["s", "a\"}\n# x", "w"], "nope [");
    // promtool (2.42) parses the text format 0.0.4 only; the OpenMetrics
    // form is read by a real Prometheus in the fleet test, which asks for
    // it first.
    let (_, tested) = promtool_checks(
        &[&body],
        "docs/prometheus/exporter-rules.yml",
        "docs/prometheus/exporter-rules.test.yml",
    );
    assert!(tested.contains("SUCCESS"), "{tested}");
}

#[test]
#[ignore = "needs systemd-analyze: run by `make test-metrics`"]
fn exporter_unit_passes_systemd_analyze_verify() {
    // verify wants the ExecStart binary at its path: check copies pointing
    // at the one cargo built. The textfile's service and timer too.
    let dir = tempfile::tempdir().unwrap();
    let mut copies = Vec::new();
    for name in [
        "firma-exporter.service",
        "firma-metrics.service",
        "firma-metrics.timer",
    ] {
        let unit =
            std::fs::read_to_string(repo_file(&format!("packaging/systemd/{name}"))).unwrap();
        if name == "firma-exporter.service" {
            assert!(unit.contains("ExecStart=/usr/bin/firma "), "{unit}");
            assert!(unit.contains(" sidecar exporter "), "{unit}");
            assert!(unit.contains("\nCapabilityBoundingSet=\n"), "{unit}");
        }
        let copy = dir.path().join(name);
        std::fs::write(&copy, unit.replace("/usr/bin/firma", FIRMA)).unwrap();
        copies.push(copy.to_str().unwrap().to_owned());
    }
    let mut args = vec!["verify", "--man=no"];
    args.extend(copies.iter().map(String::as_str));
    let (code, out) = run_tool("systemd-analyze", &args, b"");
    assert_eq!((code, out.as_str()), (0, ""), "systemd-analyze verify");
}
