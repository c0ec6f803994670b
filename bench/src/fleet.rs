//! A fleet of real sidecar markers for benchmarks.
//!
//! Every healthy marker is written by the core writer
//! (`firma_stack::sidecar_markers::create_marker`, so `boot_id` and
//! `pid_start_ticks` are recorded) for its own live process: one forked
//! child per marker that does nothing but wait to be killed. One thread of
//! the calling process serves every marker's `sidecar.sock`: it accepts and
//! closes connections from an epoll loop, so probes always find room in the
//! backlog.
//!
//! Stale markers are written the same way for children that are then
//! killed and reaped: their pids are really dead, their identity real.
//!
//! [`serve`] is `firma-bench fleet`: the driver measures listings against
//! a fleet standing in a process of its own; the criterion figures
//! (benches/list.rs) build a [`Fleet`] in-process.

use std::io::{self, BufRead, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use firma_stack::sidecar_markers::{MetadataFile, create_marker};

fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// Raises the soft `RLIMIT_NOFILE` to at least `want`, raising the hard
/// limit too when allowed (CAP_SYS_RESOURCE); otherwise up to the hard
/// limit. Fails when the resulting limit is below `need`.
pub fn raise_nofile(want: u64, need: u64) -> io::Result<u64> {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 {
        return Err(last_err());
    }
    if rl.rlim_cur < want {
        let wider = libc::rlimit {
            rlim_cur: want,
            rlim_max: rl.rlim_max.max(want),
        };
        let capped = libc::rlimit {
            rlim_cur: want.min(rl.rlim_max),
            rlim_max: rl.rlim_max,
        };
        // SAFETY: valid in-pointers.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wider) } == 0 {
            rl = wider;
        } else if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &capped) } == 0 {
            rl = capped;
        } else {
            return Err(last_err());
        }
    }
    if rl.rlim_cur < need {
        return Err(io::Error::other(format!(
            "RLIMIT_NOFILE is {} (hard {}), {need} descriptors needed",
            rl.rlim_cur, rl.rlim_max
        )));
    }
    Ok(rl.rlim_cur)
}

/// `firma-bench fleet DIR N`: creates N healthy sidecars under `dir`,
/// prints `ready N`, serves them until stdin closes (or the driver dies),
/// then kills every child and removes `dir`.
pub fn serve(dir: &Path, n: usize) -> crate::Res<()> {
    let fleet = Fleet::healthy(dir, n).map_err(|e| format!("fleet of {n}: {e}"))?;
    println!("ready {}", fleet.len());
    io::stdout().flush().map_err(|e| e.to_string())?;
    let mut sink = String::new();
    while io::stdin().lock().read_line(&mut sink).is_ok_and(|n| n > 0) {
        sink.clear();
    }
    drop(fleet);
    Ok(())
}

/// Child processes that only wait to be killed. Dropping kills and reaps them.
pub struct Children {
    pids: Vec<libc::pid_t>,
}

/// What a healthy fleet's children run, first that exists: a real program
/// of their own, as sidecars are. `bench/idle.c` (built by `make bench-c`)
/// maps almost nothing. Forks of this process, or 10,000 copies of a
/// dynamically linked `sleep`, share big mappings, and this VM's memory
/// monitor (DAMON's `kdamond`, which walks every mapping of each page it
/// samples) then took 36-52 % (forks) or up to 21 % (`sleep`) of a core
/// during listings, against under 1 % with `idle`: a core taken away from
/// whichever contender runs, at moments none can predict.
const IDLE_PROGRAM: [&str; 3] = [
    concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench/idle"),
    "/bin/sleep",
    "/usr/bin/sleep",
];

/// How a child spends its life.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// `execve` of [`IDLE_PROGRAM`]: for sidecars that stand while listed.
    Exec,
    /// `pause()` in the forked copy: for children killed right away.
    Pause,
}

