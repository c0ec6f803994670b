//! Writing and removing markers, for supervisors and test harnesses.
//!
//! A marker appears in `run/` in one atomic step: it is assembled in a
//! reserved temporary directory `.tmp-<pid>-<pidns>-<random>` (mode 0700:
//! `sidecar.pid`, then `metadata.toml` through the crate's one atomic file
//! writer, `sys::atomic`, which fsyncs the file and the directory), then
//! renamed to its sandbox id with `RENAME_NOREPLACE`. Readers never see a
//! marker without its metadata, and an existing marker is never
//! overwritten.

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use super::error::{Result, StackError};
use super::metadata::check_pid;
use super::model::MetadataFile;
use super::options::validate_sandbox_id;
use super::paths::child_path;
use super::read::{METADATA, PID_FILE};
use super::reserved::{TMP_PREFIX, reserved_name};
use super::sys::atomic::{Perm, Replace, Step};
use super::trust::{self, RunDir};
use super::{gc, process, sys};

/// Now as RFC 3339 UTC, in seconds, from the system clock: the `started_at`
/// a writer records for a process starting now (the CLI's `run`, the C
/// ABI's `firma_marker_create` without one).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// Creates `<runtime_dir>/run/<sandbox_id>` atomically from `meta` and
/// returns its path.
///
/// When `meta.boot_id` or `meta.pid_start_ticks` is `None`, the identity of
/// the live process `meta.pid` is recorded; it is an error if that process
/// does not exist. Creates `runtime_dir` and `run/` (mode 0700) if needed.
/// Fails with an I/O error of kind `AlreadyExists` if the marker exists.
///
/// Refuses with `untrusted_directory` unless the runtime directory and
/// `run/` pass the trust checks and are each owned by the caller (effective
/// uid) or root, with a `run/` that is not the caller's shared (sticky):
/// a marker is never written in a directory another user controls
/// (docs/design.md, "Trust").
pub fn create_marker(runtime_dir: impl AsRef<Path>, meta: &MetadataFile) -> Result<PathBuf> {
    let runtime_dir = runtime_dir.as_ref();
    validate_sandbox_id(&meta.sandbox_id)?;
    check_pid(meta.pid).map_err(|reason| StackError::InvalidArgument {
        what: "pid".into(),
        reason,
    })?;
    super::endpoint::parse_listen(meta.listen.as_deref()).map_err(|reason| {
        StackError::InvalidArgument {
            what: "listen".into(),
            reason,
        }
    })?;
    let mut meta = meta.clone();
    // The namespaces are the writer's own: they need no process.
    let (ns, offset) = process::own_namespaces();
    if meta.pid_ns_inode.is_none() {
        meta.pid_ns_inode = ns;
    }
    meta.boottime_offset_ns.get_or_insert(offset);
    if meta.boot_id.is_none() || meta.pid_start_ticks.is_none() {
        let proc_path = PathBuf::from(format!("/proc/{}", meta.pid));
        let rec = process::identity(meta.pid)
            .map_err(|e| StackError::io("read identity of process", &proc_path, e))?
            .ok_or_else(|| {
                StackError::io(
                    "record identity of process",
                    &proc_path,
                    std::io::Error::from_raw_os_error(libc::ESRCH),
                )
            })?;
        if meta.boot_id.is_none() {
            meta.boot_id = rec.boot_id;
        }
        meta.pid_start_ticks.get_or_insert(rec.start_ticks);
    }
    let toml = toml::to_string(&meta).map_err(|e| StackError::InvalidArgument {
        what: "metadata".into(),
        reason: e.to_string(),
    })?;

    let RunDir {
        fd: run,
        path: run_path,
        ..
    } = trust::open_run_for_writer(runtime_dir, "create a marker")?;

    // The name records our pid and pid namespace, so a scan finishes it only
    // once this process is provably gone; its random part makes it
    // unguessable. Taken already (a plant, or a dead writer's): pick another.
    let (tmp, tmp_path) = loop {
        let tmp = reserved_name(TMP_PREFIX);
        let tmp_path = run_path.join(tmp.to_str().expect("ASCII"));
        match sys::mkdirat(run.as_fd(), &tmp, 0o700) {
            Ok(()) => break (tmp, tmp_path),
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => continue,
            Err(e) => return Err(StackError::io("create", &tmp_path, e)),
        }
    };
    let marker_path = run_path.join(&meta.sandbox_id);

    let result = (|| -> Result<()> {
        let dir = sys::openat(run.as_fd(), &tmp, sys::DIR_FLAGS, 0)
            .map_err(|e| StackError::io("open", &tmp_path, e))?;
        // sidecar.pid: a new file in the new directory.
        let pid_path = tmp_path.join("sidecar.pid");
        let f = sys::openat(
            dir.as_fd(),
            PID_FILE,
            libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o600,
        )
        .map_err(|e| StackError::io("create", &pid_path, e))?;
        let pid = format!("{}\n", meta.pid);
        sys::write_all(f.as_fd(), pid.as_bytes())
            .map_err(|e| StackError::io("write", &pid_path, e))?;
        sys::fsync(f.as_fd()).map_err(|e| StackError::io("fsync", &pid_path, e))?;
        // metadata.toml, written whole or not at all; the directory's fsync
        // that ends it makes sidecar.pid's name durable too.
        let meta_path = tmp_path.join("metadata.toml");
        let metadata = Replace {
            name: METADATA,
            perm: Perm::Create(0o600),
            temp_prefix: ".metadata.toml.",
            temp_suffix: ".tmp",
            unnamed: true,
        };
        metadata.write(dir.as_fd(), toml.as_bytes()).map_err(|e| {
            // The temporary file by its name when it had one yet.
            let temp = match &e.temp {
                Some(t) => child_path(&tmp_path, t),
                None => meta_path.clone(),
            };
            match e.step {
                Step::Create | Step::Link => StackError::io("create", temp, e.source),
                Step::Chmod => StackError::io("chmod", temp, e.source),
                Step::Write => StackError::io("write", temp, e.source),
                Step::Fsync => StackError::io("fsync", temp, e.source),
                Step::Rename => StackError::io("rename into place", &meta_path, e.source),
                Step::FsyncDir => StackError::io("fsync", &tmp_path, e.source),
            }
        })?;
        let id = CString::new(meta.sandbox_id.as_str()).expect("validated id has no NUL");
        sys::rename_noreplace(run.as_fd(), &tmp, run.as_fd(), &id).map_err(|e| {
            if matches!(e.raw_os_error(), Some(libc::EEXIST) | Some(libc::ENOTEMPTY)) {
                StackError::io(
                    "create marker",
                    &marker_path,
                    std::io::Error::new(std::io::ErrorKind::AlreadyExists, "marker already exists"),
                )
            } else {
                StackError::io("rename into place", &marker_path, e)
            }
        })?;
        sys::fsync(run.as_fd()).map_err(|e| StackError::io("fsync", &run_path, e))
    })();
    if result.is_err() {
        // Best effort: the temp name is reserved and never listed, so a
        // leftover cannot confuse readers.
        let _ = gc::remove_tree(run.as_fd(), &tmp, 0);
    }
    result.map(|()| marker_path)
}

