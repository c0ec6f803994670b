//! Names reserved for the library in `run/` — a writer's `.tmp-…`, a
//! collector's `.gc-…`, a tree set aside as `.kept-…` — and which of them a
//! scan may finish as debris (docs/design.md, "On-disk format", "Trust",
//! "Debris"). Listings never show dot-names.

use std::ffi::{CStr, CString};
use std::os::fd::BorrowedFd;

use super::model::MAX_PID;
use super::{process, sys};

/// Prefix of a marker being assembled: `.tmp-<writer pid>-<pidns>-<random>`
/// (see [`reserved_name`]; `.tmp-<pid>-<n>` is the old form).
pub(crate) const TMP_PREFIX: &str = ".tmp-";

/// Prefix of a marker being removed: `.gc-<collector pid>-<pidns>-<random>`.
pub(crate) const GC_PREFIX: &str = ".gc-";
/// Prefix of a tree a collector moved out of the namespace, found not to be
/// the marker it judged, and could not put back (its name was taken again
/// meanwhile): `.kept-<pid>-<pidns>-<random>`. Never removed automatically.
pub(crate) const KEPT_PREFIX: &str = ".kept-";

/// A fresh reserved name `<prefix><pid>-<pidns>-<random>`: this process's
/// pid, the inode of its pid namespace (0 when it cannot be read: such a
/// name is never finished by anyone) and 64 bits from `getrandom(2)`, as 16
/// hex digits, so no one can predict the name and plant something there
/// first. Callers create it with `RENAME_NOREPLACE` or `mkdirat` and pick
/// another on `EEXIST`.
pub(crate) fn reserved_name(prefix: &str) -> CString {
    let ns = process::own_namespaces().0.unwrap_or(0);
    CString::new(format!(
        "{prefix}{}-{ns}-{:016x}",
        std::process::id(),
        random_u64()
    ))
    .expect("no NUL in a formatted name")
}

/// 64 random bits from `getrandom(2)`. Should the call fail (a seccomp
/// filter, a kernel before 3.17), a keyed hash of a counter and the clock
/// stands in: its key comes from std's `RandomState`, which reads the OS's
/// random source by other means, so the name stays unpredictable.
fn random_u64() -> u64 {
    let mut buf = [0u8; 8];
    if sys::random::fill(&mut buf).is_ok() {
        return u64::from_le_bytes(buf);
    }
    use std::hash::BuildHasher;
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::hash::RandomState::new().hash_one((n, now))
}

/// What a reserved name says about itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reserved {
    /// A writer's temp dir or a collector's tomb, made by process `pid`.
    /// `pid_ns`: the inode of that process's pid namespace, or `None` for
    /// a name of the old form `<prefix><pid>-<n>`, which did not record it
    /// (such a pid is taken to be the initial pid namespace's).
    Work { pid: u32, pid_ns: Option<u64> },
    /// `.kept-…`: never removed automatically.
    Kept,
    /// A reserved prefix in no form this library writes.
    Unrecognised,
}

/// Whether `name` is reserved for the library (`.tmp-`, `.gc-`, `.kept-`)
/// and what it says; `None` for any other name.
pub(crate) fn parse_reserved(name: &[u8]) -> Option<Reserved> {
    if name.starts_with(KEPT_PREFIX.as_bytes()) {
        return Some(Reserved::Kept);
    }
    let rest = name
        .strip_prefix(GC_PREFIX.as_bytes())
        .or_else(|| name.strip_prefix(TMP_PREFIX.as_bytes()))?;
    let decimal = |b: &[u8]| -> Option<u64> {
        if b.is_empty() || b.len() > 20 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(b).ok()?.parse().ok()
    };
    let fields: Vec<&[u8]> = rest.split(|&b| b == b'-').collect();
    let pid = fields
        .first()
        .and_then(|f| decimal(f))
        .and_then(|p| u32::try_from(p).ok())
        .filter(|p| (1..=MAX_PID).contains(p));
    let work = match (pid, fields.as_slice()) {
        (Some(pid), [_, n]) if decimal(n).is_some() => Reserved::Work { pid, pid_ns: None },
        (Some(pid), [_, ns, random])
            if random.len() == 16 && random.iter().all(|b| b.is_ascii_hexdigit()) =>
        {
            match decimal(ns) {
                Some(ns) => Reserved::Work {
                    pid,
                    pid_ns: Some(ns),
                },
                None => Reserved::Unrecognised,
            }
        }
        _ => Reserved::Unrecognised,
    };
    Some(work)
}

/// The device and inode of the entry [`judge_debris`] judged, so that what
/// is removed is what was judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Seen {
    pub dev: u64,
    pub ino: u64,
}

/// What a scan does with one reserved entry of `run/`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Debris {
    /// Provably the library's own, and its maker provably gone: finish
    /// removing it (`gc::finish_leftover`, given the device and inode judged).
    Finish(Seen),
    /// A writer or collector at work (alive, seen from its own pid
    /// namespace): leave it and say nothing.
    InProgress,
    /// It vanished while we looked.
    Vanished,
    /// Left in place, for the reason given (one line; `inspect` shows it).
    Left(String),
}

