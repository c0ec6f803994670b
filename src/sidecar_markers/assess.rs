//! Where a verdict is decided: one marker's liveness and probe outcome
//! become its verdict, state, reason and detail (docs/design.md, "States",
//! "Verdicts", "Reason codes"). `list`, `get`, `gc_stale`, `probe_entry`,
//! `scan`, `inspect` and `watch` all come through [`assess`].

use std::path::Path;
use std::time::SystemTime;

use super::error::Result;
use super::model::{Reason, SidecarEntry, State, Verdict};
use super::options::ProbeOptions;
use super::probe::{Outcome, Prober};
use super::process::{self, Foreign, Liveness};
use super::read::{self, Loc, Marker};
use super::{sys, text};

/// Everything one marker's judgement produced.
pub(crate) struct Assessment {
    pub verdict: Verdict,
    pub reason: Reason,
    pub entry: SidecarEntry,
    /// What `stop` and `watch` act on (they re-check it with a pidfd held).
    pub liveness: Liveness,
    /// The probe's outcome (`Unavailable` when stale: never probed).
    outcome: Outcome,
    /// The pid namespace the pid was recorded in, when it is not the
    /// reader's (the detail then says so).
    foreign_ns: Option<u64>,
}

/// Reads and judges `run/<sandbox_id>`; `None` when there is no such
/// marker directory. The options are checked first
/// ([`ProbeOptions::validate`]), as [`scan`](super::scan()) checks its own.
pub(crate) fn by_id(
    runtime_dir: &Path,
    sandbox_id: &str,
    opts: &ProbeOptions,
) -> Result<Option<Assessment>> {
    opts.validate()?;
    read::with_marker(runtime_dir, sandbox_id, None, |run, name, marker, _| {
        assess_one(Loc::Entry { run, name }, marker, opts)
    })
}

/// Judges one marker: the one liveness function, then (unless provably
/// stopped) one probe of its endpoint.
pub(crate) fn assess_one(loc: Loc<'_>, marker: Marker, opts: &ProbeOptions) -> Assessment {
    let mut fds = sys::MarkerFds::default();
    let uptime = read::uptime_secs(loc, &marker.path, SystemTime::now(), &mut fds).unwrap_or(None);
    let (liveness, _) = liveness(loc, &marker, &mut fds, &Foreign::now());
    let outcome = if liveness.is_stale() {
        None
    } else {
        let mut prober = Prober::new(opts.timeout, 1, None);
        match prober.start(0, &marker.endpoint, loc, &marker.path, &mut fds) {
            Some(o) => Some(o),
            None => prober.finish().first().map(|&(_, o)| o),
        }
    };
    assess(marker, liveness, outcome, uptime)
}

/// The one liveness function for a marker read from `run/`: the judgement
/// of its recorded process ([`process::resolve_in`]), then, where that
/// calls a marker without identity gone, the proof of its own socket
/// ([`socket_proof`]). `list`, `get`, `inspect`, `gc_stale`, `watch` and
/// `stop` all judge a marker here. Gives the pid that names the process
/// here (see [`process::resolve_in`]); `foreign` is how a pid of another
/// namespace is found (a scan's map, or [`Foreign::now`] for one marker).
pub(crate) fn liveness(
    loc: Loc<'_>,
    marker: &Marker,
    fds: &mut sys::MarkerFds,
    foreign: &Foreign<'_>,
) -> (Liveness, Option<u32>) {
    let (judged, here) = process::resolve_in(&marker.meta, fds, foreign);
    (socket_proof(loc, marker, judged), here)
}

