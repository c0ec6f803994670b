//! Whose word a marker carries, and what that word allows: the one place
//! that decides authority (docs/design.md, "Trust").
//!
//! A marker is a claim by whoever wrote it. Its *owner* is the uid owning
//! the marker directory; `metadata.toml` must have the same owner, and
//! neither may be writable by group or others, or the marker is nobody's
//! claim. The *bounding owners* are the non-root owners of the runtime
//! directory and of `run/`: whoever owns the directory bounds what the
//! library does in it, so root working over a directory owned by uid U does
//! only what U could.
//!
//! - [`may_remove`]: collection removes a stale marker only when each
//!   bounding owner is its owner (what that owner could remove itself).
//! - [`may_signal`]: `stop` signals a process only when the marker's owner
//!   and each bounding owner could signal it under the rules of `kill(2)`
//!   for an unprivileged sender (root, or the process's real or saved uid),
//!   and never a kernel thread or an ancestor of the caller. The caller's
//!   own authority is the kernel's to enforce (`EPERM`).

use super::process::Creds;

/// The bounding owners of a directory: the non-root owners of the runtime
/// directory and of `run/` (`Trust::bounding_owners`), at most two. Root
/// never bounds, so 0 marks an empty place.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Bounding([u32; 2]);

impl Bounding {
    pub fn new(owners: impl IntoIterator<Item = u32>) -> Bounding {
        let mut b = [0; 2];
        for (slot, uid) in b.iter_mut().zip(owners.into_iter().filter(|&u| u != 0)) {
            *slot = uid;
        }
        Bounding(b)
    }

    fn iter(self) -> impl Iterator<Item = u32> {
        self.0.into_iter().filter(|&u| u != 0)
    }
}

/// Group- or other-writable.
const WRITABLE_BY_OTHERS: u32 = 0o022;

/// Whose claim a marker is: the owner of its directory (`dir_uid`,
/// `dir_mode`), when `metadata.toml` (`meta_uid`, `meta_mode`) agrees and
/// neither is writable by others. `Err` says why it is nobody's claim.
pub(crate) fn claim(
    dir_uid: u32,
    dir_mode: u32,
    meta_uid: u32,
    meta_mode: u32,
) -> Result<u32, String> {
    if dir_mode & WRITABLE_BY_OTHERS != 0 {
        return Err(format!(
            "the marker directory (mode {:04o}) is writable by others, so it is nobody's claim",
            dir_mode & 0o7777
        ));
    }
    if meta_mode & WRITABLE_BY_OTHERS != 0 {
        return Err(format!(
            "its metadata.toml (mode {:04o}) is writable by others, so it is nobody's claim",
            meta_mode & 0o7777
        ));
    }
    if dir_uid != meta_uid {
        return Err(format!(
            "the marker directory is owned by uid {dir_uid} but its metadata.toml by uid \
             {meta_uid}, so it is nobody's claim"
        ));
    }
    Ok(dir_uid)
}

/// Whether collection may remove a stale marker owned by `owner` in a
/// directory whose bounding owners are `bounding` (non-root uids).
pub(crate) fn may_remove(bounding: Bounding, owner: Result<u32, String>) -> Result<(), String> {
    let owner = owner?;
    match bounding.iter().find(|&b| b != owner) {
        Some(b) => Err(format!(
            "the runtime directory belongs to uid {b}, who could not remove a marker of uid {owner}"
        )),
        None => Ok(()),
    }
}

/// Whether `uid` could signal a process with credentials `creds` under the
/// rules of `kill(2)` for a sender whose real and effective uid are `uid`.
fn could_signal(uid: u32, creds: &Creds) -> bool {
    let [real, _effective, saved, _fs] = creds.uids;
    uid == 0 || uid == real || uid == saved
}

