//! What a marker holds: the `metadata.toml` schema, the entry we report, and
//! reading one marker directory safely relative to an open directory.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::endpoint::{Endpoint, parse_listen};
use super::error::{Result, StackError};
use super::model::{MAX_PID, MetadataFile, Reason, SidecarEntry, State};
use super::sys;

/// Largest `metadata.toml` we read; anything bigger is a parse error.
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

pub(crate) const METADATA: &CStr = c"metadata.toml";
pub(crate) const PID_FILE: &CStr = c"sidecar.pid";
pub(crate) const DEFAULT_SOCKET: &str = "sidecar.sock";
pub(crate) const SOCKET_FILE: &CStr = c"sidecar.sock";

/// Where a marker lives, relative to an open directory.
#[derive(Clone, Copy)]
pub(crate) enum Loc<'a> {
    /// The marker directory itself is open (`probe_entry`).
    Dir(BorrowedFd<'a>),
    /// The marker is the entry `name` of the open `run/` directory.
    Entry { run: BorrowedFd<'a>, name: &'a CStr },
}

impl Loc<'_> {
    /// `file` inside the marker, as a name relative to the open directory.
    pub fn rel(&self, file: &CStr) -> CString {
        match self {
            Loc::Dir(_) => file.to_owned(),
            Loc::Entry { name, .. } => {
                let mut v = Vec::with_capacity(name.to_bytes().len() + 1 + file.to_bytes().len());
                v.extend_from_slice(name.to_bytes());
                v.push(b'/');
                v.extend_from_slice(file.to_bytes());
                CString::new(v).expect("names from readdir and constants hold no NUL")
            }
        }
    }

    pub fn base(&self) -> BorrowedFd<'_> {
        match *self {
            Loc::Dir(fd) => fd,
            Loc::Entry { run, .. } => run,
        }
    }
}

/// A marker whose `metadata.toml` was read and validated.
pub(crate) struct Marker {
    pub path: PathBuf,
    pub meta: MetadataFile,
    pub endpoint: Endpoint,
    /// Which `metadata.toml` was read, so a collector (and `stop`) can tell
    /// that a marker still holds the very file it judged.
    pub meta_id: MetaId,
    /// Owner and mode of that `metadata.toml` (half of whose claim the
    /// marker is: see [`Marker::owner`]).
    pub meta_owner: (u32, u32),
}

/// The identity of one `metadata.toml` as it was read and judged: its
/// device and inode, and a keyed digest of the exact bytes read. A freed
/// inode number is handed to the next new file (ext4 does so at once), so
/// device and inode alone cannot tell a marker re-created under the same
/// name from the one judged; the bytes can. `gc::holds_judged` is the one
/// comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MetaId {
    pub dev: u64,
    pub ino: u64,
    pub digest: u64,
}

impl MetaId {
    /// The identity of the file `st` describes, whose bytes are `bytes`.
    pub fn of(st: &libc::stat, bytes: &[u8]) -> MetaId {
        MetaId {
            dev: st.st_dev,
            ino: st.st_ino,
            digest: digest(bytes),
        }
    }
}

/// SipHash of `bytes` (length included) under a key drawn from the OS's
/// random source once per process (std's `RandomState`): no one who writes
/// markers can know the key, so no one can write other bytes with the same
/// digest on purpose.
pub(crate) fn digest(bytes: &[u8]) -> u64 {
    use std::hash::BuildHasher;
    static KEY: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEY.get_or_init(std::hash::RandomState::new).hash_one(bytes)
}

impl Marker {
    /// Whose claim this marker (the entry `name` of the open `run/`) is:
    /// `authority::claim` over its directory and its `metadata.toml`. One
    /// `lstat`, made only by what removes or signals.
    pub fn owner(&self, run: BorrowedFd<'_>, name: &CStr) -> std::result::Result<u32, String> {
        let st = sys::lstatat(run, name)
            .map_err(|e| format!("cannot stat the marker directory: {e}"))?;
        if !sys::is_dir(&st) {
            return Err("the marker is no longer a directory".to_owned());
        }
        let (meta_uid, meta_mode) = self.meta_owner;
        super::authority::claim(st.st_uid, st.st_mode, meta_uid, meta_mode)
    }

