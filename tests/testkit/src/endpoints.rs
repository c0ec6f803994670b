//! The scenario's endpoints: TCP listeners (bound first: markers name
//! their port) and Unix sockets (bound after the markers, usually inside a
//! marker directory), each `serving`, `wedged` (backlog full) or, for Unix,
//! `refused` (a socket file nobody listens on).

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::fixture::check;
use crate::placeholders::subst;
use crate::scenario::Res;

/// What keeps an endpoint as it is (listeners, held connections) until the
/// teardown.
pub type Held = Box<dyn std::any::Any + Send>;

/// Binds every TCP endpoint and adds `{addr:NAME}` and `{port:NAME}`.
pub fn bind_tcp(
    endpoints: &Map<String, Value>,
    ph: &mut BTreeMap<String, Value>,
) -> Res<Vec<Held>> {
    let mut held: Vec<Held> = Vec::new();
    for (ename, spec) in endpoints {
        if let Some(addr) = spec.get("tcp") {
            let addr = subst(addr, ph)?;
            let l = TcpListener::bind(addr.as_str().ok_or("tcp must be a string")?)
                .map_err(|e| format!("endpoint {ename:?}: bind: {e}"))?;
            let local = l.local_addr().map_err(|e| e.to_string())?;
            ph.insert(format!("addr:{ename}"), json!(local.to_string()));
            ph.insert(format!("port:{ename}"), json!(local.port()));
            match mode(spec)? {
                "serving" => serve_tcp(l),
                "wedged" => held.push(wedge_tcp(l)?),
                m => return Err(format!("endpoint {ename:?}: tcp mode {m:?} unknown")),
            }
        }
    }
    Ok(held)
}

/// Binds every Unix endpoint.
pub fn bind_unix(endpoints: &Map<String, Value>, ph: &BTreeMap<String, Value>) -> Res<Vec<Held>> {
    let mut held: Vec<Held> = Vec::new();
    for (ename, spec) in endpoints {
        if let Some(path) = spec.get("unix") {
            let path = subst(path, ph)?;
            let path = PathBuf::from(path.as_str().ok_or("unix must be a string")?);
            let h = unix_endpoint(&path, mode(spec)?)
                .map_err(|e| format!("endpoint {ename:?} at {}: {e}", path.display()))?;
            held.push(h);
        }
    }
    Ok(held)
}

fn mode(spec: &Value) -> Res<&str> {
    spec.get("mode")
        .and_then(Value::as_str)
        .ok_or_else(|| "an endpoint needs a \"mode\"".to_owned())
}

fn serve_tcp(l: TcpListener) {
    std::thread::spawn(move || {
        for conn in l.incoming() {
            drop(conn);
        }
    });
}

/// Backlog 0 and filled: every further SYN is dropped, so a probe times out.
fn wedge_tcp(l: TcpListener) -> Res<Held> {
    // SAFETY: listen(2) on our own socket.
    check(unsafe { libc::listen(l.as_raw_fd(), 0) }, "listen")?;
    let addr = l.local_addr().map_err(|e| e.to_string())?;
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..3 {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            held.push(s);
        }
    }
    if held.is_empty() {
        return Err("could not fill the TCP backlog".into());
    }
    Ok(Box::new((l, held)))
}

/// Binds a Unix socket at `path`, through the parent directory's
/// descriptor when the path is longer than `sun_path`.
fn bind_unix_socket(path: &Path) -> Res<(UnixListener, Option<std::fs::File>)> {
    if path.as_os_str().len() < 100 {
        return UnixListener::bind(path)
            .map(|l| (l, None))
            .map_err(|e| format!("bind: {e}"));
    }
    let parent = path.parent().ok_or("no parent")?;
    let dir = std::fs::File::open(parent).map_err(|e| format!("open parent: {e}"))?;
    let short = format!(
        "/proc/self/fd/{}/{}",
        dir.as_raw_fd(),
        path.file_name().ok_or("no file name")?.to_string_lossy()
    );
    UnixListener::bind(short)
        .map(|l| (l, Some(dir)))
        .map_err(|e| format!("bind: {e}"))
}

fn unix_endpoint(path: &Path, mode: &str) -> Res<Held> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("create parent: {e}"))?;
    }
    let (l, dir) = bind_unix_socket(path)?;
    match mode {
        "serving" => {
            std::thread::spawn(move || {
                for conn in l.incoming() {
                    drop(conn);
                }
            });
            Ok(Box::new(dir))
        }
        "wedged" => {
            // SAFETY: listen(2) on our own socket.
            check(unsafe { libc::listen(l.as_raw_fd(), 0) }, "listen")?;
            // A Unix accept queue of backlog 0 holds exactly one connection:
            // this connect is queued at once, and every later one is turned
            // away (EAGAIN for a non-blocking connect).
            let target = match &dir {
                Some(d) => PathBuf::from(format!(
                    "/proc/self/fd/{}/{}",
                    d.as_raw_fd(),
                    path.file_name().ok_or("no file name")?.to_string_lossy()
                )),
                None => path.to_path_buf(),
            };
            let held = UnixStream::connect(&target)
                .map_err(|e| format!("could not fill the Unix backlog: {e}"))?;
            Ok(Box::new((l, held, dir)))
        }
        "refused" => {
            // The socket file stays; nobody listens: ECONNREFUSED.
            drop(l);
            Ok(Box::new(dir))
        }
        m => Err(format!("unix mode {m:?} is not serving, wedged or refused")),
    }
}