/// Removes the marker of `sandbox_id`, whatever its state (the caller owns
/// it). Returns `false` when there was none. Uses the same atomic
/// rename-then-delete as garbage collection. Refuses with
/// `untrusted_directory` when the directory fails the trust checks
/// (docs/design.md, "Trust"), whether or not the marker exists.
pub fn remove_marker(runtime_dir: impl AsRef<Path>, sandbox_id: &str) -> Result<bool> {
    validate_sandbox_id(sandbox_id)?;
    let dirs = trust::open_dirs(runtime_dir.as_ref())?;
    if let Some(trust) = &dirs.trust {
        trust.require("remove a marker")?;
    }
    let Some(RunDir {
        fd: run,
        path: run_path,
        ..
    }) = dirs.run
    else {
        return Ok(false);
    };
    let id = CString::new(sandbox_id).expect("validated id has no NUL");
    let marker_path = run_path.join(sandbox_id);
    match sys::lstatat(run.as_fd(), &id) {
        Ok(st) if sys::is_dir(&st) => {}
        // Symlinks and files in run/ are never markers and never removed.
        Ok(_) => return Err(StackError::parse(marker_path, "not a marker directory")),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(false),
        Err(e) => return Err(StackError::io("stat", marker_path, e)),
    }
    gc::take(run.as_fd(), &id, None).map_err(|e| StackError::io("remove", marker_path, e))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_start_time_is_rfc3339_utc() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'), "{t}");
    }
}