    /// The entry of this marker (its strings move into it: a scan builds
    /// one entry per marker and has no further use for the marker).
    pub fn into_entry(self, state: State, uptime_secs: Option<u64>) -> SidecarEntry {
        let mut m = self.meta;
        let listen = match self.endpoint {
            Endpoint::MarkerSocket => {
                let mut path = self.path;
                path.push(DEFAULT_SOCKET);
                path.into_os_string()
                    .into_string()
                    .unwrap_or_else(|p| p.to_string_lossy().into_owned())
            }
            _ => m.listen.take().unwrap_or_default(),
        };
        SidecarEntry {
            sandbox_id: m.sandbox_id,
            agent_id: m.agent_id,
            session_id: m.session_id,
            authority_url: m.authority_url,
            policy_bundle_version: m.policy_bundle_version,
            pid: m.pid,
            started_at: m.started_at,
            state,
            listen,
            uptime_secs,
        }
    }
}

/// Why a marker could not be read: the `inspect` reason and the error.
#[derive(Debug)]
pub(crate) struct Broken {
    pub reason: Reason,
    pub error: StackError,
}

impl Broken {
    fn new(reason: Reason, error: StackError) -> Self {
        Broken { reason, error }
    }

    fn parse(reason: Reason, path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        Broken::new(reason, StackError::parse(path, why))
    }

    /// True when the marker vanished while it was read (`ENOENT`).
    pub fn is_not_found(&self) -> bool {
        self.error.is_not_found()
    }
}

impl From<Broken> for StackError {
    fn from(b: Broken) -> Self {
        b.error
    }
}

/// Maps a failure to open a marker directory: a symlink or a non-directory
/// is a malformed marker, anything else is I/O. (`O_DIRECTORY|O_NOFOLLOW`
/// on a symlink fails with `ENOTDIR` or `ELOOP`; an lstat on this error path
/// tells the two cases apart for the message.)
pub(crate) fn open_dir_error(path: PathBuf, e: std::io::Error) -> Broken {
    match e.raw_os_error() {
        Some(libc::ELOOP) | Some(libc::ENOTDIR) => {
            if is_symlink(&path) {
                Broken::parse(
                    Reason::Symlink,
                    path,
                    "marker directory is a symlink (not followed)",
                )
            } else {
                Broken::parse(Reason::NotADirectory, path, "marker is not a directory")
            }
        }
        _ => Broken::new(
            Reason::IoError,
            StackError::io("open marker directory", path, e),
        ),
    }
}

