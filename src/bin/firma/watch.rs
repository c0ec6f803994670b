//! `firma sidecar watch`: the event stream on stdout until SIGINT/SIGTERM.
//!
//! With `--json`, one event object per line (NDJSON), flushed per event;
//! without, one readable line per event: time, sandbox id, transition.
//! SIGINT and SIGTERM are blocked and read from a signalfd, waited on
//! together with the watcher's descriptor and looked at after every event
//! written, so a signal ends the stream between two events (even while
//! events never stop coming) and the command exits 0.

use std::io::Write;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use firma_stack::sidecar_markers::{self as sm, Event, ProbeOptions, WatchOptions, text};
use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

use crate::args::WatchArgs;

/// One readable line for an event (controls in marker text escaped).
pub fn human_line(ev: &Event) -> String {
    let e = |s: &str| text::escape(s);
    match ev {
        Event::Appeared {
            sandbox_id,
            entry,
            at,
        } => format!(
            "{at}  {}  appeared  {}  pid {}  agent {}  listen {}",
            e(sandbox_id),
            entry.state,
            entry.pid,
            e(&entry.agent_id),
            e(&entry.listen)
        ),
        Event::Changed {
            sandbox_id,
            entry,
            previous,
            at,
        } => {
            if *previous == entry.state {
                format!(
                    "{at}  {}  changed  {}  (metadata: pid {}, agent {})",
                    e(sandbox_id),
                    entry.state,
                    entry.pid,
                    e(&entry.agent_id)
                )
            } else {
                format!("{at}  {}  {previous} -> {}", e(sandbox_id), entry.state)
            }
        }
        Event::Gone {
            sandbox_id,
            reason,
            at,
        } => format!("{at}  {}  gone ({})", e(sandbox_id), reason.as_str()),
        Event::Synced { at } => format!("{at}  synced"),
        Event::Resync { reason, at } => format!("{at}  resync: {}", e(reason)),
    }
}

/// Whether a termination signal waits on `sigfd`, without waiting.
fn pending(sigfd: &impl AsFd) -> Result<bool, String> {
    let mut fds = [PollFd::new(sigfd.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) => Ok(n > 0),
        Err(Errno::EINTR) => Ok(false),
        Err(e) => Err(format!("poll: {e}")),
    }
}

/// Runs the stream; returns the exit code (0 after SIGINT/SIGTERM or a
/// closed stdout).
pub fn run(dir: &Path, probe: ProbeOptions, args: &WatchArgs) -> Result<u8, String> {
    // Before the watcher starts any thread, so they all inherit the mask.
    let sigfd = crate::signals::termination_fd()?;
    let opts = WatchOptions {
        probe,
        probe_interval: Duration::from_millis(args.probe_interval_ms),
        collect: !args.no_gc,
        ..WatchOptions::default()
    };
    let mut watcher = sm::watch(dir, &opts).map_err(|e| e.to_string())?;
    let mut stdout = std::io::stdout().lock();
    loop {
        // Everything ready now, one event at a time.
        loop {
            match watcher.next(Some(Duration::ZERO)) {
                Ok(Some(ev)) => {
                    let mut line = if args.json {
                        ev.to_json()
                    } else {
                        human_line(&ev)
                    };
                    line.push('\n');
                    match stdout
                        .write_all(line.as_bytes())
                        .and_then(|()| stdout.flush())
                    {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(0),
                        Err(e) => return Err(format!("cannot write output: {e}")),
                    }
                    // A fleet that never quiets down still ends on a signal.
                    if pending(&sigfd)? {
                        return Ok(0);
                    }
                }
                Ok(None) => break,
                // Not the end of the stream: the watcher retries later.
                Err(e) => {
                    eprintln!("firma: {e}");
                    break;
                }
            }
        }
        let mut fds = [
            PollFd::new(watcher.as_fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(format!("poll: {e}")),
        }
        if fds[1]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            return Ok(0);
        }
    }
}
