//! The descriptor limit (`RLIMIT_NOFILE`) as the watcher needs it: read
//! both limits, and raise the soft one towards the hard one once per process
//! (see docs/design.md, "Events").

use std::io;
use std::sync::OnceLock;

use super::cvt;

/// The soft and hard `RLIMIT_NOFILE` (`RLIM_INFINITY` as `u64::MAX`).
pub fn nofile() -> io::Result<(u64, u64)> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    cvt(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) })?;
    Ok((rl.rlim_cur, rl.rlim_max))
}

/// The soft limit a raise aims for at most: enough for a fleet's pidfds
/// and probes, not so many that a host's `select(2)` or close-all loops
/// suffer more than they must.
pub const RAISE_CAP: u64 = 1 << 16;

/// What [`raise_nofile_once`] did, the same for every caller of the
/// process: the soft limit before and after (equal when nothing changed
/// or the raise was refused).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Raised {
    pub before: u64,
    pub after: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to `min(hard, RAISE_CAP)` when it is
/// below that, once per process (the first call decides; later calls
/// return its result). Never lowers a limit, never touches the hard one.
/// `None` when the limits cannot be read or the raise is refused.
pub fn raise_nofile_once() -> Option<Raised> {
    static ONCE: OnceLock<Option<Raised>> = OnceLock::new();
    *ONCE.get_or_init(|| {
        let (soft, hard) = nofile().ok()?;
        let want = hard.min(RAISE_CAP);
        if soft >= want {
            return Some(Raised {
                before: soft,
                after: soft,
            });
        }
        let rl = libc::rlimit {
            rlim_cur: want,
            rlim_max: hard,
        };
        // SAFETY: valid in-pointer.
        cvt(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) }).ok()?;
        Some(Raised {
            before: soft,
            after: want,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_and_the_raise_never_lowers() {
        let (soft, hard) = nofile().unwrap();
        assert!(soft <= hard);
        let r = raise_nofile_once().expect("raising towards the hard limit is allowed");
        assert!(r.after >= r.before);
        assert_eq!(raise_nofile_once(), Some(r), "decided once");
        let (now, _) = nofile().unwrap();
        assert!(now >= r.after.min(hard));
    }
}