impl Children {
    /// Forks `n` children. Each closes every inherited descriptor, asks to
    /// be killed when its parent dies, and then waits as `life` says. The
    /// parent-death signal survives the `execve`.
    pub fn spawn(n: usize, life: Life) -> io::Result<Children> {
        let program = match life {
            Life::Pause => None,
            Life::Exec => Some(idle_program()?),
        };
        // Built before forking: the child may not allocate. `idle` ignores
        // its arguments; `sleep` needs a duration.
        let arg0 = c"idle";
        let arg1 = c"2147483647";
        let argv = [arg0.as_ptr(), arg1.as_ptr(), std::ptr::null()];
        let envp = [std::ptr::null::<libc::c_char>()];
        let mut children = Children {
            pids: Vec::with_capacity(n),
        };
        // SAFETY: getpid cannot fail.
        let parent = unsafe { libc::getpid() };
        for _ in 0..n {
            // SAFETY: the child runs only async-signal-safe system calls
            // and never returns into Rust code.
            match unsafe { libc::fork() } {
                -1 => return Err(last_err()), // `children` drops: kills the others
                0 => unsafe {
                    libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32);
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != parent {
                        libc::_exit(0);
                    }
                    if let Some(program) = &program {
                        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
                        // A child that cannot wait as a sidecar must not
                        // stand for one: the fleet checks every child.
                        libc::_exit(127);
                    }
                    loop {
                        libc::pause();
                    }
                },
                pid => children.pids.push(pid),
            }
        }
        if let Some(program) = &program {
            children.check_running(program)?;
        }
        Ok(children)
    }

    pub fn pids(&self) -> &[libc::pid_t] {
        &self.pids
    }

    /// Waits until every child runs `program` (its `comm` is the file's
    /// name, as the kernel cuts it to 15 bytes), so no `execve` is still in
    /// flight when timing starts; fails when a child exited instead or a
    /// minute passes.
    fn check_running(&self, program: &std::ffi::CStr) -> io::Result<()> {
        let name = program
            .to_bytes()
            .rsplit(|&b| b == b'/')
            .next()
            .unwrap_or_default();
        let mut comm_want = name[..name.len().min(15)].to_vec();
        comm_want.push(b'\n');
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for &pid in &self.pids {
            loop {
                let mut status = 0;
                // SAFETY: polling our own child, valid out-pointer.
                if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
                    return Err(io::Error::other(format!(
                        "fleet child {pid} exited (wait status {status:#x}) instead of running {program:?}"
                    )));
                }
                let comm = std::fs::read(format!("/proc/{pid}/comm"))?;
                if comm == comm_want {
                    break;
                }
                if std::time::Instant::now() > deadline {
                    return Err(io::Error::other(format!(
                        "fleet child {pid} did not start {program:?} within a minute"
                    )));
                }
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        Ok(())
    }

    /// SIGKILLs every child and reaps it, so its pid is really gone.
    pub fn kill_all(&mut self) {
        for &pid in &self.pids {
            // SAFETY: pid is our own child (positive), never 0 or -1.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        for &pid in &self.pids {
            loop {
                // SAFETY: waiting for our own child.
                let rc = unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
                if rc >= 0 || last_err().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
        }
        self.pids.clear();
    }
}

/// The first of [`IDLE_PROGRAM`] that exists, as a C string; says so on
/// stderr when it is not `idle`, since the figures are then noisier.
fn idle_program() -> io::Result<std::ffi::CString> {
    let found = IDLE_PROGRAM
        .iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| {
            io::Error::other(format!(
                "no program for the fleet's children: none of {IDLE_PROGRAM:?} exists"
            ))
        })?;
    if *found != IDLE_PROGRAM[0] {
        eprintln!(
            "fleet: {} is missing (`make bench-c` builds it); children run {found}, \
             which the VM's memory monitor finds costlier",
            IDLE_PROGRAM[0]
        );
    }
    Ok(std::ffi::CString::new(*found).expect("no NUL in a constant"))
}

impl Drop for Children {
    fn drop(&mut self) {
        self.kill_all();
    }
}

