//! What callers pass, checked once in the core: probe, scan and stop
//! options with the limits every surface takes from here (default and
//! longest probe timeout, grace period, kill wait, longest sandbox id), one
//! validation function per options type, and the sandbox-id grammar.
//!
//! The C ABI, the CLI and Python check some of these ranges at their own
//! edge too, to word the error in their own terms; the core's check is the
//! one that holds for every caller, Rust included.

use std::time::Duration;

use super::error::{Result, StackError};

/// Probe timeout used when the caller sets none.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(200);

/// Longest probe timeout any surface accepts (10 minutes). Every surface
/// takes its default and maximum from here.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(600);

/// Longest sandbox id, in bytes.
pub const MAX_SANDBOX_ID_LEN: usize = 255;

/// Per-call probe settings. Passed explicitly; there is no global state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// How long a connect to a sidecar's endpoint may take before the
    /// sidecar is reported `unhealthy`. Endpoints are probed concurrently,
    /// so a whole listing waits about one timeout at most.
    pub timeout: Duration,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

impl ProbeOptions {
    pub fn with_timeout(timeout: Duration) -> Self {
        ProbeOptions { timeout }
    }

    /// `Ok` when the timeout is more than 0 and at most [`MAX_TIMEOUT`]:
    /// the range the C ABI (1 to `FIRMA_MAX_TIMEOUT_MS` ms, 0 naming the
    /// default), the CLI (`--timeout-ms 1..=600000`), Python (`(0,
    /// MAX_TIMEOUT]` seconds) and `watch` accept. Every entry point that
    /// probes calls it once, so a Rust caller gets the same answer as any
    /// surface; else `invalid_argument` naming `timeout`.
    pub fn validate(&self) -> Result<()> {
        check_duration("timeout", self.timeout, MAX_TIMEOUT, Zero::Refused)
    }
}

/// Whether a duration option may be zero.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Zero {
    /// More than 0 (a timeout, an interval).
    Refused,
    /// 0 is "no wait" (the grace period).
    Allowed,
}

/// The one check of a duration option: at most `max`, and more than zero
/// unless `zero` allows it; else `invalid_argument` naming `what`, with both
/// numbers in milliseconds.
pub(crate) fn check_duration(what: &str, d: Duration, max: Duration, zero: Zero) -> Result<()> {
    let (ms, max_ms) = (d.as_millis(), max.as_millis());
    let reason = match zero {
        Zero::Refused if d.is_zero() || d > max => {
            format!("{ms} ms is out of range (must be more than 0 and at most {max_ms} ms)")
        }
        Zero::Allowed if d > max => format!("{ms} ms is longer than the maximum, {max_ms} ms"),
        _ => return Ok(()),
    };
    Err(StackError::InvalidArgument {
        what: what.into(),
        reason,
    })
}

/// What one scan of `run/` does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanOptions {
    /// Probe the live sidecars and return them (`None`: judge liveness
    /// only, as `gc_stale` does).
    pub probe: Option<ProbeOptions>,
    /// Remove the stale markers (`false`: read-only; stale markers are
    /// neither listed nor removed).
    pub collect: bool,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            probe: Some(ProbeOptions::default()),
            collect: true,
        }
    }
}

impl ScanOptions {
    /// `Ok` when the probe options (if any) are: see
    /// [`ProbeOptions::validate`].
    pub fn validate(&self) -> Result<()> {
        self.probe.as_ref().map_or(Ok(()), ProbeOptions::validate)
    }
}

/// Grace period used when the caller sets none.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Longest grace period any surface accepts (10 minutes).
pub const MAX_GRACE: Duration = Duration::from_secs(600);

/// How long `stop` waits for the exit after `SIGKILL`. A process that
/// outlives it (stuck in uninterruptible sleep) is reported not exited.
pub const KILL_WAIT: Duration = Duration::from_secs(5);

/// How one `stop` proceeds. Passed explicitly; there is no global state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopOptions {
    /// The first signal sent (default `SIGTERM`). Any signal from 1 to
    /// `SIGRTMAX`.
    pub signal: i32,
    /// How long to wait for the exit after the first signal (default 10 s,
    /// at most [`MAX_GRACE`]).
    pub grace: Duration,
    /// Send `SIGKILL` when the process is still alive after the grace
    /// period (default `true`). With `false` it is left running, and so is
    /// its marker.
    pub kill: bool,
    /// Require a verified identity (default `true`). `false` is the unsafe
    /// opt-out for markers that record no identity (or come from another
    /// pid namespace): the pid is then signalled on the marker's word. A
    /// proof that the pid was reused is never overridden.
    pub verify_identity: bool,
}

impl Default for StopOptions {
    fn default() -> Self {
        StopOptions {
            signal: libc::SIGTERM,
            grace: DEFAULT_GRACE,
            kill: true,
            verify_identity: true,
        }
    }
}

impl StopOptions {
    /// `Ok` when the signal is one from 1 to `SIGRTMAX` and the grace period
    /// at most [`MAX_GRACE`]; else `invalid_argument` naming `signal` or
    /// `grace`. `stop` calls it first.
    pub fn validate(&self) -> Result<()> {
        check_signal(self.signal)?;
        check_duration("grace", self.grace, MAX_GRACE, Zero::Allowed)
    }
}

fn check_signal(sig: i32) -> Result<()> {
    if (1..=libc::SIGRTMAX()).contains(&sig) {
        Ok(())
    } else {
        Err(StackError::InvalidArgument {
            what: "signal".into(),
            reason: format!("{sig} is not a signal number in 1..={}", libc::SIGRTMAX()),
        })
    }
}

/// Checks a caller-supplied sandbox id against docs/design.md, "Invariants" (6): non-empty, at
/// most 255 bytes, only `[A-Za-z0-9._-]`, not starting with `.`.
pub fn validate_sandbox_id(id: &str) -> Result<()> {
    let bad = |reason: &str| {
        Err(StackError::InvalidSandboxId {
            id: id.to_owned(),
            reason: reason.to_owned(),
        })
    };
    if id.is_empty() {
        return bad("must not be empty");
    }
    if id.len() > MAX_SANDBOX_ID_LEN {
        return bad("longer than 255 bytes");
    }
    if id.starts_with('.') {
        return bad("must not start with '.' (reserved for temporary names)");
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return bad(&format!(
            "character {c:?} is not allowed (only A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// Whether an entry name of `run/` is a valid sandbox id (only such
/// entries can be markers).
pub(crate) fn is_valid_sandbox_id(name: &[u8]) -> bool {
    std::str::from_utf8(name).is_ok_and(|s| validate_sandbox_id(s).is_ok())
}
