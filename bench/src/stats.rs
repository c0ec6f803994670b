//! Medians, paired ratios and spreads of samples, and how they are printed.

/// The median of `v` (NaN when empty).
pub fn median(v: &[f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let s = sorted(v);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn sorted(v: &[f64]) -> Vec<f64> {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    s
}

/// `a / b` for samples taken side by side: the median of the per-round
/// ratios when both have one sample per round, else the ratio of medians.
pub fn paired_ratio(a: &[f64], b: &[f64]) -> f64 {
    if a.len() == b.len() && !a.is_empty() {
        let r: Vec<f64> = a.iter().zip(b).map(|(x, y)| x / y).collect();
        median(&r)
    } else {
        median(a) / median(b)
    }
}

/// Half the interquartile range, relative to the median: `±x%` (empty
/// below three samples).
pub fn spread(v: &[f64]) -> String {
    if v.len() < 3 {
        return String::new();
    }
    let s = sorted(v);
    let q = |p: f64| s[((s.len() - 1) as f64 * p).round() as usize];
    format!("±{:.0}%", (q(0.75) - q(0.25)) / 2.0 / median(v) * 100.0)
}

/// Nanoseconds in the unit that suits them.
pub fn fmt_ns(ns: f64) -> String {
    if ns.is_nan() {
        "—".into()
    } else if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

pub fn fmt_ratio(r: f64) -> String {
    if r.is_nan() {
        "—".into()
    } else {
        format!("{r:.2}×")
    }
}