pub(crate) fn is_symlink(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

const METADATA_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;

/// A marker directory that is a mount point (or holds `metadata.toml` as
/// one) is never read: its filesystem may not answer, and it is not ours.
fn mount_point(path: &Path) -> Broken {
    Broken::parse(
        Reason::MountPoint,
        path,
        "marker directory is (or holds) a mount point: not read, never removed",
    )
}

/// Opens `metadata.toml` of the marker at `loc` without following any
/// symlink or crossing a mount point. For a `run/` entry this is one
/// `openat2` with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_NO_XDEV`
/// where the kernel has it, else `openat` of the directory then of the
/// file, with the directory's mount id compared to its parent's.
fn open_metadata(loc: Loc<'_>, path: &Path) -> std::result::Result<OwnedFd, Broken> {
    let meta_path = || path.join("metadata.toml");
    let symlink_error = || {
        if matches!(loc, Loc::Entry { .. }) && is_symlink(path) {
            Broken::parse(
                Reason::Symlink,
                path,
                "marker directory is a symlink (not followed)",
            )
        } else {
            Broken::parse(
                Reason::Symlink,
                meta_path(),
                "metadata.toml is a symlink (not followed)",
            )
        }
    };
    let rel = loc.rel(METADATA);
    let opened = match sys::openat2(
        loc.base(),
        &rel,
        METADATA_FLAGS,
        sys::RESOLVE_NO_XDEV_STRICT,
    ) {
        Some(r) => r,
        None => match loc {
            Loc::Dir(dir) => sys::openat(dir, METADATA, METADATA_FLAGS, 0),
            Loc::Entry { run, name } => {
                let dir = sys::openat(run, name, sys::DIR_FLAGS, 0)
                    .map_err(|e| open_dir_error(path.to_path_buf(), e))?;
                if let (Some(a), Some(b)) = (sys::mount_id(run), sys::mount_id(dir.as_fd()))
                    && a != b
                {
                    return Err(mount_point(path));
                }
                sys::openat(dir.as_fd(), METADATA, METADATA_FLAGS, 0)
            }
        },
    };
    opened.map_err(|e| match e.raw_os_error() {
        Some(libc::ELOOP) => symlink_error(),
        // Under RESOLVE_NO_XDEV: a mount point on the way (never looked
        // into, so never lstat'ed either).
        Some(libc::EXDEV) => mount_point(path),
        Some(libc::ENOTDIR) => open_dir_error(path.to_path_buf(), e),
        // A socket (ENXIO) or a device without a driver (ENXIO, ENODEV)
        // cannot be opened at all: as malformed as a FIFO.
        Some(libc::ENXIO) | Some(libc::ENODEV) => Broken::parse(
            Reason::ParseError,
            meta_path(),
            "metadata.toml is not a regular file",
        ),
        _ => Broken::new(Reason::IoError, StackError::io("open", meta_path(), e)),
    })
}

/// Reads and validates the marker at `loc` (`path` names it in messages and
/// in `listen`). The metadata's descriptor, once read, goes to `later`.
pub(crate) fn read_marker(
    loc: Loc<'_>,
    path: PathBuf,
    later: &mut sys::CloseLater,
) -> std::result::Result<Marker, Broken> {
    let file = open_metadata(loc, &path)?;
    // Only errors name the file: build its path only for them.
    let meta_path = || path.join("metadata.toml");
    let st = sys::fstat(file.as_fd())
        .map_err(|e| Broken::new(Reason::IoError, StackError::io("stat", meta_path(), e)))?;
    let parse = |why: String| Broken::parse(Reason::ParseError, meta_path(), why);
    if !sys::is_reg(&st) {
        return Err(parse("metadata.toml is not a regular file".into()));
    }
    let too_big = || {
        parse(format!(
            "metadata.toml is larger than {MAX_METADATA_BYTES} bytes"
        ))
    };
    if st.st_size as u64 > MAX_METADATA_BYTES as u64 {
        return Err(too_big());
    }
    let bytes = sys::read_capped(file.as_fd(), st.st_size as usize, MAX_METADATA_BYTES)
        .map_err(|e| Broken::new(Reason::IoError, StackError::io("read", meta_path(), e)))?
        .ok_or_else(too_big)?;
    later.keep(file);
    let meta = parse_metadata(&bytes).map_err(parse)?;
    let endpoint = parse_listen(meta.listen.as_deref()).map_err(parse)?;
    let dir_name = path.file_name().map(|n| n.as_bytes()).unwrap_or_default();
    if meta.sandbox_id.as_bytes() != dir_name {
        let directory = String::from_utf8_lossy(dir_name).into_owned();
        return Err(Broken::new(
            Reason::IdMismatch,
            StackError::IdentityMismatch {
                path,
                directory,
                metadata: meta.sandbox_id,
            },
        ));
    }
    Ok(Marker {
        path,
        meta,
        endpoint,
        meta_id: MetaId::of(&st, &bytes),
        meta_owner: (st.st_uid, st.st_mode),
    })
}

/// Seconds since `sidecar.pid` was modified; `None` when it is absent, not a
/// regular file, behind a mount point, or its mtime lies in the future.
/// (Opened `O_PATH` without crossing a mount, so a hung filesystem mounted
/// over it is never asked; the descriptor goes to `later`.)
pub(crate) fn uptime_secs(
    loc: Loc<'_>,
    path: &Path,
    now: SystemTime,
    later: &mut sys::CloseLater,
) -> Result<Option<u64>> {
    let rel = loc.rel(PID_FILE);
    let opened = later.open(|| {
        sys::openat2(
            loc.base(),
            &rel,
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            sys::RESOLVE_NO_XDEV_STRICT,
        )
    });
    let st = match opened {
        Some(Ok(fd)) => {
            let st = sys::fstat(fd.as_fd());
            later.keep(fd);
            st
        }
        Some(Err(e)) => Err(e),
        None => sys::lstatat(loc.base(), &rel),
    };
    match st {
        Ok(st) if sys::is_reg(&st) => Ok(uptime(&st, now)),
        Ok(_) => Ok(None),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ELOOP) | Some(libc::EXDEV)
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(StackError::io("stat", path.join("sidecar.pid"), e)),
    }
}