/// A realistic sandbox id for marker `i` of a set named `set`.
pub fn sandbox_id(set: &str, i: usize) -> String {
    // A stable pseudo-random hex part, as run ids tend to carry one.
    let h = (i as u32).wrapping_mul(2_654_435_761) ^ 0x5bd1_e995;
    format!("{set}-{h:08x}-{i:05}")
}

/// Metadata as a launcher would write it; identity is left to the writer.
pub fn metadata(id: &str, i: usize, pid: libc::pid_t) -> MetadataFile {
    MetadataFile {
        sandbox_id: id.to_owned(),
        agent_id: format!("agent-{:03}", i % 97),
        session_id: format!("session-{i:06}"),
        authority_url: "https://authority.firma.internal:8443/v1".to_owned(),
        policy_bundle_version:
            "sha256:3b7e1f0c9a4d2e6b8f5a1c7d9e3b2a4f6c8d0e1f2a3b4c5d6e7f8091a2b3c4d5".to_owned(),
        pid: pid as u32,
        started_at: "2026-01-01T00:00:00Z".to_owned(),
        listen: None,
        boot_id: None,
        pid_start_ticks: None,
        pid_ns_inode: None,
        boottime_offset_ns: None,
    }
}

fn write_marker(runtime: &Path, id: &str, i: usize, pid: libc::pid_t) -> io::Result<PathBuf> {
    create_marker(runtime, &metadata(id, i, pid))
        .map_err(|e| io::Error::other(format!("create_marker {id}: {e}")))
}

/// N healthy sidecars: live pids, bound sockets, one accepting thread.
/// Dropping it stops the thread, closes the sockets, kills the children and
/// removes the runtime directory.
pub struct Fleet {
    pub runtime: PathBuf,
    pub ids: Vec<String>,
    thread: Option<JoinHandle<()>>,
    stop: Option<OwnedFd>,
    listeners: Vec<UnixListener>,
    children: Children,
}

impl Fleet {
    /// Creates `n` healthy sidecars under `runtime` (which must not hold
    /// markers already).
    pub fn healthy(runtime: &Path, n: usize) -> io::Result<Fleet> {
        raise_nofile(n as u64 + 1024, n as u64 + 64)?;
        // Fork first, while this process has no listener to leak.
        let children = Children::spawn(n, Life::Exec)?;
        std::fs::create_dir_all(runtime.join("run"))?;
        let mut fleet = Fleet {
            runtime: runtime.to_path_buf(),
            ids: Vec::with_capacity(n),
            thread: None,
            stop: None,
            listeners: Vec::with_capacity(n),
            children,
        };
        for i in 0..n {
            let id = sandbox_id("hc", i);
            let pid = fleet.children.pids()[i];
            let dir = write_marker(runtime, &id, i, pid)?;
            let listener = UnixListener::bind(dir.join("sidecar.sock"))?;
            listener.set_nonblocking(true)?;
            fleet.listeners.push(listener);
            fleet.ids.push(id);
        }
        fleet.start_acceptor()?;
        Ok(fleet)
    }

