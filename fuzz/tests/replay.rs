//! The fuzz harnesses without libFuzzer: every committed seed, then a
//! deterministic stream of pseudo-random inputs, through both targets. This
//! is what `make test-reliability` can run even where cargo-fuzz is absent,
//! and it shows a seed still decodes to what it was chosen for.
//!
//! `cargo test -- --ignored regenerate_seeds` rewrites `seeds/` by rejection
//! sampling: for each trait of a decoded input (a stale marker, a symlink
//! out of run/, a FIFO named metadata.toml, a non-UTF-8 id, ...) it keeps
//! the first pseudo-random input that has it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use firma_stack_fuzz::{c_abi, marker_dir};

type Harness = fn(&[u8]);
type Features = fn(&[u8]) -> Vec<String>;

const TARGETS: &[(&str, Harness, Features)] = &[
    ("marker_dir", marker_dir::run, marker_dir::features),
    ("c_abi", c_abi::run, c_abi::features),
];

fn seeds_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("seeds")
        .join(target)
}

/// xorshift64*, shared with the watch churn test.
#[path = "../../tests/common/xorshift.rs"]
#[allow(dead_code)]
mod xorshift;
use xorshift::Rng;

fn random_inputs() -> usize {
    std::env::var("FUZZ_REPLAY_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300)
}

/// One test, so the harnesses' one-time environment setup happens before
/// any other thread could read the environment.
#[test]
fn seeds_and_random_inputs_keep_every_invariant() {
    for (target, run, _) in TARGETS {
        let mut seeds: Vec<_> = std::fs::read_dir(seeds_dir(target))
            .unwrap_or_else(|e| panic!("seeds/{target}: {e}"))
            .map(|e| e.unwrap().path())
            .collect();
        seeds.sort();
        assert!(!seeds.is_empty(), "no seeds for {target}");
        let timing = std::env::var_os("FUZZ_REPLAY_TIMING").is_some();
        for seed in &seeds {
            let t = std::time::Instant::now();
            run(&std::fs::read(seed).unwrap());
            if timing {
                eprintln!("{:>8.1?} {}", t.elapsed(), seed.display());
            }
        }
        let mut rng = Rng(0x5EED_F1A7 ^ target.len() as u64);
        for _ in 0..random_inputs() {
            run(&rng.bytes());
        }
    }
}

#[test]
#[ignore = "rewrites seeds/; run by hand"]
fn regenerate_seeds() {
    for (target, _, features) in TARGETS {
        let mut chosen: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut rng = Rng(0xC0FF_EE00 ^ target.len() as u64);
        for _ in 0..200_000 {
            let input = rng.bytes();
            for f in features(&input) {
                chosen.entry(f).or_insert_with(|| input.clone());
            }
        }
        let dir = seeds_dir(target);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, input) in &chosen {
            std::fs::write(dir.join(name), input).unwrap();
        }
        eprintln!("{target}: {} seeds", chosen.len());
    }
}