/// What the marker's own socket proves where the pid alone would call a
/// sidecar gone: a marker that records no identity (the upstream
/// launcher's seven seed fields) may come from a container, its pid that
/// namespace's. When the listener of `<marker>/sidecar.sock` (pinned by
/// `SO_PEERPIDFD`; its pid as this reader sees it) has the recorded pid in
/// its own pid namespace, the recorded process lives: alive, its identity
/// foreign (proved by the socket, not by recorded fields). Anything else,
/// and every marker with identity fields, keeps its judgement. The same
/// proof `stop` uses (docs/design.md, "Trust"); costs a connect only for
/// such markers judged gone.
fn socket_proof(loc: Loc<'_>, marker: &Marker, liveness: Liveness) -> Liveness {
    let meta = &marker.meta;
    let no_identity =
        meta.pid_ns_inode.is_none() && meta.pid_start_ticks.is_none() && meta.boot_id.is_none();
    if !no_identity
        || !matches!(liveness, Liveness::Gone)
        || !matches!(marker.endpoint, super::endpoint::Endpoint::MarkerSocket)
    {
        return liveness;
    }
    match super::probe::socket_listener(loc) {
        Some((_pidfd, here)) if super::host_pids::own_ns_pid(here) == Some(meta.pid) => {
            Liveness::Alive(process::Identity::Foreign(SOCKET_PROVED))
        }
        _ => liveness,
    }
}

/// The detail of a sidecar [`socket_proof`] found alive.
const SOCKET_PROVED: &str = "no identity recorded and no process with that pid here: the \
    listener of its socket has that pid in its own pid namespace";

/// The one place a marker's verdict, state, reason and detail are decided
/// from its liveness and (for the non-stale) its probe outcome. `list`,
/// `get`, `gc_stale`, `probe_entry` and `inspect` all come through here.
/// (The detail, a sentence for a person, is only written when asked for:
/// `list` never shows it.)
pub(crate) fn assess(
    marker: Marker,
    liveness: Liveness,
    outcome: Option<Outcome>,
    uptime: Option<u64>,
) -> Assessment {
    let outcome = outcome.unwrap_or(Outcome::Unavailable("the probe gave no answer"));
    let (verdict, state, reason) = match liveness {
        Liveness::Gone => (Verdict::Stale, State::Stopped, Reason::ProcessGone),
        Liveness::Zombie => (Verdict::Stale, State::Stopped, Reason::Zombie),
        Liveness::Reused => (Verdict::Stale, State::Stopped, Reason::PidReused),
        Liveness::OtherBoot => (Verdict::Stale, State::Stopped, Reason::OtherBoot),
        Liveness::Unverifiable(_) if outcome.serves() => {
            (Verdict::Live, State::Running, Reason::Serving)
        }
        Liveness::Unverifiable(_) => (Verdict::Live, State::Unknown, Reason::Unverifiable),
        Liveness::Alive(_) => (Verdict::Live, outcome.state(), outcome.reason()),
    };
    let own = process::own_namespaces().0;
    let foreign_ns = marker.meta.pid_ns_inode.filter(|&ns| own != Some(ns));
    Assessment {
        verdict,
        reason,
        foreign_ns,
        entry: marker.into_entry(state, uptime),
        liveness,
        outcome,
    }
}