fn uptime(st: &libc::stat, now: SystemTime) -> Option<u64> {
    if st.st_mtime < 0 {
        return None;
    }
    let mtime = SystemTime::UNIX_EPOCH
        + Duration::new(
            st.st_mtime as u64,
            st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
        );
    now.duration_since(mtime).ok().map(|d| d.as_secs())
}

/// Parses and range-checks `metadata.toml` bytes.
pub(crate) fn parse_metadata(bytes: &[u8]) -> std::result::Result<MetadataFile, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|e| format!("metadata.toml is not UTF-8: {e}"))?;
    let meta = match parse_flat(text) {
        Some(meta) => meta,
        None => toml::from_str(text).map_err(|e| toml_error(text, &e))?,
    };
    check_pid(meta.pid)?;
    for (key, value) in [
        ("pid_start_ticks", meta.pid_start_ticks),
        ("pid_ns_inode", meta.pid_ns_inode),
    ] {
        check_toml_int(key, value)?;
    }
    Ok(meta)
}

/// TOML integers are 64-bit signed: a larger value is not TOML (the spec
/// says a parser must reject it), though the TOML crate reads one into a
/// `u64` field. The writer cannot write one either.
fn check_toml_int(key: &str, value: Option<u64>) -> std::result::Result<(), String> {
    match value {
        Some(v) if i64::try_from(v).is_err() => Err(format!(
            "{key} = {v} is above TOML's largest integer ({})",
            i64::MAX
        )),
        _ => Ok(()),
    }
}

/// A TOML error as one line naming line and column, without echoing the
/// input (the parser's own message quotes the offending line).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let msg = super::text::one_line(e.message());
    match e.span() {
        Some(span) => {
            let before = &text.as_bytes()[..span.start.min(text.len())];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let col_start = before
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |i| i + 1);
            let column = String::from_utf8_lossy(&before[col_start..])
                .chars()
                .count()
                + 1;
            // Name the key of that line when it is a plain one (never echo
            // anything else of the input).
            let line_text = text[col_start..].split('\n').next().unwrap_or("");
            let key = line_text
                .split_once('=')
                .map(|(k, _)| k.trim())
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= 64
                        && k.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
            match key {
                Some(k) => format!(
                    "invalid metadata.toml at line {line}, column {column} (key {k}): {msg}"
                ),
                None => format!("invalid metadata.toml at line {line}, column {column}: {msg}"),
            }
        }
        None => format!("invalid metadata.toml: {msg}"),
    }
}

/// A value in the flat subset [`parse_flat`] understands.
enum Flat<'a> {
    Str(&'a str),
    Int(i64),
}

