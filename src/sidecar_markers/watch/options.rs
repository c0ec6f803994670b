//! How a watcher runs: [`WatchOptions`], its defaults and the ranges it
//! accepts, checked here once for every surface.

use std::time::Duration;

use crate::sidecar_markers::ProbeOptions;
use crate::sidecar_markers::error::Result;
use crate::sidecar_markers::options::{Zero, check_duration};

/// Longest probe or rescan interval accepted (one day).
pub const MAX_WATCH_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// How a [`Watcher`](super::Watcher) judges and what it may remove.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// Probe settings (timeout), as for `list`.
    pub probe: ProbeOptions,
    /// How often every known sidecar is judged again and its endpoint
    /// probed (default 1 s). Exits are seen at once through pidfds; this
    /// is what notices an endpoint that stops answering.
    pub probe_interval: Duration,
    /// Collect stale markers as `list` does (default `true`). With
    /// `false` the watcher is read-only and a stopped sidecar is reported
    /// `changed` to `stopped` (and stays until its marker is removed).
    pub collect: bool,
    /// How often all of `run/` is scanned again as a safety net (default
    /// 30 s).
    pub rescan_interval: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions {
            probe: ProbeOptions::default(),
            probe_interval: Duration::from_secs(1),
            collect: true,
            rescan_interval: Duration::from_secs(30),
        }
    }
}

impl WatchOptions {
    /// Refuses a probe timeout, probe interval or rescan interval out of
    /// range (`invalid_argument`, naming the option): each must be more
    /// than zero, the timeout at most [`MAX_TIMEOUT`] and the intervals at
    /// most [`MAX_WATCH_INTERVAL`].
    pub(super) fn validate(&self) -> Result<()> {
        self.probe.validate()?;
        let interval = |what, d| check_duration(what, d, MAX_WATCH_INTERVAL, Zero::Refused);
        interval("probe_interval", self.probe_interval)?;
        interval("rescan_interval", self.rescan_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::{MAX_TIMEOUT, StackError};

    #[test]
    fn defaults() {
        let o = WatchOptions::default();
        assert_eq!(o.probe, ProbeOptions::default());
        assert_eq!(o.probe_interval, Duration::from_secs(1));
        assert_eq!(o.rescan_interval, Duration::from_secs(30));
        assert!(o.collect);
        assert!(o.validate().is_ok());
        assert_eq!(MAX_WATCH_INTERVAL, Duration::from_secs(86_400));
    }

    /// Each bound, just inside and just outside, with the option named
    /// and the reason as every surface shows it.
    #[test]
    fn ranges_are_checked_at_both_ends() {
        let ms = Duration::from_millis;
        type Set = fn(&mut WatchOptions, Duration);
        let table: [(&str, Set, Duration); 3] = [
            ("timeout", |o, d| o.probe.timeout = d, MAX_TIMEOUT),
            (
                "probe_interval",
                |o, d| o.probe_interval = d,
                MAX_WATCH_INTERVAL,
            ),
            (
                "rescan_interval",
                |o, d| o.rescan_interval = d,
                MAX_WATCH_INTERVAL,
            ),
        ];
        for (name, set, max) in table {
            for ok in [ms(1), max] {
                let mut o = WatchOptions::default();
                set(&mut o, ok);
                assert!(o.validate().is_ok(), "{name} = {ok:?}");
            }
            for bad in [Duration::ZERO, max + ms(1)] {
                let mut o = WatchOptions::default();
                set(&mut o, bad);
                match o.validate() {
                    Err(StackError::InvalidArgument { what, reason }) => {
                        assert_eq!(what, name);
                        assert_eq!(
                            reason,
                            format!(
                                "{} ms is out of range (must be more than 0 and at most {} ms)",
                                bad.as_millis(),
                                max.as_millis()
                            )
                        );
                    }
                    other => panic!("{name} = {bad:?}: {other:?}"),
                }
            }
        }
    }

    /// The timeout is checked first, then the probe interval, then the
    /// rescan interval: the first bad one is the one named.
    #[test]
    fn the_first_bad_option_is_named() {
        let o = WatchOptions {
            probe: ProbeOptions {
                timeout: Duration::ZERO,
            },
            probe_interval: Duration::ZERO,
            collect: true,
            rescan_interval: Duration::ZERO,
        };
        let what = |o: &WatchOptions| match o.validate() {
            Err(StackError::InvalidArgument { what, .. }) => what,
            other => panic!("{other:?}"),
        };
        assert_eq!(what(&o), "timeout");
        let o = WatchOptions {
            probe: ProbeOptions::default(),
            ..o
        };
        assert_eq!(what(&o), "probe_interval");
        let o = WatchOptions {
            probe_interval: Duration::from_secs(1),
            ..o
        };
        assert_eq!(what(&o), "rescan_interval");
    }
}
