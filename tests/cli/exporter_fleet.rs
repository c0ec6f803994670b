//! A fleet on Prometheus (docs/design.md, "Metrics", exporter): three
//! simulated hosts, each a network namespace with its own runtime
//! directory, real example sidecars and a `firma sidecar exporter`
//! listening on the namespace's own address; one real Prometheus in the
//! root namespace scraping all three every second with
//! docs/prometheus/exporter-rules.yml loaded, and a real Alertmanager
//! routing to a webhook receiver in this test.
//!
//! Wiring: host i is netns `ff<pid>h<i>`, joined to the root namespace by
//! a veth pair, root side 10.X.i.1/24, host side 10.X.i.2/24 (X from the
//! test's pid), the exporter on 10.X.i.2:9847. The sidecars speak over
//! Unix sockets in their marker directories, which no network namespace
//! separates, so they run in the root namespace; what makes a host is its
//! runtime directory and its exporter's address.
//!
//! Needs root, `ip`, prometheus and prometheus-alertmanager: `#[ignore]`d
//! here, run by `make test-metrics` (which installs them); a missing tool
//! fails, never skips.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::exporter::Exporter;
use super::tools::{Guarded, free_port, prometheus_server, repo_file};
use crate::common::{Sidecar, need_root, runtime};

/// Runs a command that must succeed.
fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// One simulated host's network: a namespace and a veth pair; deleted on
/// drop (deleting the namespace deletes both ends).
struct Netns {
    name: String,
    addr: String,
}

impl Netns {
    fn create(i: u8) -> Netns {
        let pid = std::process::id();
        let name = format!("ff{pid}h{i}");
        let (root_end, host_end) = (format!("fv{pid}r{i}"), format!("fv{pid}h{i}"));
        let net = format!("10.{}.{i}", 100 + pid % 100);
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        sh(&["ip", "netns", "add", &name]);
        let ns = Netns {
            name: name.clone(),
            addr: format!("{net}.2"),
        };
        sh(&[
            "ip", "link", "add", &root_end, "type", "veth", "peer", "name", &host_end,
        ]);
        sh(&["ip", "link", "set", &host_end, "netns", &name]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("{net}.1/24"),
            "dev",
            &root_end,
        ]);
        sh(&["ip", "link", "set", &root_end, "up"]);
        for cmd in [
            vec![
                "ip",
                "addr",
                "add",
                &format!("{net}.2/24"),
                "dev",
                &host_end,
            ],
            vec!["ip", "link", "set", &host_end, "up"],
            vec!["ip", "link", "set", "lo", "up"],
        ] {
            let mut full = vec!["ip", "netns", "exec", &name];
            full.extend(cmd.iter().map(|s| &**s));
            sh(&full);
        }
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
        .ok()?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).ok()?;
    let (head, body) = raw.split_once("\r\n\r\n")?;
    head.contains(" 200 ").then(|| body.to_owned())
}

/// An instant query: label sets → value.
fn query(port: u16, q: &str) -> Option<BTreeMap<BTreeMap<String, String>, String>> {
    let body = http_get(port, &format!("/api/v1/query?query={}", encode(q)))?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let result = v["data"]["result"].as_array()?;
    Some(
        result
            .iter()
            .map(|r| {
                (
                    serde_json::from_value(r["metric"].clone()).unwrap(),
                    r["value"][1].as_str().unwrap().to_owned(),
                )
            })
            .collect(),
    )
}

/// `sum by (instance) (...)` as instance → value.
fn by_instance(port: u16, q: &str) -> BTreeMap<String, String> {
    query(port, q)
        .unwrap_or_default()
        .into_iter()
        .map(|(l, v)| (l.get("instance").cloned().unwrap_or_default(), v))
        .collect()
}