/// Parses the flat form writers produce — one `key = "basic string"` or
/// `key = 123` per line, blank lines and `#` comments — into a
/// [`MetadataFile`], in one pass without allocating a document.
///
/// Returns `None` for anything outside that subset (escapes, other string or
/// number forms, tables, arrays, dotted or quoted keys, unknown or duplicate
/// keys, a missing key, a control character, a value of the wrong type), and
/// the caller then parses with the full TOML parser, which also produces the
/// error message. So for every input it accepts, this gives exactly what the
/// TOML parser gives; the unit tests below compare the two.
pub(crate) fn parse_flat(text: &str) -> Option<MetadataFile> {
    let mut strs: [Option<&str>; 8] = [None; 8];
    const KEYS: [&str; 8] = [
        "sandbox_id",
        "agent_id",
        "session_id",
        "authority_url",
        "policy_bundle_version",
        "started_at",
        "listen",
        "boot_id",
    ];
    let (mut pid, mut ticks, mut ns, mut offset) = (None, None, None, None);
    let mut lines = text.split('\n').peekable();
    while let Some(line) = lines.next() {
        // CR only counts as part of a line break when LF follows it: TOML
        // rejects a lone CR, and so does the fast path (it then falls back).
        let line = if lines.peek().is_some() {
            line.strip_suffix('\r').unwrap_or(line)
        } else {
            line
        };
        if line.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return None;
        }
        let line = line.trim_matches([' ', '\t']);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = line.split_once('=')?;
        let key = key.trim_end_matches([' ', '\t']);
        let rest = rest.trim_start_matches([' ', '\t']);
        let (value, after) = if let Some(r) = rest.strip_prefix('"') {
            let end = r.find(['"', '\\'])?;
            if r.as_bytes()[end] == b'\\' {
                return None;
            }
            (Flat::Str(&r[..end]), &r[end + 1..])
        } else {
            let end = rest.find([' ', '\t', '#']).unwrap_or(rest.len());
            (Flat::Int(plain_int(&rest[..end])?), &rest[end..])
        };
        let after = after.trim_start_matches([' ', '\t']);
        if !(after.is_empty() || after.starts_with('#')) {
            return None;
        }
        match (key, value) {
            ("pid", Flat::Int(v)) if pid.is_none() => pid = Some(v),
            ("pid_start_ticks", Flat::Int(v)) if ticks.is_none() => ticks = Some(v),
            ("pid_ns_inode", Flat::Int(v)) if ns.is_none() => ns = Some(v),
            ("boottime_offset_ns", Flat::Int(v)) if offset.is_none() => offset = Some(v),
            (k, Flat::Str(v)) => {
                let slot = &mut strs[KEYS.iter().position(|&known| known == k)?];
                if slot.replace(v).is_some() {
                    return None;
                }
            }
            _ => return None,
        }
    }
    let [
        sandbox_id,
        agent_id,
        session_id,
        authority_url,
        policy_bundle_version,
        started_at,
        listen,
        boot_id,
    ] = strs;
    Some(MetadataFile {
        sandbox_id: sandbox_id?.to_owned(),
        agent_id: agent_id?.to_owned(),
        session_id: session_id?.to_owned(),
        authority_url: authority_url?.to_owned(),
        policy_bundle_version: policy_bundle_version?.to_owned(),
        pid: u32::try_from(pid?).ok()?,
        started_at: started_at?.to_owned(),
        listen: listen.map(str::to_owned),
        boot_id: boot_id.map(str::to_owned),
        pid_start_ticks: match ticks {
            Some(t) => Some(u64::try_from(t).ok()?),
            None => None,
        },
        pid_ns_inode: match ns {
            Some(t) => Some(u64::try_from(t).ok()?),
            None => None,
        },
        boottime_offset_ns: offset,
    })
}

/// A decimal integer without underscores or leading zeros, with an optional
/// `-` before a non-zero value (`-0`, `+1` and the like go to the TOML
/// parser).
fn plain_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && !(s.starts_with('-') && digits == "0");
    if ok { s.parse().ok() } else { None }
}

/// A pid must be in `1..=2^31-1`: 0 and negatives address process groups in
/// `kill(2)`, larger values wrap.
pub(crate) fn check_pid(pid: u32) -> std::result::Result<(), String> {
    if pid == 0 || pid > MAX_PID {
        return Err(format!("pid {pid} is out of range 1..={MAX_PID}"));
    }
    Ok(())
}

