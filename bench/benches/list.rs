//! Criterion figures for the in-process Rust calls: `list` over N real
//! healthy sidecars, `get` of one of them, and `gc_stale` over a freshly
//! laid down set of stale markers.
//!
//! Run with `make bench-criterion`. Sample counts are small so the whole
//! bench takes about a minute; the side-by-side comparison with the other
//! surfaces and the C floor is `make bench` (`firma-bench run`).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{
    BatchSize, BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, criterion_group,
    criterion_main,
};
use firma_bench::fleet::{Fleet, StaleSet};
use firma_stack::sidecar_markers as sm;

/// A fresh directory on tmpfs (where runtime dirs live) when there is one.
fn scratch(name: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!("firma-criterion-{}-{name}", std::process::id()))
}

fn sizes() -> Vec<usize> {
    // FIRMA_BENCH_SIZES=100,1000 (default) picks the fleets measured.
    std::env::var("FIRMA_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|v: &Vec<usize>| !v.is_empty())
        .unwrap_or_else(|| vec![100, 1_000])
}

/// A group with few, short samples: fleets are real processes, and the
/// whole bench should take about a minute.
fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .sampling_mode(SamplingMode::Flat);
    group
}

fn bench_list_get(c: &mut Criterion) {
    let mut group = group(c, "healthy");
    for n in sizes() {
        let fleet = Fleet::healthy(&scratch(&format!("fleet-{n}")), n)
            .expect("create a fleet of healthy sidecars");
        let dir = fleet.runtime.clone();
        group.bench_with_input(BenchmarkId::new("list", n), &n, |b, &n| {
            b.iter(|| {
                let v = sm::list(black_box(&dir)).expect("list");
                assert_eq!(v.len(), n);
                v
            })
        });
        let id = fleet.ids[n / 2].clone();
        group.bench_with_input(BenchmarkId::new("get", n), &n, |b, _| {
            b.iter(|| sm::get(black_box(&dir), black_box(&id)).expect("get"))
        });
        drop(fleet);
    }
    group.finish();
}

fn bench_gc(c: &mut Criterion) {
    let n = 1_000;
    let set = StaleSet::build(&scratch("stale-scratch"), n).expect("build stale markers");
    let dir = scratch("stale");
    let mut group = group(c, "stale");
    group.bench_function(BenchmarkId::new("gc_stale", n), |b| {
        b.iter_batched(
            || set.restore(&dir).expect("lay down stale markers"),
            |()| {
                let removed = sm::gc_stale(black_box(&dir)).expect("gc_stale");
                assert_eq!(removed.len(), n);
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, bench_list_get, bench_gc);
criterion_main!(benches);