/// Whether `stop` may signal `pid` (credentials `creds`, read after the
/// pidfd pinned it) for a marker owned by `owner` in a directory bounded by
/// `bounding`, `ancestors` being the caller's. `Err` says why not.
pub(crate) fn may_signal(
    bounding: Bounding,
    owner: u32,
    pid: u32,
    creds: &Creds,
    ancestors: &[u32],
) -> Result<(), String> {
    if creds.kthread {
        return Err("it is a kernel thread".to_owned());
    }
    if ancestors.contains(&pid) {
        return Err("it is an ancestor of the caller".to_owned());
    }
    let [real, _, saved, _] = creds.uids;
    if !could_signal(owner, creds) {
        return Err(format!(
            "the marker's owner, uid {owner}, could not signal it (its real uid is {real}, \
             its saved uid {saved})"
        ));
    }
    if let Some(b) = bounding.iter().find(|&b| !could_signal(b, creds)) {
        return Err(format!(
            "the runtime directory belongs to uid {b}, who could not signal it (its real uid \
             is {real}, its saved uid {saved})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(real: u32, saved: u32) -> Creds {
        Creds {
            uids: [real, 4242, saved, 4242],
            ppid: 1,
            kthread: false,
        }
    }

    #[test]
    fn a_claim_needs_agreeing_owners_and_no_writers_but_the_owner() {
        assert_eq!(claim(1000, 0o40700, 1000, 0o100600), Ok(1000));
        assert_eq!(claim(0, 0o40755, 0, 0o100644), Ok(0));
        for (dm, mm) in [
            (0o40770, 0o100600),
            (0o40702, 0o100600),
            (0o41777, 0o100600),
        ] {
            assert!(claim(1000, dm, 1000, mm).is_err(), "{dm:o}");
        }
        for mm in [0o100620, 0o100602, 0o100666] {
            assert!(claim(1000, 0o40700, 1000, mm).is_err(), "{mm:o}");
        }
        let e = claim(1000, 0o40700, 0, 0o100600).unwrap_err();
        assert!(e.contains("uid 1000") && e.contains("uid 0"), "{e}");
    }

    /// A refusal shows the permission bits it judged (no file type bits).
    #[test]
    fn a_refused_claim_names_the_permission_bits_it_saw() {
        let e = claim(1000, 0o40770, 1000, 0o100600).unwrap_err();
        assert!(e.contains("directory (mode 0770)"), "{e}");
        let e = claim(1000, 0o41777, 1000, 0o100600).unwrap_err();
        assert!(e.contains("directory (mode 1777)"), "{e}");
        let e = claim(1000, 0o40700, 1000, 0o100622).unwrap_err();
        assert!(e.contains("metadata.toml (mode 0622)"), "{e}");
    }

    #[test]
    fn removal_stays_within_the_bounding_owners() {
        assert_eq!(may_remove(Bounding::new([]), Ok(1000)), Ok(()));
        assert_eq!(may_remove(Bounding::new([1000]), Ok(1000)), Ok(()));
        assert_eq!(may_remove(Bounding::new([1000, 1000]), Ok(1000)), Ok(()));
        assert!(may_remove(Bounding::new([1000]), Ok(0)).is_err());
        assert!(may_remove(Bounding::new([1000]), Ok(1001)).is_err());
        assert!(may_remove(Bounding::new([]), Err("nobody's".into())).is_err());
    }

    #[test]
    fn signalling_follows_kill_rules_for_every_principal() {
        // The owner may signal its own processes (real or saved uid).
        assert_eq!(
            may_signal(Bounding::new([]), 1000, 50, &creds(1000, 7), &[]),
            Ok(())
        );
        assert_eq!(
            may_signal(Bounding::new([]), 1000, 50, &creds(7, 1000), &[]),
            Ok(())
        );
        // …not by the effective or filesystem uid alone, as kill(2).
        assert!(may_signal(Bounding::new([]), 1000, 50, &creds(7, 7), &[]).is_err());
        // Root as owner may signal anyone; a bounding owner still bounds.
        assert_eq!(
            may_signal(Bounding::new([]), 0, 50, &creds(7, 7), &[]),
            Ok(())
        );
        let e = may_signal(Bounding::new([1000]), 0, 50, &creds(7, 7), &[]).unwrap_err();
        assert!(e.contains("uid 1000"), "{e}");
        assert_eq!(
            may_signal(Bounding::new([1000]), 0, 50, &creds(1000, 1000), &[]),
            Ok(())
        );
        assert_eq!(
            may_signal(Bounding::new([1000]), 1000, 50, &creds(1000, 1000), &[]),
            Ok(())
        );
        assert!(may_signal(Bounding::new([1001]), 1000, 50, &creds(1000, 1000), &[]).is_err());
        // Never a kernel thread or an ancestor, whoever owns the marker.
        let mut k = creds(0, 0);
        k.kthread = true;
        assert!(
            may_signal(Bounding::new([]), 0, 2, &k, &[])
                .unwrap_err()
                .contains("kernel thread")
        );
        assert!(
            may_signal(Bounding::new([]), 0, 50, &creds(0, 0), &[60, 50])
                .unwrap_err()
                .contains("ancestor")
        );
    }
}
