//! A probe round of the watcher: the round's one socket-diagnostics dump,
//! the settled sidecars judged by it at once, the others in slices spread
//! over the interval, and what a slice examines in full (docs/design.md,
//! "Events", *A probe round*).

use super::*;

/// A probe round under way (see [`Engine::probe_round`]).
#[derive(Default)]
pub(super) struct Round {
    /// Its first tick was taken and ticks remain.
    pub(super) open: bool,
    /// The known markers its ticks still have to look at (those its dump
    /// did not judge at its first tick), in id order, the last first.
    pub(super) rest: Vec<String>,
    /// How many each tick takes.
    pub(super) per: usize,
    /// Its one socket-diagnostics dump, taken at its first tick (`None`
    /// for a fleet too small for one).
    pub(super) fleet: Option<probe::Fleet>,
}

impl Round {
    /// A round whose ticks look at `rest` (in id order): spread over
    /// [`slices_for`] ticks, which it returns.
    pub(super) fn spread(&mut self, mut rest: Vec<String>) -> u32 {
        let ticks = slices_for(rest.len());
        self.per = rest.len().div_ceil(ticks as usize);
        rest.reverse();
        self.rest = rest;
        self.open = true;
        ticks
    }

    /// The markers of the next tick; the last tick closes the round.
    pub(super) fn take(&mut self) -> Vec<String> {
        let keep = self.rest.len().saturating_sub(self.per);
        let mut slice = self.rest.split_off(keep);
        slice.reverse();
        if self.rest.is_empty() {
            self.open = false;
            self.rest = Vec::new();
        }
        slice
    }
}

/// A probe round is spread into slices of about this many markers, one
/// slice per tick, at most [`MAX_SLICES`] ticks per probe interval.
const SLICE: usize = 500;
const MAX_SLICES: usize = 20;

/// How many ticks a probe round over `n` markers is spread over.
pub(super) fn slices_for(n: usize) -> u32 {
    n.div_ceil(SLICE).clamp(1, MAX_SLICES) as u32
}

impl Engine {
    /// One tick of a probe round. A sidecar whose marker directory is
    /// watched, whose process is pinned by a pidfd and whose last state is
    /// `running` or `unhealthy` ([`settled`]) can change in one way only
    /// that no trigger reports: its endpoint's answer. Its endpoint alone
    /// is probed, and only a sidecar whose probe disagrees with the state
    /// reported is judged again in full (the same scan as `list`). Every
    /// other known marker, and those in `waiting`, is judged again in full.
    ///
    /// The first tick of a round takes the round's one socket-diagnostics
    /// dump and judges by it, at once, every settled sidecar whose socket
    /// file an earlier round found (see [`Self::start_round`]); the round's
    /// ticks look at the other known markers, a slice each, probing the
    /// settled ones through the probe code of `list` with that dump.
    pub(super) fn probe_round(&mut self, waiting: BTreeSet<String>) -> Result<()> {
        let mut full = waiting;
        if !self.round.open {
            self.start_round(&mut full);
        }
        let mut quiet: Vec<(&String, &SidecarEntry)> = Vec::new();
        let slice = self.round.take();
        for name in &slice {
            let Some((name, entry)) = self.model.known().get_key_value(name) else {
                continue; // gone since
            };
            if settled(&self.pids, &self.watches, name, entry, &full) {
                quiet.push((name, entry));
            } else {
                full.insert(name.clone());
            }
        }
        if !quiet.is_empty() {
            let run = match trust::open_run(&self.runtime_dir) {
                Ok(Some(run)) => run,
                // Missing, or not openable: the full judgement says which.
                Ok(None) | Err(_) => {
                    full.extend(quiet.into_iter().map(|(n, _)| n.clone()));
                    return self.examine(full);
                }
            };
            let (disagree, found) = probe_quietly(
                run.fd.as_fd(),
                &self.run_path,
                &quiet,
                self.opts.probe,
                self.round.fleet.as_ref(),
            );
            full.extend(disagree);
            for (name, q) in found {
                self.pids.set_quiet(&name, q);
            }
        }
        self.examine(full)
    }

    /// The first tick of a probe round: takes the round's dump (none for
    /// fewer than [`FLEET_MIN_ENTRIES`] markers: they connect, as a small
    /// scan does), judges by it every settled sidecar whose socket file an
    /// earlier round found ([`Pids::quiet`]; those it disagrees with, or
    /// cannot answer for, go to `full`), and spreads the other known
    /// markers over the round's ticks.
    ///
    /// Such a file needs no lookup: it is the one a probe opened beneath
    /// the marker since the marker was last judged in full, and whatever
    /// would make that path another file, or change who may connect to it,
    /// shows on the marker directory's inotify watch (`sidecar.sock`
    /// created, deleted, moved, its attributes changed), which has the
    /// marker judged in full and the file forgotten. What inotify does not
    /// see (a mount over the marker) waits for the next full scan.
    fn start_round(&mut self, full: &mut BTreeSet<String>) {
        // The last round's dump goes before the next is taken.
        self.round = Round::default();
        let known = self.model.known();
        let mut judged = 0;
        if known.len() >= FLEET_MIN_ENTRIES {
            let fleet = probe::Fleet::new(self.opts.probe.timeout);
            if let Some(snap) = fleet.snapshot() {
                for (name, q) in self.pids.quiet() {
                    judged += 1;
                    if full.contains(name) {
                        continue;
                    }
                    let agree = snap
                        .judge_socket(q.file)
                        .is_some_and(|o| agrees(o, q.state));
                    if !agree {
                        full.insert(name.clone());
                    }
                }
            }
            self.round.fleet = Some(fleet);
        }
        // Every pinned sidecar is a known one: when the dump judged as
        // many as are known, nothing is left for the ticks.
        let rest: Vec<String> = if judged == known.len() {
            Vec::new()
        } else {
            let fleet = self.round.fleet.as_ref();
            let dumped = fleet.is_some_and(|f| f.snapshot().is_some());
            let judged: std::collections::HashSet<&String> = if dumped {
                self.pids.quiet().map(|(n, _)| n).collect()
            } else {
                Default::default()
            };
            known
                .keys()
                .filter(|n| !judged.contains(n))
                .cloned()
                .collect()
        };
        let ticks = self.round.spread(rest);
        self.schedule.spread(ticks);
    }

