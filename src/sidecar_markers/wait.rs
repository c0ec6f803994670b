//! Waiting for sidecars to reach a state, on the watcher's events instead
//! of polling (docs/design.md, "Waiting"): [`wait`] opens a read-only
//! [`Watcher`](super::Watcher), and after its first `synced` judges the
//! named ids after every event until each meets the condition or the
//! timeout passes. The watcher's pidfds see an exit at once, its inotify
//! watches a marker appearing or going; an endpoint that starts or stops
//! serving is seen at the next probe round (`probe_interval`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::error::{Result, StackError};
use super::model::{SidecarEntry, State};
use super::options::validate_sandbox_id;
use super::watch::{Event, MAX_WATCH_INTERVAL, WatchOptions, watch};
use super::{ProbeOptions, macros::display_as_str};

/// What [`wait`] waits for, for every id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WaitFor {
    /// The sidecar's marker exists and its state is `running`.
    Running,
    /// The sidecar has no marker, or its process has provably stopped
    /// (state `stopped`; its marker is left for gc).
    Gone,
}

impl WaitFor {
    pub fn as_str(self) -> &'static str {
        match self {
            WaitFor::Running => "running",
            WaitFor::Gone => "gone",
        }
    }

    fn met(self, entry: Option<&SidecarEntry>) -> bool {
        match self {
            WaitFor::Running => entry.is_some_and(|e| e.state == State::Running),
            WaitFor::Gone => entry.is_none_or(|e| e.state == State::Stopped),
        }
    }
}

display_as_str!(WaitFor);

/// How [`wait`] waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WaitOptions {
    pub condition: WaitFor,
    /// How long to wait at most (0: judge once, after the first full
    /// scan); at most [`MAX_WATCH_INTERVAL`].
    pub timeout: Duration,
    /// The probe settings, as for `list`.
    pub probe: ProbeOptions,
    /// How often endpoints are probed again while waiting (default 1 s).
    pub probe_interval: Duration,
}

impl Default for WaitOptions {
    fn default() -> Self {
        WaitOptions {
            condition: WaitFor::Running,
            timeout: Duration::from_secs(30),
            probe: ProbeOptions::default(),
            probe_interval: Duration::from_secs(1),
        }
    }
}

/// One id as [`wait`] last saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitStatus {
    pub sandbox_id: String,
    /// Its state; `None` when it has no marker.
    pub state: Option<State>,
    /// Whether it meets the condition.
    pub met: bool,
}

/// What [`wait`] ended with. Serializes as `{"condition", "met",
/// "waited_ms", "sidecars": [{"sandbox_id", "state", "met"}]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitOutcome {
    pub condition: WaitFor,
    /// True when every id met the condition before the timeout.
    pub met: bool,
    pub waited_ms: u64,
    /// Every id, in the order given.
    pub sidecars: Vec<WaitStatus>,
}

/// Waits until every one of `sandbox_ids` meets `opts.condition`, or
/// `opts.timeout` passes; a timeout is not an error (`met: false`).
/// Read-only: nothing is collected. Fails on an invalid id, no ids, bad
/// options (`invalid_argument`), or when the watcher cannot start (see
/// [`watch`]). A runtime directory that does not exist is waited on as
/// an empty one (every id `gone`).
pub fn wait(
    runtime_dir: impl AsRef<Path>,
    sandbox_ids: &[String],
    opts: &WaitOptions,
) -> Result<WaitOutcome> {
    let start = Instant::now();
    if sandbox_ids.is_empty() {
        return Err(StackError::InvalidArgument {
            what: "sandbox_ids".into(),
            reason: "no sandbox id to wait for".into(),
        });
    }
    for id in sandbox_ids {
        validate_sandbox_id(id)?;
    }
    if opts.timeout > MAX_WATCH_INTERVAL {
        return Err(StackError::InvalidArgument {
            what: "timeout".into(),
            reason: format!("at most {} s", MAX_WATCH_INTERVAL.as_secs()),
        });
    }
    let deadline = start + opts.timeout;
    let mut watcher = watch(
        runtime_dir,
        &WatchOptions {
            probe: opts.probe,
            probe_interval: opts.probe_interval,
            collect: false,
            ..WatchOptions::default()
        },
    )?;
    let mut synced = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match watcher.next(Some(left)) {
            Ok(Some(Event::Synced { .. })) => synced = true,
            Ok(_) => {}
            // Not the end of the stream: the watcher tries again later.
            Err(_) => {}
        }
        let all_met = synced && all(opts.condition, watcher.known(), sandbox_ids);
        if all_met || (synced && Instant::now() >= deadline) {
            return Ok(WaitOutcome {
                condition: opts.condition,
                met: all_met,
                waited_ms: u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX),
                sidecars: sandbox_ids
                    .iter()
                    .map(|id| {
                        let e = watcher.known().get(id);
                        WaitStatus {
                            sandbox_id: id.clone(),
                            state: e.map(|e| e.state),
                            met: opts.condition.met(e),
                        }
                    })
                    .collect(),
            });
        }
    }
}

fn all(cond: WaitFor, known: &BTreeMap<String, SidecarEntry>, ids: &[String]) -> bool {
    ids.iter().all(|id| cond.met(known.get(id)))
}