/// The webhook receiver: every POST body, on a channel.
fn webhook() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut reader = BufReader::new(conn.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end();
                if l.is_empty() {
                    break;
                }
                if let Some((k, v)) = l.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            if tx
                .send(String::from_utf8_lossy(&body).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    (port, rx)
}

/// A simulated host: its exporter (killed first on drop), sidecars,
/// runtime directory, network namespace, and the exporter's address.
type Host = (
    Exporter,
    BTreeMap<String, Sidecar>,
    tempfile::TempDir,
    Netns,
    String,
);

fn wait(what: &str, within: Duration, servers: &mut [&mut Guarded], mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        for s in servers.iter_mut() {
            s.check_alive();
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root, ip, prometheus and prometheus-alertmanager: run by `make test-metrics`"]
fn exporter_fleet_of_three_hosts_on_prometheus_and_alertmanager() {
    need_root("network namespaces");
    let started = Instant::now();
    let work = tempfile::tempdir().unwrap();

    // Three hosts: (sidecars serving, sidecars wedged).
    let plan: [(&[&str], &[&str]); 3] = [
        (&["a", "b"], &[]),
        (&["a", "b", "c"], &[]),
        (&["a"], &["w"]),
    ];
    let mut hosts = Vec::new();
    for (i, (serving, wedged)) in plan.iter().enumerate() {
        let i = u8::try_from(i + 1).unwrap();
        let ns = Netns::create(i);
        let rt = runtime();
        let mut sidecars = BTreeMap::new();
        for id in *serving {
            let sid = format!("h{i}-{id}");
            sidecars.insert(sid.clone(), Sidecar::start(rt.path(), &sid, &[]));
        }
        for id in *wedged {
            let sid = format!("h{i}-{id}");
            sidecars.insert(
                sid.clone(),
                Sidecar::start(rt.path(), &sid, &["--mode", "wedged"]),
            );
        }
        let listen = format!("{}:9847", ns.addr);
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns.name]);
        let mut ex = Exporter::start_with(
            &mut cmd,
            rt.path(),
            &listen,
            &[],
            work.path().join(format!("exporter{i}.log")),
        );
        ex.wait_healthy();
        hosts.push((ex, sidecars, rt, ns, listen));
    }

    // Alertmanager → the webhook, grouping nothing away.
    let (hook_port, alerts) = webhook();
    let am_port = free_port();
    let am_config = work.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'instance']\n  group_wait: 1s\n\
             \x20 group_interval: 1s\n  repeat_interval: 1h\n\
             receivers:\n  - name: hook\n    webhook_configs:\n\
             \x20     - url: http://127.0.0.1:{hook_port}/\n        send_resolved: false\n"
        ),
    )
    .unwrap();
    let mut am = prometheus_server("prometheus-alertmanager", &am_config, work.path(), am_port);

    // Prometheus scraping the three hosts every second, with the rules.
    let targets: Vec<String> = hosts.iter().map(|h| format!("'{}'", h.4)).collect();
    let pr_port = free_port();
    let config = work.path().join("prometheus.yml");
    let rules = repo_file("docs/prometheus/exporter-rules.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{am_port}']\n\
             scrape_configs:\n  - job_name: firma-exporter\n    static_configs:\n\
             \x20     - targets: [{targets}]\n",
            rules = rules.display(),
            targets = targets.join(", ")
        ),
    )
    .unwrap();
    let mut pr = prometheus_server("prometheus", &config, work.path(), pr_port);
    // Waits (at most `secs` s) until `f` holds, failing if either server exits.
    let mut until = |what: &str, secs: u64, f: &mut dyn FnMut() -> bool| {
        wait(what, Duration::from_secs(secs), &mut [&mut pr, &mut am], f)
    };

    let truth = |hosts: &[Host]| {
        hosts
            .iter()
            .map(|h| {
                let running = h.1.keys().filter(|id| !id.ends_with("-w")).count();
                (h.4.clone(), running.to_string())
            })
            .collect::<BTreeMap<_, _>>()
    };
    let running_q = r#"sum by (instance) (firma_sidecars{state="running"})"#;
    let want = truth(&hosts);
    until(
        "all three hosts scraped, running counts true",
        45,
        &mut || {
            by_instance(pr_port, r#"up{job="firma-exporter"}"#)
                .values()
                .filter(|v| *v == "1")
                .count()
                == 3
                && by_instance(pr_port, running_q) == want
        },
    );
    // Prometheus asks for OpenMetrics first, and parses it (a malformed
    // OpenMetrics body would make `up` 0): every exporter says it served
    // that format, and the info type came through.
    let om = r#"firma_exporter_scrapes_total{format="openmetrics"} > 0"#;
    until(
        "OpenMetrics scrapes counted by every exporter",
        10,
        &mut || by_instance(pr_port, om).len() == 3,
    );
    let build = by_instance(pr_port, "firma_build_info");
    assert_eq!(build.len(), 3, "{build:?}");
    let up_w = query(pr_port, r#"firma_sidecar_up{sandbox_id="h3-w"}"#).unwrap();
    assert_eq!(up_w.values().collect::<Vec<_>>(), ["0"], "{up_w:?}");

    // Kill a sidecar on host 2.
    let h2 = hosts[1].4.clone();
    let killed_at = Instant::now();
    hosts[1].1.remove("h2-b").unwrap().kill_and_reap();
    let want = truth(&hosts);
    until("Prometheus sees the death on host 2", 20, &mut || {
        by_instance(pr_port, "firma_markers_collected_total")
            .get(&h2)
            .map(String::as_str)
            == Some("1")
            && query(pr_port, r#"firma_sidecar_up{sandbox_id="h2-b"}"#)
                .is_some_and(|r| r.is_empty())
            && by_instance(pr_port, running_q) == want
    });
    let seen = killed_at.elapsed();

    // The alert reaches the webhook, for host 2 only, within a bound.
    let bound = Duration::from_secs(30);
    let body = loop {
        let left = bound.saturating_sub(killed_at.elapsed());
        let body = alerts.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "no FirmaSidecarDied alert within {bound:?}; alertmanager:\n{}",
                am.log()
            )
        });
        if body.contains("FirmaSidecarDied") {
            break body;
        }
    };
    let arrived = killed_at.elapsed();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let fired: Vec<&str> = v["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["labels"]["alertname"] == "FirmaSidecarDied")
        .map(|a| a["labels"]["instance"].as_str().unwrap())
        .collect();
    assert_eq!(fired, [h2.as_str()], "{body}");

    // Every rule of the file loaded and evaluates without error.
    let rules: serde_json::Value =
        serde_json::from_str(&http_get(pr_port, "/api/v1/rules").unwrap()).unwrap();
    let mut evaluated = 0;
    for g in rules["data"]["groups"].as_array().unwrap() {
        for r in g["rules"].as_array().unwrap() {
            assert_eq!(r["health"], "ok", "{r}");
            evaluated += 1;
        }
    }
    assert_eq!(evaluated, 9, "{rules}");

    // Every host's count still equals the truth, and each exporter agrees.
    assert_eq!(by_instance(pr_port, running_q), want);
    for h in &mut hosts {
        let direct = h.0.wait_metrics("direct scrape", |_| true);
        let running = direct
            .lines()
            .find_map(|l| l.strip_prefix("firma_sidecars{state=\"running\"} "))
            .unwrap()
            .to_owned();
        assert_eq!(Some(&running), want.get(&h.4));
    }
    eprintln!(
        "fleet: death visible in Prometheus after {seen:?}, alert at the webhook after {arrived:?}, whole test {:?}",
        started.elapsed()
    );
}