/// Decides whether the reserved entry `name` of `run/` is debris a scan
/// may finish (docs/design.md, "Trust", "Debris"). Both must hold:
///
/// 1. its owner (`lstat`) is the owner of `run/` or root, or — in a shared
///    (sticky) `run/`, where each tenant can rename only its own entries —
///    the caller's effective uid: nobody can launder someone else's tree
///    into a reserved name and have it deleted with the caller's rights;
/// 2. its maker is provably gone in the maker's own pid namespace: this
///    process is in the namespace the name records (the initial one for
///    old names that record none), and `kill(pid, 0)` says `ESRCH`.
pub(crate) fn judge_debris(run: BorrowedFd<'_>, name: &CStr) -> Debris {
    let left = |why: String| Debris::Left(format!("a reserved name, left in place: {why}"));
    let (pid, pid_ns) = match parse_reserved(name.to_bytes()) {
        None => return left("not a name reserved for the library".into()),
        Some(Reserved::Kept) => {
            return left(
                "a tree a collector moved aside because it was not the marker it had judged \
                 and its name was taken again; never removed automatically (a person decides)"
                    .into(),
            );
        }
        Some(Reserved::Unrecognised) => {
            return left("the name is in no form this library writes".into());
        }
        Some(Reserved::Work { pid, pid_ns }) => (pid, pid_ns),
    };
    let st = match sys::lstatat(run, name) {
        Ok(st) => st,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Debris::Vanished,
        Err(e) => return left(format!("cannot stat it: {e}")),
    };
    let run_st = match sys::fstat(run) {
        Ok(st) => st,
        Err(e) => return left(format!("cannot stat run/: {e}")),
    };
    let euid = sys::geteuid();
    let sticky = run_st.st_mode & libc::S_ISVTX != 0;
    let owner = st.st_uid;
    if !(owner == run_st.st_uid || owner == 0 || (sticky && owner == euid)) {
        let caller = if sticky {
            format!(", nor the caller (uid {euid})")
        } else {
            String::new()
        };
        return left(format!(
            "owned by uid {owner}, neither run/'s owner (uid {}) nor root{caller}: \
             not provably the library's",
            run_st.st_uid
        ));
    }
    let mine = process::own_namespaces().0;
    match pid_ns {
        Some(ns) if ns == 0 || mine != Some(ns) => {
            return left(format!(
                "made by pid {pid} in pid namespace {ns}, not this reader's: \
                 its process cannot be proved gone from here"
            ));
        }
        None if mine != Some(process::INITIAL_PID_NS_INODE) => {
            return left(format!(
                "an old-form name that records no pid namespace, made by pid {pid}, and \
                 this reader is not in the initial pid namespace: its process cannot be \
                 proved gone from here"
            ));
        }
        _ => {}
    }
    match process::kill_probe(pid) {
        Ok(true) => Debris::InProgress,
        Ok(false) => Debris::Finish(Seen {
            dev: st.st_dev,
            ino: st.st_ino,
        }),
        Err(e) => left(format!("kill({pid}, 0) failed: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names the library makes record its pid and pid namespace and
    /// end in 64 random bits; the parser reads exactly the two forms (new
    /// and old) and nothing else as work of a process.
    #[test]
    fn reserved_names_record_pid_and_namespace_and_are_unguessable() {
        let ns = process::own_namespaces().0.expect("own pid namespace");
        let pid = std::process::id();
        let a = reserved_name(GC_PREFIX);
        let b = reserved_name(GC_PREFIX);
        assert_ne!(a, b);
        for (prefix, name) in [(GC_PREFIX, a), (TMP_PREFIX, reserved_name(TMP_PREFIX))] {
            let s = name.to_str().unwrap();
            let rest = s.strip_prefix(prefix).unwrap();
            let random = rest.rsplit('-').next().unwrap();
            assert_eq!(random.len(), 16, "{s}");
            assert_eq!(rest, format!("{pid}-{ns}-{random}"));
            assert_eq!(
                parse_reserved(s.as_bytes()),
                Some(Reserved::Work {
                    pid,
                    pid_ns: Some(ns)
                })
            );
        }
        assert_eq!(
            parse_reserved(b".tmp-30555-0"),
            Some(Reserved::Work {
                pid: 30555,
                pid_ns: None
            })
        );
        assert_eq!(
            parse_reserved(b".kept-1-2-0123456789abcdef"),
            Some(Reserved::Kept)
        );
        for odd in [
            &b".tmp-+5-0"[..],
            b".tmp-5",
            b".gc-0-1",
            b".gc-2147483648-1",
            b".tmp-5-1-2-3",
            b".tmp-5-x-0123456789abcdef",
            b".tmp-5-1-0123456789abcdeg",
            b".tmp-5-1-0123456789abcde",
            b".gc--1-0",
            b".tmp-",
        ] {
            assert_eq!(
                parse_reserved(odd),
                Some(Reserved::Unrecognised),
                "{}",
                String::from_utf8_lossy(odd)
            );
        }
        for not_reserved in [&b".hidden"[..], b".tmp", b".gc", b"tmp-1-0", b".kept"] {
            assert_eq!(parse_reserved(not_reserved), None);
        }
    }
}
