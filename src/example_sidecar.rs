//! The example sidecar: a real, minimal sidecar for demos and tests, run by
//! the `firma-example-sidecar` binary and, without any binary, by
//! `python -m firma_stack.example_sidecar` (the Python package's test
//! helpers and pytest plugin use it that way). Both take the same flags; the
//! entry point is [`main_with_args`].
//!
//! It writes its own marker with the writer API, serves (or deliberately
//! fails to serve) its endpoint, prints `ready <marker_dir>` on stdout once
//! a probe would see its final state, and removes its marker on SIGTERM or
//! SIGINT. Killed with SIGKILL, it leaves a marker that becomes stale.
//!
//! Modes:
//! - `serve`: accept and close connections (state `running`);
//! - `wedged`: listen but never accept, with the backlog filled so every
//!   further connect is refused at once (Unix: `EAGAIN`) or its SYN is
//!   dropped (TCP) — state `unhealthy`;
//! - `no-socket`: never listen (state `unhealthy`).

// Its system calls go through `sys::socket` and `nix`.
#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use crate::sidecar_markers::sys::socket::{Socket, UnixAddr, listen};
use crate::sidecar_markers::{MetadataFile, create_marker, default_runtime_dir, remove_marker};
use clap::{Parser, ValueEnum};
use nix::sys::signal::{SigSet, Signal};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Serve,
    Wedged,
    NoSocket,
}

#[derive(Parser, Debug)]
#[command(
    name = "firma-example-sidecar",
    about = "A real example sidecar that writes its own marker"
)]
struct Args {
    /// Runtime directory (default: as the library decides).
    #[arg(long)]
    runtime_dir: Option<PathBuf>,
    /// Sandbox id of this run.
    #[arg(long)]
    id: String,
    #[arg(long, value_enum, default_value = "serve")]
    mode: Mode,
    /// Serve TCP on this address (e.g. 127.0.0.1:0) instead of the marker's
    /// Unix socket.
    #[arg(long)]
    tcp: Option<SocketAddr>,
    #[arg(long, default_value = "agent-example")]
    agent: String,
    #[arg(long, default_value = "session-example")]
    session: String,
}

enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// Listens with a backlog of 0 and fills it, so the kernel turns away every
/// further connection. The connections that fill it are returned, to stay
/// open for the process's life.
fn wedge(listener: &Listener) -> Vec<Box<dyn std::any::Any>> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    match listener {
        Listener::Unix(l) => {
            // A failure leaves the default backlog: connects then succeed
            // and the sidecar reads as running, which its tests would see.
            let _ = listen(l.as_fd(), 0);
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(PathBuf::from));
            let Some(path) = path else { return held };
            // Each successful connect occupies the queue until one is turned
            // away.
            for _ in 0..64 {
                match connect_nonblocking_unix(&path) {
                    Some(sock) => held.push(Box::new(sock)),
                    None => break,
                }
            }
        }
        Listener::Tcp(l) => {
            let _ = listen(l.as_fd(), 0);
            let addr = l.local_addr().expect("bound");
            // With a backlog of 0 the accept queue holds one connection;
            // two more make sure it is full and later SYNs are dropped.
            for _ in 0..3 {
                if let Ok(s) =
                    TcpStream::connect_timeout(&addr, std::time::Duration::from_millis(100))
                {
                    held.push(Box::new(s));
                }
            }
        }
    }
    held
}

/// A fresh non-blocking connection to `path`, or `None` when the connect
/// is turned away (a full backlog: `EAGAIN`) or fails.
fn connect_nonblocking_unix(path: &Path) -> Option<Socket> {
    let addr = UnixAddr::new(path.as_os_str().as_bytes())?;
    let sock = Socket::unix().ok()?;
    sock.connect_unix(&addr).ok()?;
    Some(sock)
}

/// SIGINT and SIGTERM, blocked in the calling thread (threads started
/// later inherit the mask), for `sigwait`: the sidecar receives them
/// synchronously instead of through a handler.
fn block_termination() -> Result<SigSet, String> {
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    set.add(Signal::SIGTERM);
    set.thread_block()
        .map_err(|e| format!("cannot block SIGINT/SIGTERM: {e}"))?;
    Ok(set)
}

fn run(args: Args) -> Result<(), String> {
    let runtime_dir = args.runtime_dir.unwrap_or_else(default_runtime_dir);
    let sigset = block_termination()?;

    // A TCP port must be known before the marker records it.
    let tcp = match (args.tcp, args.mode) {
        (Some(addr), Mode::Serve | Mode::Wedged) => {
            Some(TcpListener::bind(addr).map_err(|e| format!("cannot bind {addr}: {e}"))?)
        }
        _ => None,
    };
    let listen = match (&tcp, args.tcp) {
        (Some(l), _) => Some(l.local_addr().map_err(|e| e.to_string())?.to_string()),
        // no-socket with --tcp: record the address nobody serves.
        (None, Some(addr)) => Some(addr.to_string()),
        (None, None) => None,
    };
    let meta = MetadataFile {
        sandbox_id: args.id.clone(),
        agent_id: args.agent,
        session_id: args.session,
        authority_url: "https://authority.example.invalid".into(),
        policy_bundle_version: "sha256:example".into(),
        pid: std::process::id(),
        started_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        listen,
        boot_id: None,
        pid_start_ticks: None,
        pid_ns_inode: None,
        boottime_offset_ns: None,
    };
    let marker = create_marker(&runtime_dir, &meta).map_err(|e| e.to_string())?;

    let listener = match (tcp, args.mode) {
        (Some(l), _) => Some(Listener::Tcp(l)),
        (None, Mode::NoSocket) => None,
        (None, _) => {
            let path = marker.join("sidecar.sock");
            Some(Listener::Unix(UnixListener::bind(&path).map_err(|e| {
                format!("cannot bind {}: {e}", path.display())
            })?))
        }
    };
    let _held = match (&listener, args.mode) {
        (Some(l), Mode::Wedged) => wedge(l),
        _ => Vec::new(),
    };
    // Keep a wedged listener open (never accepting) until we exit.
    let mut _wedged = None;
    match (listener, args.mode) {
        (Some(l), Mode::Serve) => {
            std::thread::spawn(move || match l {
                Listener::Unix(l) => {
                    for conn in l.incoming() {
                        drop(conn);
                    }
                }
                Listener::Tcp(l) => {
                    for conn in l.incoming() {
                        drop(conn);
                    }
                }
            });
        }
        (l, _) => _wedged = l,
    }

    let mut out = std::io::stdout().lock();
    writeln!(out, "ready {}", marker.display()).map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    drop(out);

    sigset.wait().map_err(|e| format!("sigwait failed: {e}"))?;
    remove_marker(&runtime_dir, &args.id).map_err(|e| e.to_string())?;
    Ok(())
}

/// Runs the example sidecar with command-line arguments `args` (the first
/// one is the program name, as in `std::env::args_os()`) until SIGTERM or
/// SIGINT, and returns the process exit status: 0 after a clean stop (or
/// `--help`), 2 on a usage error or failure (one line on stderr).
///
/// It blocks SIGTERM and SIGINT in the calling thread and waits for them
/// there: call it from a process's main thread before other threads start.
pub fn main_with_args<I, T>(args: I) -> u8
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return u8::try_from(e.exit_code()).unwrap_or(2);
        }
    };
    match run(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("firma-example-sidecar: {e}");
            2
        }
    }
}
