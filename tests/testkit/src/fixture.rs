//! The fixture's own directory and its one teardown: the temporary base
//! directory (`rt/` the runtime directory, `out/` things outside it), the
//! children to kill and reap, the signals that end it, and the placeholders
//! every scenario may use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::{Value, json};

use crate::scenario::{Res, Scenario};

/// What the signal thread and the stdin loop share: the one teardown.
pub struct Fixture {
    base: PathBuf,
    /// Children to kill (sleepers) and reap (all, zombies included).
    pub kill: Vec<libc::pid_t>,
    pub reap: Vec<libc::pid_t>,
}

pub static FIXTURE: Mutex<Option<Fixture>> = Mutex::new(None);

/// Kills and reaps the fixture's processes and removes its directory (once:
/// later calls find nothing to do).
pub fn teardown() {
    let Some(fx) = FIXTURE.lock().unwrap_or_else(|p| p.into_inner()).take() else {
        return;
    };
    for &pid in &fx.kill {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    for &pid in &fx.reap {
        let mut status = 0;
        // SAFETY: reaping our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
    }
    let _ = std::fs::remove_dir_all(&fx.base);
}

/// A negative return of a libc call as an error naming `what`.
pub fn check(rc: libc::c_int, what: &str) -> Res<()> {
    if rc < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

/// Die with the parent: SIGTERM, handled like any other request to stop.
/// Signals are blocked here so that every thread inherits the mask and only
/// the signal thread ([`end_on_signal`]) receives them; returns their set.
pub fn arm() -> Res<libc::sigset_t> {
    // SAFETY: plain prctl/sigset calls on this process.
    let set = unsafe {
        check(
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM as libc::c_ulong),
            "prctl",
        )?;
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGPIPE] {
            libc::sigaddset(&mut set, sig);
        }
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return Err("pthread_sigmask failed".into());
        }
        set
    };
    if std::os::unix::process::parent_id() == 1 {
        return Err("parent already gone".into());
    }
    Ok(set)
}

/// Starts the signal thread: any signal of `set` tears the fixture down
/// and ends the process.
pub fn end_on_signal(set: libc::sigset_t) {
    std::thread::spawn(move || {
        let mut sig = 0;
        // SAFETY: waiting for the signals blocked by `arm`.
        unsafe { libc::sigwait(&set, &mut sig) };
        teardown();
        std::process::exit(0);
    });
}

/// The fixture's directories, made fresh.
pub struct Dirs {
    /// The runtime directory (`rt/`, or the scenario's `runtime_subdir` in it).
    pub runtime: PathBuf,
    /// A directory outside it (`out/`).
    pub outside: PathBuf,
}

impl Dirs {
    /// Makes the base directory (registered for [`teardown`] at once) and
    /// the two directories in it.
    pub fn create(scenario: &Scenario) -> Res<Dirs> {
        // A short base path: marker socket paths must usually fit sun_path.
        let mut template = *b"/tmp/fk-XXXXXX\0";
        // SAFETY: template is a writable NUL-terminated buffer.
        if unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) }.is_null() {
            return Err(format!("mkdtemp: {}", std::io::Error::last_os_error()));
        }
        let base = PathBuf::from(std::str::from_utf8(&template[..template.len() - 1]).unwrap());
        *FIXTURE.lock().unwrap() = Some(Fixture {
            base: base.clone(),
            kill: Vec::new(),
            reap: Vec::new(),
        });
        let mut runtime = base.join("rt");
        if let Some(sub) = scenario.get("runtime_subdir").and_then(Value::as_str) {
            runtime.push(sub);
        }
        let outside = base.join("out");
        for d in [&runtime, &outside] {
            std::fs::create_dir_all(d).map_err(|e| format!("create {}: {e}", d.display()))?;
        }
        Ok(Dirs { runtime, outside })
    }
}

/// The placeholders every scenario has: `{runtime}`, `{run}`, `{outside}`,
/// `{pid:testkit}` and `{boot_id}`. The laying down adds the others.
pub fn placeholders(dirs: &Dirs) -> Res<BTreeMap<String, Value>> {
    let mut ph: BTreeMap<String, Value> = BTreeMap::new();
    let path_str = |p: &Path| Value::String(p.to_string_lossy().into_owned());
    ph.insert("runtime".into(), path_str(&dirs.runtime));
    ph.insert("run".into(), path_str(&dirs.runtime.join("run")));
    ph.insert("outside".into(), path_str(&dirs.outside));
    ph.insert("pid:testkit".into(), json!(std::process::id()));
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map_err(|e| format!("cannot read the boot id: {e}"))?;
    ph.insert("boot_id".into(), json!(boot.trim()));
    Ok(ph)
}