    fn start_acceptor(&mut self) -> io::Result<()> {
        // SAFETY: plain system calls; results checked.
        let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if ep < 0 {
            return Err(last_err());
        }
        // SAFETY: fresh descriptor.
        let ep = unsafe { OwnedFd::from_raw_fd(ep) };
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(last_err());
        }
        // SAFETY: fresh descriptor.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let add = |fd: RawFd| -> io::Result<()> {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: fd as u64,
            };
            // SAFETY: valid epoll fd, fd and event.
            if unsafe { libc::epoll_ctl(ep.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) } < 0 {
                return Err(last_err());
            }
            Ok(())
        };
        add(stop.as_raw_fd())?;
        for l in &self.listeners {
            add(l.as_raw_fd())?;
        }
        let stop_fd = stop.as_raw_fd();
        self.stop = Some(stop);
        self.thread = Some(std::thread::spawn(move || accept_loop(ep, stop_fd)));
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Accepts and closes every connection on every listener until `stop_fd`
/// becomes readable. The listeners outlive this thread (see `Drop`).
fn accept_loop(ep: OwnedFd, stop_fd: RawFd) {
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        // SAFETY: valid epoll fd and event buffer.
        let n = unsafe {
            libc::epoll_wait(
                ep.as_raw_fd(),
                events.as_mut_ptr(),
                events.len() as libc::c_int,
                -1,
            )
        };
        if n < 0 {
            if last_err().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return;
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == stop_fd {
                return;
            }
            loop {
                // SAFETY: fd is a listening socket owned by the Fleet,
                // which joins this thread before closing it.
                let c = unsafe {
                    libc::accept4(
                        fd,
                        std::ptr::null_mut(),
                        std::ptr::null_mut(),
                        libc::SOCK_CLOEXEC,
                    )
                };
                if c < 0 {
                    break;
                }
                // SAFETY: the accepted descriptor is ours.
                unsafe { libc::close(c) };
            }
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        if let (Some(stop), Some(thread)) = (self.stop.as_ref(), self.thread.take()) {
            let one: u64 = 1;
            // SAFETY: writing 8 bytes to our eventfd.
            unsafe { libc::write(stop.as_raw_fd(), (&one as *const u64).cast(), 8) };
            let _ = thread.join();
        }
        self.listeners.clear();
        self.children.kill_all();
        let _ = std::fs::remove_dir_all(&self.runtime);
    }
}

/// The bytes of `n` stale markers (real dead pids, real recorded identity),
/// kept in memory so a benchmark can lay the same set down again each round.
pub struct StaleSet {
    markers: Vec<(String, Vec<u8>, Vec<u8>)>,
}

impl StaleSet {
    /// Writes `n` markers with `create_marker` into `scratch` for live
    /// children (in batches), kills and reaps those children, keeps the
    /// files' bytes and removes `scratch`.
    pub fn build(scratch: &Path, n: usize) -> io::Result<StaleSet> {
        const BATCH: usize = 1000;
        let mut markers = Vec::with_capacity(n);
        let run = scratch.join("run");
        let mut i = 0;
        while i < n {
            let k = BATCH.min(n - i);
            let mut children = Children::spawn(k, Life::Pause)?;
            for (j, &pid) in children.pids().iter().enumerate() {
                let id = sandbox_id("st", i + j);
                write_marker(scratch, &id, i + j, pid)?;
            }
            children.kill_all();
            for j in 0..k {
                let id = sandbox_id("st", i + j);
                let meta = std::fs::read(run.join(&id).join("metadata.toml"))?;
                let pidf = std::fs::read(run.join(&id).join("sidecar.pid"))?;
                markers.push((id, meta, pidf));
            }
            i += k;
        }
        std::fs::remove_dir_all(scratch)?;
        Ok(StaleSet { markers })
    }

    pub fn len(&self) -> usize {
        self.markers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// Lays the set down under `<runtime>/run` (mode 0700 directories, as
    /// the writer makes them), replacing whatever `run/` held.
    pub fn restore(&self, runtime: &Path) -> io::Result<()> {
        let (run, b) = fresh_run(runtime)?;
        for (id, meta, pidf) in &self.markers {
            let dir = run.join(id);
            b.create(&dir)?;
            std::fs::write(dir.join("metadata.toml"), meta)?;
            std::fs::write(dir.join("sidecar.pid"), pidf)?;
        }
        Ok(())
    }
}

/// A fresh, empty `<runtime>/run` (whatever it held removed; created mode
/// 0700 with any missing parent, as the writer makes them), and a builder
/// of the marker directories in it (mode 0700, one level).
pub fn fresh_run(runtime: &Path) -> io::Result<(PathBuf, std::fs::DirBuilder)> {
    use std::os::unix::fs::DirBuilderExt;
    let run = runtime.join("run");
    match std::fs::remove_dir_all(&run) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut b = std::fs::DirBuilder::new();
    b.mode(0o700).recursive(true);
    b.create(&run)?;
    b.recursive(false);
    Ok((run, b))
}
