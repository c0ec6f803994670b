//! System-call counts of a whole process, from `strace -f -c`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::Res;

/// Per-syscall counts, by name.
pub type Counts = BTreeMap<String, u64>;

/// Whether `strace` can be run at all.
pub fn available() -> bool {
    Command::new("strace").arg("-V").output().is_ok()
}

/// Runs the program and arguments of `cmd` under `strace -f -c -o
/// out_file` and returns the call count of every syscall in its summary.
pub fn counts(out_file: &Path, cmd: &Command) -> Res<Counts> {
    let program = cmd.get_program();
    let status = Command::new("strace")
        .args(["-f", "-c", "-o"])
        .arg(out_file)
        .arg("--")
        .arg(program)
        .args(cmd.get_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .map_err(|e| format!("strace: {e}"))?;
    if !status.success() {
        return Err(format!("strace {program:?} failed: {status}"));
    }
    let text = std::fs::read_to_string(out_file).map_err(|e| e.to_string())?;
    Ok(parse_summary(&text))
}

/// The table of an `strace -c` summary: the rows between the two dashed
/// lines, `% time  seconds  usecs/call  calls  [errors]  syscall`.
fn parse_summary(text: &str) -> Counts {
    let mut counts = BTreeMap::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.starts_with("------") {
            if in_table {
                break;
            }
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() >= 5
            && let Ok(calls) = f[3].parse::<u64>()
        {
            counts.insert(f[f.len() - 1].to_owned(), calls);
        }
    }
    counts
}

/// Per-marker counts: (at N minus at zero) / N, per syscall, most first.
pub fn per_marker(at_n: &Counts, at_0: &Counts, n: usize) -> Vec<(String, f64)> {
    let mut v: Vec<(String, f64)> = at_n
        .iter()
        .map(|(k, &c)| {
            let base = at_0.get(k).copied().unwrap_or(0);
            (k.clone(), (c as f64 - base as f64) / n as f64)
        })
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v
}