impl Assessment {
    /// One line for a person: why the marker got its verdict and state.
    pub(crate) fn detail(&self) -> String {
        let pid = self.entry.pid;
        let outcome = self.outcome;
        let detail = match (self.liveness, self.foreign_ns) {
            (Liveness::Gone, Some(ns)) => {
                format!(
                    "no process with pid {pid} in its pid namespace (pid:[{ns}]), which this reader sees whole"
                )
            }
            (Liveness::Zombie, Some(ns)) => {
                format!(
                    "pid {pid} of its pid namespace (pid:[{ns}]) is a zombie: the sidecar exited"
                )
            }
            (Liveness::Reused, Some(ns)) => format!(
                "pid {pid} of its pid namespace (pid:[{ns}]) belongs to another process now (its start time differs)"
            ),
            _ => String::new(),
        };
        let detail = match self.liveness {
            _ if !detail.is_empty() => detail,
            Liveness::Gone => format!("no process with pid {pid}"),
            Liveness::Zombie => format!("pid {pid} is a zombie: the sidecar exited"),
            Liveness::Reused => {
                format!("pid {pid} belongs to another process now (its start time differs)")
            }
            Liveness::OtherBoot => "the marker was written during another boot".to_owned(),
            // Serving despite an unverifiable process: `assess` made it running.
            Liveness::Unverifiable(why) if self.reason == Reason::Serving => {
                format!("{}; process not verified: {why}", outcome.detail())
            }
            Liveness::Unverifiable(why) => format!(
                "process cannot be checked: {why}; endpoint: {}",
                outcome.detail()
            ),
            Liveness::Alive(
                process::Identity::Unchecked(why) | process::Identity::Foreign(why),
            ) => {
                format!("{}; identity not checked: {why}", outcome.detail())
            }
            Liveness::Alive(_) => outcome.detail(),
        };
        text::one_line(&detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::endpoint::Endpoint;
    use crate::sidecar_markers::model::MetadataFile;
    use crate::sidecar_markers::process::Identity;
    use crate::sidecar_markers::read::MetaId;
    use std::path::PathBuf;

    fn marker() -> Marker {
        Marker {
            path: PathBuf::from("/rt/run/sb-1"),
            meta: MetadataFile {
                sandbox_id: "sb-1".into(),
                agent_id: "a".into(),
                session_id: "s".into(),
                authority_url: "u".into(),
                policy_bundle_version: "p".into(),
                pid: 4242,
                started_at: "t".into(),
                listen: None,
                boot_id: None,
                pid_start_ticks: None,
                pid_ns_inode: None,
                boottime_offset_ns: None,
            },
            endpoint: Endpoint::MarkerSocket,
            meta_id: MetaId {
                dev: 1,
                ino: 2,
                digest: 3,
            },
            meta_owner: (0, 0o100600),
        }
    }

    /// Every probe outcome with the state and reason it gives a live
    /// process (docs/design.md, "Reason codes", the `live` rows but
    /// `unverifiable`).
    const OUTCOMES: [(Outcome, State, Reason); 12] = [
        (Outcome::Serving, State::Running, Reason::Serving),
        (Outcome::Listening, State::Running, Reason::Serving),
        (Outcome::Stuck, State::Unhealthy, Reason::Timeout),
        (Outcome::Missing, State::Unhealthy, Reason::EndpointMissing),
        (
            Outcome::Refused,
            State::Unhealthy,
            Reason::ConnectionRefused,
        ),
        (Outcome::BacklogFull, State::Unhealthy, Reason::BacklogFull),
        (Outcome::Timeout, State::Unhealthy, Reason::Timeout),
        (
            Outcome::PermissionDenied,
            State::Unknown,
            Reason::PermissionDenied,
        ),
        (Outcome::NotASocket, State::Unhealthy, Reason::NotASocket),
        (Outcome::Unreachable, State::Unhealthy, Reason::Unreachable),
        (
            Outcome::ConnectError(libc::EINVAL),
            State::Unhealthy,
            Reason::ConnectError,
        ),
        (
            Outcome::Unavailable("out of descriptors"),
            State::Unknown,
            Reason::ProbeUnavailable,
        ),
    ];

    /// The stale verdicts of the liveness function and their reasons.
    const STALE: [(Liveness, Reason); 4] = [
        (Liveness::Gone, Reason::ProcessGone),
        (Liveness::Zombie, Reason::Zombie),
        (Liveness::Reused, Reason::PidReused),
        (Liveness::OtherBoot, Reason::OtherBoot),
    ];

    const IDENTITIES: [Identity; 4] = [
        Identity::Verified,
        Identity::NotRecorded,
        Identity::Unchecked("hidepid"),
        Identity::Foreign("another pid namespace"),
    ];

    /// Every (liveness, outcome) that `assess` can be given, with the
    /// verdict, state and reason docs/design.md says it gets.
    fn rows() -> Vec<(Liveness, Option<Outcome>, Verdict, State, Reason)> {
        let mut rows = Vec::new();
        // Alive, whatever the identity: the probe decides.
        for id in IDENTITIES {
            for (o, state, reason) in OUTCOMES {
                rows.push((Liveness::Alive(id), Some(o), Verdict::Live, state, reason));
            }
            // No answer at all: the probe could not be made.
            rows.push((
                Liveness::Alive(id),
                None,
                Verdict::Live,
                State::Unknown,
                Reason::ProbeUnavailable,
            ));
        }
        // Unverifiable: running when serving, else unknown.
        let unverifiable = Liveness::Unverifiable("another pid namespace");
        for (o, _, _) in OUTCOMES {
            let (state, reason) = match o {
                Outcome::Serving | Outcome::Listening => (State::Running, Reason::Serving),
                _ => (State::Unknown, Reason::Unverifiable),
            };
            rows.push((unverifiable, Some(o), Verdict::Live, state, reason));
        }
        rows.push((
            unverifiable,
            None,
            Verdict::Live,
            State::Unknown,
            Reason::Unverifiable,
        ));
        // Stale: stopped, whatever a probe said (a stale marker is never
        // probed; an outcome given anyway changes nothing).
        for (l, reason) in STALE {
            for o in [None, Some(Outcome::Serving), Some(Outcome::Timeout)] {
                rows.push((l, o, Verdict::Stale, State::Stopped, reason));
            }
        }
        rows
    }

    #[test]
    fn every_liveness_and_outcome_gets_its_verdict_state_and_reason() {
        for (liveness, outcome, verdict, state, reason) in rows() {
            let a = assess(marker(), liveness, outcome, Some(7));
            let case = format!("{liveness:?} + {outcome:?}");
            assert_eq!(a.verdict, verdict, "{case}");
            assert_eq!(a.entry.state, state, "{case}");
            assert_eq!(a.reason, reason, "{case}");
            assert_eq!(a.entry.uptime_secs, Some(7), "{case}");
            assert_eq!(a.entry.listen, "/rt/run/sb-1/sidecar.sock", "{case}");
            let detail = a.detail();
            assert!(!detail.is_empty() && !detail.contains('\n'), "{case}");
        }
    }

    /// The detail says what the verdict rests on.
    #[test]
    fn the_detail_names_what_was_not_checked() {
        let d = |l, o| assess(marker(), l, o, None).detail();
        assert_eq!(d(Liveness::Gone, None), "no process with pid 4242");
        let serving = d(Liveness::Unverifiable("why"), Some(Outcome::Serving));
        assert!(serving.contains("process not verified: why"), "{serving}");
        let not = d(Liveness::Unverifiable("why"), Some(Outcome::Refused));
        assert!(not.starts_with("process cannot be checked: why"), "{not}");
        let unchecked = d(
            Liveness::Alive(Identity::Unchecked("hidepid")),
            Some(Outcome::Serving),
        );
        assert!(
            unchecked.contains("identity not checked: hidepid"),
            "{unchecked}"
        );
        assert_eq!(
            d(Liveness::Alive(Identity::Verified), Some(Outcome::Serving)),
            Outcome::Serving.detail()
        );
    }

    /// docs/design.md's "Reason codes" table and `assess` agree: every
    /// code in the table is a `Reason`; every live or stale row's verdict
    /// and state are what `assess` gives for that reason, and every reason
    /// `assess` gives has a row. (Broken rows are decided by the reader
    /// and the scan, never here.)
    #[test]
    fn the_reason_table_of_the_design_is_what_assess_decides() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/design.md");
        let design = std::fs::read_to_string(path).unwrap();
        let section = design
            .split("\n## Reason codes\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/design.md has a \"Reason codes\" section");
        let table: Vec<(Reason, String, String)> = section
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .map(|l| {
                let cells: Vec<&str> = l.split(" | ").collect();
                let code = cells[0].trim_end_matches('`');
                let reason: Reason = serde_json::from_str(&format!("\"{code}\""))
                    .unwrap_or_else(|e| panic!("{code}: not a Reason ({e})"));
                (reason, cells[1].to_owned(), cells[2].to_owned())
            })
            .collect();
        assert_eq!(table.len(), 23, "one row per Reason");
        let decided = rows();
        for (reason, verdict, state) in &table {
            let here: Vec<_> = decided.iter().filter(|r| r.4 == *reason).collect();
            if verdict == "broken" {
                assert!(here.is_empty(), "{reason} is decided by assess");
                continue;
            }
            assert!(!here.is_empty(), "{reason}: no row of assess gives it");
            for (l, o, v, s, _) in here {
                assert_eq!(v.as_str(), verdict, "{reason}: {l:?} + {o:?}");
                assert_eq!(s.as_str(), state, "{reason}: {l:?} + {o:?}");
            }
        }
        for (_, _, _, _, reason) in &decided {
            assert!(
                table.iter().any(|(r, _, _)| r == reason),
                "{reason} has no row"
            );
        }
    }
}
