//! Watch latency and idle cost, printed as numbers (BENCHMARKS.md targets):
//!
//! - SIGKILL → `gone` over 20 kills (median / worst), against polling
//!   `list` at 1 Hz for the same kills;
//! - new marker → `appeared`;
//! - watching 1,000 live markers idle with a 5 s probe interval: CPU time
//!   of this process over wall time.
//!
//! `cargo run --release --example watch_latency` (Linux). Markers name real
//! `sleep` processes; killing one makes its marker stale.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use firma_stack::sidecar_markers::{Event, WatchOptions, create_marker, list, watch};

// The integration tests' marker, so the example writes what they do.
#[path = "../tests/common/marker_meta.rs"]
mod marker_meta;
use marker_meta::meta;

fn sleeper() -> Child {
    Command::new("sleep")
        .arg("3600")
        .spawn()
        .expect("spawn sleep")
}

fn cpu_time() -> Duration {
    // SAFETY: getrusage fills a local struct.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Calls `step` with the time left until `window` has passed, over and over
/// until it has; returns the CPU time this process spent meanwhile and the
/// wall time.
fn cpu_over(window: Duration, mut step: impl FnMut(Duration)) -> (Duration, Duration) {
    let (c0, t0) = (cpu_time(), Instant::now());
    while t0.elapsed() < window {
        step(window.saturating_sub(t0.elapsed()));
    }
    (cpu_time() - c0, t0.elapsed())
}

/// `cpu` over `wall`, in percent of one core.
fn core_percent(cpu: Duration, wall: Duration) -> f64 {
    100.0 * cpu.as_secs_f64() / wall.as_secs_f64()
}

fn summary(name: &str, mut v: Vec<Duration>) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{name}: n={} median={:.2} ms worst={:.2} ms best={:.2} ms",
        v.len(),
        ms(v[v.len() / 2]),
        ms(*v.last().unwrap()),
        ms(v[0])
    );
}

fn main() {
    let rt = tempfile::Builder::new()
        .prefix("firma-watch-bench-")
        .tempdir()
        .unwrap();
    let dir = rt.path();
    let kills = 20;

    // 1. SIGKILL → gone, watching.
    let mut w = watch(dir, &WatchOptions::default()).unwrap();
    while !matches!(
        w.next(Some(Duration::from_secs(5))).unwrap(),
        Some(Event::Synced { .. })
    ) {}
    let mut gone = Vec::new();
    let mut appeared = Vec::new();
    for i in 0..kills {
        let mut s = sleeper();
        let id = format!("kill-{i}");
        let t0 = Instant::now();
        create_marker(dir, &meta(&id, s.id())).unwrap();
        let created = t0.elapsed();
        loop {
            if let Some(Event::Appeared { sandbox_id, .. }) =
                w.next(Some(Duration::from_secs(5))).unwrap()
                && sandbox_id == id
            {
                // From the marker's rename into run/ (the end of create).
                appeared.push(t0.elapsed().saturating_sub(created));
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let t1 = Instant::now();
        s.kill().unwrap();
        loop {
            if let Some(Event::Gone { sandbox_id, .. }) =
                w.next(Some(Duration::from_secs(5))).unwrap()
                && sandbox_id == id
            {
                gone.push(t1.elapsed());
                break;
            }
        }
        s.wait().unwrap();
    }
    drop(w);
    summary("watch: SIGKILL -> gone", gone);
    summary(
        "watch: marker renamed into run/ -> appeared (incl. probe)",
        appeared,
    );

    // 2. The same kills seen by polling list at 1 Hz.
    let mut polled = Vec::new();
    for i in 0..kills {
        let mut s = sleeper();
        let id = format!("poll-{i}");
        create_marker(dir, &meta(&id, s.id())).unwrap();
        // Kill at a pseudo-random phase of the poller's second.
        let phase = Duration::from_millis((i as u64 * 379) % 1000);
        let start = Instant::now();
        let mut next_poll = start;
        let mut killed_at = None;
        loop {
            let now = Instant::now();
            if killed_at.is_none() && now >= start + phase {
                // Left a zombie until the loop ends: list sees it stopped.
                s.kill().unwrap();
                killed_at = Some(Instant::now());
            }
            if now >= next_poll {
                let live = list(dir).unwrap();
                if let Some(k) = killed_at
                    && !live.iter().any(|e| e.sandbox_id == id)
                {
                    polled.push(k.elapsed());
                    break;
                }
                next_poll += Duration::from_secs(1);
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        s.wait().unwrap();
    }
    summary("list polled at 1 Hz: SIGKILL -> noticed", polled);

    // 3. Idle cost: 1,000 live markers, probe interval 5 s.
    let n = 1000;
    let sleepers: Vec<Child> = (0..50).map(|_| sleeper()).collect();
    for i in 0..n {
        create_marker(dir, &meta(&format!("idle-{i}"), sleepers[i % 50].id())).unwrap();
    }
    let opts = WatchOptions {
        probe_interval: Duration::from_secs(5),
        ..WatchOptions::default()
    };
    let mut w = watch(dir, &opts).unwrap();
    while !matches!(
        w.next(Some(Duration::from_secs(30))).unwrap(),
        Some(Event::Synced { .. })
    ) {}
    let window = Duration::from_secs(20);
    let mut events = 0;
    let (cpu, wall) = cpu_over(window, |left| {
        if w.next(Some(left)).unwrap().is_some() {
            events += 1;
        }
    });
    println!(
        "watch: {n} live markers idle, probe interval 5 s: {:.3}% of one core ({cpu:?} CPU over {wall:?}; {events} events)",
        core_percent(cpu, wall)
    );
    drop(w);
    let (cpu, wall) = cpu_over(window, |_| {
        let tick = Instant::now();
        list(dir).unwrap();
        std::thread::sleep(Duration::from_secs(1).saturating_sub(tick.elapsed()));
    });
    println!(
        "list polled at 1 Hz over the same {n} markers: {:.3}% of one core ({cpu:?} CPU over {wall:?})",
        core_percent(cpu, wall)
    );
    for mut s in sleepers {
        let _ = s.kill();
        let _ = s.wait();
    }
}