    /// Judges the markers `names` again and reports the differences.
    pub(super) fn examine(&mut self, names: BTreeSet<String>) -> Result<()> {
        if names.is_empty() {
            return Ok(());
        }
        let run = match trust::open_run(&self.runtime_dir) {
            Ok(run) => run,
            Err(e) => {
                // Not judged: judged again later, never taken for gone.
                self.schedule.retry_later(names, Instant::now());
                return Err(e);
            }
        };
        let Some(run) = run else {
            self.watches.forget_run();
            self.apply(Scan::default(), Some(&names));
            return Ok(());
        };
        let mode = self.mode().trusting(&run.trust);
        let run = run.fd;
        let mut entries = Vec::with_capacity(names.len());
        for name in &names {
            let c = CString::new(name.as_str()).expect("sandbox ids have no NUL");
            if !self.watches.watches_marker(name) {
                let degraded = self.watches.watch_marker(run.as_fd(), &c);
                self.degrade(degraded);
            }
            entries.push(sys::DirEntry {
                name: c,
                d_type: libc::DT_UNKNOWN,
            });
        }
        let scan = scan_entries(run.as_fd(), &self.run_path, &entries, mode);
        self.apply(scan, Some(&names));
        Ok(())
    }
}

/// Whether the sidecar `name` (reported as `entry`) is settled: its
/// marker directory watched, its process pinned, its state `running` or
/// `unhealthy`, and not waiting to be judged in full (`full`). Only its
/// endpoint's answer can change without a trigger.
fn settled(
    pids: &Pids,
    watches: &Watches,
    name: &str,
    entry: &SidecarEntry,
    full: &BTreeSet<String>,
) -> bool {
    matches!(entry.state, State::Running | State::Unhealthy)
        && pids.pinned(name)
        && watches.watches_marker(name)
        && !full.contains(name)
}

/// Probes the endpoints of the `quiet` sidecars of the open `run/` (see
/// [`Engine::probe_round`]) with the round's dump (`fleet`; `None`:
/// connect), and names those whose outcome disagrees with the state
/// reported, or whose probe could not be made; then those whose own socket
/// file the dump answered for, to be judged by the next rounds' dumps
/// without a lookup (see [`Engine::start_round`]).
fn probe_quietly(
    run: BorrowedFd<'_>,
    run_path: &std::path::Path,
    quiet: &[(&String, &SidecarEntry)],
    probe: crate::sidecar_markers::ProbeOptions,
    fleet: Option<&probe::Fleet>,
) -> (Vec<String>, Vec<(String, Quiet)>) {
    let mut prober = Prober::new(probe.timeout, probe::window(1), fleet);
    let snap = fleet.and_then(probe::Fleet::snapshot);
    let mut disagree = Vec::new();
    let mut found = Vec::new();
    for (key, (name, entry)) in quiet.iter().enumerate() {
        let c = CString::new(name.as_str()).expect("sandbox ids have no NUL");
        let loc = Loc::Entry { run, name: &c };
        let marker_path = run_path.join(name.as_str());
        let own_socket =
            std::path::Path::new(&entry.listen) == marker_path.join(read::DEFAULT_SOCKET).as_path();
        // The marker's own socket: its file, and the dump's answer for it.
        let answered = own_socket.then_some(snap).flatten().and_then(|snap| {
            let file = snap.socket_file(&probe::stat_marker_socket(loc)?)?;
            Some((file, snap.judge_socket(file)?))
        });
        if let Some((file, outcome)) = answered {
            if agrees(outcome, entry.state) {
                let state = entry.state;
                found.push(((*name).clone(), Quiet { file, state }));
            } else {
                disagree.push((*name).clone());
            }
            continue;
        }
        let endpoint = if own_socket {
            Ok(Endpoint::MarkerSocket)
        } else {
            parse_listen(Some(&entry.listen))
        };
        let Ok(endpoint) = endpoint else {
            disagree.push((*name).clone());
            continue;
        };
        let mut fds = sys::MarkerFds::default();
        if let Some(outcome) = prober.start(key, &endpoint, loc, &marker_path, &mut fds)
            && !agrees(outcome, entry.state)
        {
            disagree.push((*name).clone());
        }
    }
    for (key, outcome) in prober.finish() {
        if !agrees(outcome, quiet[key].1.state) {
            disagree.push(quiet[key].0.clone());
        }
    }
    (disagree, found)
}

/// Whether a probe's `outcome` leaves a pinned sidecar in `state`.
fn agrees(outcome: Outcome, state: State) -> bool {
    !matches!(outcome, Outcome::Unavailable(_)) && outcome.state() == state
}