/// `<path>` as shown in messages for an entry `name` under `dir`.
pub(crate) fn child_path(dir: &Path, name: &CStr) -> PathBuf {
    dir.join(std::ffi::OsStr::from_bytes(name.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(text: &str) -> Option<MetadataFile> {
        toml::from_str(text).ok()
    }

    const BASE: &str = "sandbox_id = \"s-1\"\nagent_id = \"a\"\nsession_id = \"s\"\n\
        authority_url = \"https://x.invalid/a?b=c#d\"\npolicy_bundle_version = \"sha256:1\"\n\
        pid = 42\nstarted_at = \"2026-11-29T00:00:00Z\"\n";

    /// An integer above i64::MAX is not TOML: refused whichever path reads
    /// it, as a TOML table parser refuses it.
    #[test]
    fn integers_above_tomls_range_are_parse_errors() {
        for key in ["pid_start_ticks", "pid_ns_inode"] {
            let text = format!("{BASE}{key} = 10953367776079910376\n");
            assert!(text.parse::<toml::Table>().is_err(), "{key}");
            let err = parse_metadata(text.as_bytes()).unwrap_err();
            assert!(
                err.contains(key) && err.contains("largest integer"),
                "{err}"
            );
            let top = format!("{BASE}{key} = 9223372036854775807\n");
            assert!(parse_metadata(top.as_bytes()).is_ok(), "{key} at i64::MAX");
        }
    }

    /// Every input the fast path accepts parses to the same value with the
    /// full TOML parser; inputs outside the subset fall back.
    #[test]
    fn flat_parser_agrees_with_toml_or_declines() {
        let cases: Vec<String> = vec![
            BASE.to_owned(),
            format!("{BASE}listen = \"/run/x.sock\"\nboot_id = \"b\"\npid_start_ticks = 0\n"),
            format!("# comment\r\n\n  {BASE}  # trailing\n"),
            BASE.replace("pid = 42", "pid = 42 # the sidecar"),
            BASE.replace("pid = 42", "pid\t=\t42"),
            BASE.replace("\"a\"", "\"日本 \\\" quote\""),
            BASE.replace("\"a\"", "'literal'"),
            BASE.replace("\"a\"", "\"\"\"multi\"\"\""),
            BASE.replace("\"a\"", "\"tab\there\""),
            BASE.replace("\"a\"", "\"\""),
            BASE.replace("pid = 42", "pid = 042"),
            BASE.replace("pid = 42", "pid = +42"),
            BASE.replace("pid = 42", "pid = 4_2"),
            BASE.replace("pid = 42", "pid = 0x2a"),
            BASE.replace("pid = 42", "pid = -1"),
            BASE.replace("pid = 42", "pid = 4294967296"),
            BASE.replace("pid = 42", "pid = 99999999999999999999"),
            BASE.replace("pid = 42", "pid = \"42\""),
            BASE.replace("pid = 42", "pid = 42\npid = 43"),
            BASE.replace("pid = 42", ""),
            format!("{BASE}unknown = \"x\"\n"),
            format!("{BASE}[table]\nx = 1\n"),
            format!("{BASE}a.b = 1\n"),
            format!("{BASE}\"quoted\" = 1\n"),
            format!("{BASE}pid_start_ticks = -5\n"),
            format!("{BASE}listen = 5\n"),
            BASE.replace("agent_id = \"a\"", "agent_id = \"a\" junk"),
            BASE.replace("agent_id = \"a\"", "agent_id = \"a\u{7f}\""),
            format!("\u{feff}{BASE}"),
        ];
        let mut accepted = 0;
        for text in &cases {
            if let Some(fast) = parse_flat(text) {
                accepted += 1;
                assert_eq!(Some(fast), full(text), "fast path differs on {text:?}");
            }
        }
        assert!(accepted >= 6, "the fast path should take the plain forms");
    }

    /// Lone CR at the end (no LF): TOML rejects it, so must the fast path.
    #[test]
    fn lone_cr_is_rejected_like_toml() {
        let text = format!("{BASE}\r");
        assert!(full(&text).is_none());
        assert!(parse_flat(&text).is_none());
        assert!(parse_metadata(text.as_bytes()).is_err());
    }

    use proptest::prelude::*;

    /// Near-flat inputs: the writer's form with line-break variants, lone
    /// CRs, a BOM, escapes, comments, trailing whitespace, duplicate and
    /// unknown keys, signed and odd numbers.
    fn near_flat() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            Just("sandbox_id = \"s-1\"".to_owned()),
            Just("agent_id = \"a\"".to_owned()),
            Just("session_id = \"s\"".to_owned()),
            Just("authority_url = \"u\"".to_owned()),
            Just("policy_bundle_version = \"p\"".to_owned()),
            Just("started_at = \"t\"".to_owned()),
            Just("pid = 42".to_owned()),
            Just("pid = -42".to_owned()),
            Just("pid = 042".to_owned()),
            Just("pid_start_ticks = 7".to_owned()),
            Just("pid_ns_inode = 4026531836".to_owned()),
            Just("boottime_offset_ns = -1000".to_owned()),
            Just("boottime_offset_ns = -0".to_owned()),
            Just("boottime_offset_ns = +5".to_owned()),
            Just("listen = \"/x.sock\"".to_owned()),
            Just("agent_id = \"esc\\\"aped\"".to_owned()),
            Just("agent_id = 'lit'".to_owned()),
            Just("# comment".to_owned()),
            Just("".to_owned()),
            Just("unknown = 1".to_owned()),
            "[a-z_]{1,6} = \"[ -~]{0,4}\"",
            "[a-z_]{1,6} = -?[0-9]{1,3}",
        ];
        let ending = prop_oneof![
            Just("\n"),
            Just("\r\n"),
            Just("\r"),
            Just(" \n"),
            Just("\t# c\n"),
            Just(""),
        ];
        let required: Vec<String> = BASE.lines().map(str::to_owned).collect();
        (
            any::<bool>(),
            Just(required).prop_shuffle(),
            proptest::collection::vec(ending.clone(), 7),
            proptest::collection::vec((line, ending), 0..5),
        )
            .prop_map(|(bom, required, endings, extra)| {
                let mut s = if bom {
                    "\u{feff}".to_owned()
                } else {
                    String::new()
                };
                for (l, e) in required.iter().zip(endings) {
                    s.push_str(l);
                    s.push_str(if e.is_empty() { "\n" } else { e });
                }
                for (l, e) in extra {
                    s.push_str(&l);
                    s.push_str(e);
                }
                s
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(600))]
        /// The fast path accepts only what the TOML parser accepts, and
        /// reads the same values; and parse_metadata (fast path, then TOML)
        /// accepts exactly what TOML accepts.
        #[test]
        fn fast_path_agrees_with_toml(text in near_flat()) {
            let toml_says: Option<MetadataFile> = full(&text);
            if let Some(fast) = parse_flat(&text) {
                prop_assert_eq!(Some(fast), toml_says.clone(), "{:?}", text);
            }
            let ours = parse_metadata(text.as_bytes()).ok();
            let toml_checked = toml_says.filter(|m| check_pid(m.pid).is_ok());
            prop_assert_eq!(ours, toml_checked, "{:?}", text);
        }
    }

    /// What the writer produces takes the fast path.
    #[test]
    fn writer_output_takes_the_fast_path() {
        let meta = MetadataFile {
            sandbox_id: "s-1".into(),
            agent_id: "agent".into(),
            session_id: "session".into(),
            authority_url: "https://authority.invalid".into(),
            policy_bundle_version: "sha256:abc".into(),
            pid: 4242,
            started_at: "2026-11-29T00:00:00Z".into(),
            listen: Some("127.0.0.1:80".into()),
            boot_id: Some("0f0e-aa".into()),
            pid_start_ticks: Some(123456789),
            pid_ns_inode: Some(4026531836),
            boottime_offset_ns: Some(-1_000_000_000),
        };
        let text = toml::to_string(&meta).unwrap();
        assert_eq!(parse_flat(&text), Some(meta), "{text}");
    }
}
