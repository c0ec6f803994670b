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

use std::ffi::OsString;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

use crate::sidecar_markers::{MetadataFile, create_marker, default_runtime_dir, remove_marker};
use clap::{Parser, ValueEnum};

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
/// further connection.
fn wedge(listener: &Listener) -> Vec<Box<dyn std::any::Any>> {
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    match listener {
        Listener::Unix(l) => {
            // SAFETY: listen(2) on our own socket.
            unsafe { libc::listen(l.as_raw_fd(), 0) };
            let path = l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(PathBuf::from));
            let Some(path) = path else { return held };
            // Each successful connect occupies the queue until one is turned
            // away; those connections stay open for the process's life.
            for _ in 0..64 {
                if !socket_connect_nonblocking_unix(&path) {
                    break;
                }
            }
        }
        Listener::Tcp(l) => {
            // SAFETY: listen(2) on our own socket.
            unsafe { libc::listen(l.as_raw_fd(), 0) };
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

/// True when a fresh non-blocking connect to `path` succeeds; the
/// connection is kept open (leaked into the backlog) on success.
fn socket_connect_nonblocking_unix(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: socket/connect on a local sockaddr_un; fd leaked on purpose
    // (it occupies the backlog) or closed on failure.
    unsafe {
        let fd = libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return false;
        }
        let mut addr: libc::sockaddr_un = std::mem::zeroed();
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        if bytes.len() >= addr.sun_path.len() {
            libc::close(fd);
            return false;
        }
        for (d, &s) in addr.sun_path.iter_mut().zip(bytes) {
            *d = s as libc::c_char;
        }
        let rc = libc::connect(
            fd,
            (&addr as *const libc::sockaddr_un).cast(),
            std::mem::size_of::<libc::sockaddr_un>() as u32,
        );
        if rc == 0 {
            true
        } else {
            libc::close(fd);
            false
        }
    }
}

/// Blocks SIGINT and SIGTERM in the calling thread (threads started later
/// inherit the mask) and returns the set, for `sigwait`: the sidecar
/// receives them synchronously instead of through a handler.
fn block_termination() -> Result<libc::sigset_t, String> {
    // SAFETY: plain sigset manipulation on a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        let rc = libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        if rc != 0 {
            return Err(format!(
                "cannot block SIGINT/SIGTERM: {}",
                std::io::Error::from_raw_os_error(rc)
            ));
        }
        Ok(set)
    }
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

    let mut sig: libc::c_int = 0;
    // SAFETY: waits for one of the signals blocked above.
    let rc = unsafe { libc::sigwait(&sigset, &mut sig) };
    if rc != 0 {
        return Err(format!("sigwait failed: {rc}"));
    }
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
