//! Sidecar markers: find the sidecars alive on this host, probe whether they
//! serve, and collect the markers of runs that died.
//!
//! The on-disk contract, states and invariants are in `docs/design.md`; this
//! module is the one implementation every surface (C, Python, Go, CLI) calls.
//!
//! All file access goes through descriptors: `run/` is opened once and each
//! marker's `metadata.toml` is opened relative to it without following any
//! symlink (`openat2` with `RESOLVE_NO_SYMLINKS`, or `O_NOFOLLOW` component
//! by component), so a symlink planted in `run/` is never followed, listed
//! or removed. Each marker is read once per call, and the same verdict
//! decides both its state and whether it is collected.
//!
//! Before any of that, the runtime directory and `run/` are opened and
//! judged (`trust.rs`, docs/design.md, "Trust"): on a directory others
//! control nothing is collected, and what removes, signals or writes
//! refuses with `untrusted_directory`.
//!
//! Where things are: this file is the public calls and re-exports;
//! `model` the serialized types; `options` what callers pass and every
//! limit; `paths` the caller's paths and the default directory; `trust`
//! and `authority` whether a directory and a marker may be acted on;
//! `read` (with `metadata` and `endpoint`) reading one marker; `process`
//! its liveness; `probe` its endpoint; `assess` the verdict; `scan` a pass
//! over `run/`; `gc` and `reserved` removal and debris; `writer`, `stop`
//! (with `stop_lock`, `signal_names`), `watch` and `wait` the other
//! operations; `filter` selecting entries; `presence` whether the runtime
//! directory is there;
//! `sys` every raw system call.

// `unsafe` stands only in `sys/` (docs/design.md, "Code map"): the compiler
// holds every other module of the core to that.
#![deny(unsafe_code)]

mod assess;
mod authority;
mod endpoint;
mod error;
mod exposition;
mod filter;
mod gc;
mod host_pids;
mod macros;
mod metadata;
pub mod metrics;
mod model;
mod options;
mod paths;
mod presence;
mod probe;
mod process;
mod procfs;
mod read;
mod reserved;
mod scan;
mod signal_names;
mod stop;
mod stop_lock;
/// The crate's raw system calls (the metrics textfile is to use its
/// atomic writer).
#[allow(unsafe_code)]
pub(crate) mod sys;
pub mod text;
mod trust;
mod wait;
mod watch;
mod writer;

#[cfg(test)]
mod leak_tests;

use std::os::fd::AsFd;
use std::path::Path;

pub use error::{ErrorCode, ErrorInfo, Result, StackError};
pub use filter::{EventFilter, Filter};
pub use model::{
    MAX_PID, MarkerReport, MetadataFile, Problem, Reason, SidecarEntry, State, Verdict,
};
pub use options::{
    DEFAULT_GRACE, DEFAULT_TIMEOUT, KILL_WAIT, MAX_GRACE, MAX_SANDBOX_ID_LEN, MAX_TIMEOUT,
    ProbeOptions, ScanOptions, StopOptions, validate_sandbox_id,
};
pub use paths::default_runtime_dir;
pub use presence::{RuntimeDirState, marker_names, runtime_dir_state};
pub use read::MAX_METADATA_BYTES;
pub use scan::ScanReport;
pub use signal_names::{parse_signal, signal_name, signal_names};
pub use stop::{StopOutcome, stop};
pub use trust::check_runtime_dir;
pub use wait::{WaitFor, WaitOptions, WaitOutcome, WaitStatus, wait};
pub use watch::{
    Event, GoneReason, MAX_WATCH_INTERVAL, SharedWatcher, WatchOptions, Watcher, WatcherOwner,
    watch,
};
pub use writer::{create_marker, now_rfc3339, remove_marker};

use paths::caller_path;
use read::Loc;
use scan::Mode;

/// Reads and probes one marker directory (named by any path the caller
/// likes; the directory name must equal the marker's `sandbox_id`).
/// Nothing is removed.
pub fn probe_entry(marker_dir: impl AsRef<Path>) -> Result<SidecarEntry> {
    probe_entry_with(marker_dir, &ProbeOptions::default())
}

