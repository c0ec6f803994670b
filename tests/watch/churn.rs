//! A seeded churn run: random starts, SIGKILLs, socket removals and marker
//! rewrites of real sidecars while a watcher streams, then, once quiet,
//! the stream's model must equal what `list` returns. The seed is printed;
//! `FIRMA_CHURN_SEED=<seed>` replays a run and `FIRMA_CHURN_OPS=<n>`
//! lengthens it (a short run by default).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common::xorshift::Rng;
use crate::common::*;
use firma_stack::sidecar_markers::{Event, WatchOptions, watch};

fn seed() -> u64 {
    std::env::var("FIRMA_CHURN_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            (t.as_nanos() as u64) | 1
        })
}

fn model(
    state: &BTreeMap<String, firma_stack::sidecar_markers::SidecarEntry>,
) -> BTreeMap<String, String> {
    state
        .iter()
        .map(|(k, v)| (k.clone(), v.state.as_str().to_owned()))
        .collect()
}

#[test]
fn seeded_churn_ends_with_the_state_list_returns() {
    let seed = seed();
    let ops: usize = std::env::var("FIRMA_CHURN_OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    eprintln!("churn: FIRMA_CHURN_SEED={seed} FIRMA_CHURN_OPS={ops}");
    let mut rng = Rng(seed);
    let rt = runtime();
    let opts = WatchOptions {
        probe_interval: Duration::from_millis(200),
        ..WatchOptions::default()
    };
    let mut w = watch(rt.path(), &opts).unwrap();
    let mut state = BTreeMap::new();
    let resync_open = std::cell::Cell::new(false);
    let take = |w: &mut firma_stack::sidecar_markers::Watcher,
                state: &mut BTreeMap<_, _>,
                wait: Duration|
     -> bool {
        match w.next(Some(wait)).unwrap() {
            Some(ev) => {
                match &ev {
                    Event::Resync { .. } => resync_open.set(true),
                    Event::Synced { .. } => resync_open.set(false),
                    _ => {}
                }
                ev.apply(state);
                true
            }
            None => false,
        }
    };
    let mut live: Vec<Sidecar> = Vec::new();
    let mut started = 0usize;
    let mut done = Vec::new();
    for _ in 0..ops {
        let op = if live.is_empty() { 0 } else { rng.below(5) };
        match op {
            0 | 1 => {
                live.push(Sidecar::start(rt.path(), &format!("ch-{started:03}"), &[]));
                started += 1;
                done.push("start");
            }
            2 => {
                let sc = live.remove(rng.below(live.len()));
                sc.kill_and_reap();
                done.push("kill");
            }
            3 => {
                let sc = &live[rng.below(live.len())];
                let _ = std::fs::remove_file(sc.marker.join("sidecar.sock"));
                done.push("unlink-socket");
            }
            _ => {
                // The writer's way: a new metadata.toml renamed over the old.
                let sc = &live[rng.below(live.len())];
                let path = sc.marker.join("metadata.toml");
                if let Ok(text) = std::fs::read_to_string(&path) {
                    let tmp = sc.marker.join(".metadata.toml.tmp");
                    let n = rng.below(1000);
                    let text = text.replace("session_id = \"", &format!("session_id = \"s{n}-"));
                    std::fs::write(&tmp, text).unwrap();
                    std::fs::rename(&tmp, &path).unwrap();
                }
                done.push("rewrite");
            }
        }
        // Read part of the stream now and then, not all of it.
        while rng.below(3) != 0 && take(&mut w, &mut state, Duration::ZERO) {}
    }
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        while take(&mut w, &mut state, Duration::from_millis(500)) {}
        let listed: BTreeMap<String, String> = firma_stack::sidecar_markers::list(rt.path())
            .unwrap()
            .into_iter()
            .map(|e| (e.sandbox_id, e.state.as_str().to_owned()))
            .collect();
        if model(&state) == listed && !resync_open.get() {
            break;
        }
        assert!(
            Instant::now() < end,
            "seed {seed}: the stream never matched list after {done:?}\nwatch: {:?}\nlist: {listed:?}\nresync open: {}",
            model(&state),
            resync_open.get()
        );
    }
    eprintln!(
        "churn: seed {seed}: {} operations, {} live at the end, matched list",
        done.len(),
        live.len()
    );
}