/// [`probe_entry`] with explicit probe options.
/// A timeout of 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`
/// ([`ProbeOptions::validate`]).
pub fn probe_entry_with(marker_dir: impl AsRef<Path>, opts: &ProbeOptions) -> Result<SidecarEntry> {
    opts.validate()?;
    let path = caller_path(marker_dir.as_ref(), "marker_dir")?;
    let dir = sys::open(&path, libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC)
        .map_err(|e| StackError::from(read::open_dir_error(path.clone(), e)))?;
    let loc = Loc::Dir(dir.as_fd());
    let marker = read::read_marker(loc, path, &mut sys::MarkerFds::default())?;
    Ok(assess::assess_one(loc, marker, opts).entry)
}

/// Looks up and probes the marker of `sandbox_id`. `Ok(None)` when there is
/// no such marker; an invalid id or a malformed marker is an error. Nothing
/// is removed.
pub fn get(runtime_dir: impl AsRef<Path>, sandbox_id: &str) -> Result<Option<SidecarEntry>> {
    get_with(runtime_dir, sandbox_id, &ProbeOptions::default())
}

/// [`get`] with explicit probe options, checked before anything is read:
/// a timeout of 0 or above [`MAX_TIMEOUT`] is refused with
/// `invalid_argument` ([`ProbeOptions::validate`]).
pub fn get_with(
    runtime_dir: impl AsRef<Path>,
    sandbox_id: &str,
    opts: &ProbeOptions,
) -> Result<Option<SidecarEntry>> {
    Ok(assess::by_id(runtime_dir.as_ref(), sandbox_id, opts)?.map(|a| a.entry))
}

/// Every live sidecar under `runtime_dir`, sorted by sandbox id. Stale
/// markers (process provably stopped) are collected as a side effect and
/// not returned; corrupt, mismatched or vanishing markers are skipped.
pub fn list(runtime_dir: impl AsRef<Path>) -> Result<Vec<SidecarEntry>> {
    list_with(runtime_dir, &ProbeOptions::default())
}

/// [`list`] with explicit probe options, checked by [`scan()`]: a timeout of
/// 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`.
pub fn list_with(runtime_dir: impl AsRef<Path>, opts: &ProbeOptions) -> Result<Vec<SidecarEntry>> {
    let scan_opts = ScanOptions {
        probe: Some(*opts),
        collect: true,
    };
    Ok(scan(runtime_dir, &scan_opts)?.live)
}

/// Removes every stale marker under `runtime_dir` and returns the removed
/// sandbox ids, sorted. Each id is reported by exactly one of any number of
/// concurrent callers. A missing `run/` is not an error; a marker that
/// cannot be removed is left (see [`scan()`] for the problems).
///
/// Refuses with `untrusted_directory` when the runtime directory or `run/`
/// fails the trust checks (docs/design.md, "Trust"): nothing is removed.
pub fn gc_stale(runtime_dir: impl AsRef<Path>) -> Result<Vec<String>> {
    let mode = Mode::new(None, true, false);
    Ok(scan::run_scan(runtime_dir.as_ref(), mode, Some("collect stale markers"))?.collected)
}

/// One report per entry of `run/` (reserved dot-names excepted), sorted by
/// name. Read-only: nothing is removed.
pub fn inspect(runtime_dir: impl AsRef<Path>) -> Result<Vec<MarkerReport>> {
    inspect_with(runtime_dir, &ProbeOptions::default())
}

/// [`inspect`] with explicit probe options.
/// A timeout of 0 or above [`MAX_TIMEOUT`] is refused with `invalid_argument`
/// ([`ProbeOptions::validate`]).
pub fn inspect_with(
    runtime_dir: impl AsRef<Path>,
    opts: &ProbeOptions,
) -> Result<Vec<MarkerReport>> {
    opts.validate()?;
    let mode = Mode::new(Some(*opts), false, true);
    Ok(scan::run_scan(runtime_dir.as_ref(), mode, None)?.reports)
}

/// One pass over `run/`: see [`ScanOptions`]. Fails only when `run/`
/// exists but cannot be opened or enumerated, or the options are bad
/// ([`ScanOptions::validate`]);
/// everything tied to one marker stays that marker's problem. On a
/// directory that fails the trust checks the scan is read-only and says
/// why in [`ScanReport::untrusted`].
pub fn scan(runtime_dir: impl AsRef<Path>, opts: &ScanOptions) -> Result<ScanReport> {
    opts.validate()?;
    let mode = Mode::new(opts.probe, opts.collect, false);
    Ok(scan::run_scan(runtime_dir.as_ref(), mode, None)?.into())
}
