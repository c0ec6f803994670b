//! A sidecar in namespaces of its own: `unshare ARGS… --kill-child
//! firma-example-sidecar` (ARGS may nest further `unshare`s, each with
//! `--kill-child`), so that killing the outer `unshare` kills every
//! namespace it made. The fixture of the container tests of liveness, stop
//! and collection.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use firma_stack::sidecar_markers::MetadataFile;

use super::{need_root, wait_until};

pub struct Pod {
    child: Child,
    pub marker: PathBuf,
}

impl Pod {
    /// `unshare UNSHARE…` started directly.
    pub fn start(unshare: &[&str], runtime: &Path, id: &str) -> Pod {
        Pod::start_by(Command::new("env"), unshare, runtime, id)
    }

    /// `unshare UNSHARE…` started as the arguments of `by` (say, a
    /// throwaway user's `env`); fails loudly when the kernel refuses the
    /// namespaces or the sidecar does not become ready.
    pub fn start_by(mut by: Command, unshare: &[&str], runtime: &Path, id: &str) -> Pod {
        need_root("these tests build pid namespaces");
        by.arg("unshare").args(unshare).arg("--kill-child");
        match super::start_ready(by, runtime, id) {
            Ok((child, marker)) => Pod { child, marker },
            Err((line, stderr)) => panic!(
                "the kernel refused `unshare {unshare:?}` (or the sidecar failed): {line:?} {stderr}"
            ),
        }
    }

    pub fn meta(&self) -> MetadataFile {
        toml::from_str(&std::fs::read_to_string(self.marker.join("metadata.toml")).unwrap())
            .unwrap()
    }

    /// The sidecar's pid here: the process in the recorded namespace whose
    /// last `NSpid` is the recorded pid.
    pub fn host_pid(&self) -> Option<u32> {
        let m = self.meta();
        host_pid_of(m.pid_ns_inode.unwrap(), m.pid)
    }

    /// SIGKILLs the outer `unshare` (every namespace it made dies with it)
    /// and waits until the contained sidecar is gone.
    pub fn kill(self) {
        let host = self.host_pid().expect("the sidecar runs");
        self.kill_host(host);
    }

    /// [`Pod::kill`] for a sidecar whose pid here is `host`.
    pub fn kill_host(mut self, host: u32) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        wait_until("the contained sidecar to be gone", || {
            !Path::new(&format!("/proc/{host}")).exists()
        });
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The pid here of the process of pid namespace `ns` whose last `NSpid`
/// entry is `pid`, by a walk of /proc.
pub fn host_pid_of(ns: u64, pid: u32) -> Option<u32> {
    host_pid_where(pid, |ino| ino == ns)
}

/// The pid here of a process whose pid namespace passes `ns_ok` and whose
/// last `NSpid` entry is `pid`.
fn host_pid_where(pid: u32, ns_ok: impl Fn(u64) -> bool) -> Option<u32> {
    std::fs::read_dir("/proc").unwrap().flatten().find_map(|e| {
        let here: u32 = e.file_name().to_str()?.parse().ok()?;
        let ino = std::fs::metadata(format!("/proc/{here}/ns/pid"))
            .ok()?
            .ino();
        let status = std::fs::read_to_string(format!("/proc/{here}/status")).ok()?;
        let last: u32 = status
            .lines()
            .find_map(|l| l.strip_prefix("NSpid:"))?
            .split_whitespace()
            .last()?
            .parse()
            .ok()?;
        (ns_ok(ino) && last == pid).then_some(here)
    })
}

impl Pod {
    /// A sidecar whose pid in its own namespace is a number no process has
    /// here, writing a marker with only the seven seed fields (as the
    /// upstream launcher does): its pid names nothing on this host, only
    /// the listener of its socket can prove it alive. `ns_last_pid` is set
    /// inside the new namespace before the sidecar is forked.
    pub fn start_bare(runtime: &Path, id: &str) -> Pod {
        let pid_max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let free = (pid_max / 2..pid_max - 1)
            .rev()
            .find(|p| !Path::new(&format!("/proc/{p}")).exists())
            .expect("a pid no process has here");
        // `--kill-child` first, for this `unshare`; the one Pod appends
        // reaches the script as $1 and is shifted away.
        let script = format!(
            "echo {} > /proc/sys/kernel/ns_last_pid && shift && {{ \"$@\" & wait; }}",
            free - 1
        );
        let pod = Pod::start(
            &[
                "-p",
                "-f",
                "--mount-proc",
                "--kill-child",
                "sh",
                "-c",
                &script,
                "sh",
            ],
            runtime,
            id,
        );
        let meta = pod.meta();
        assert_eq!(meta.pid, free, "the sidecar got the pid asked for");
        let seed = MetadataFile {
            boot_id: None,
            pid_start_ticks: None,
            pid_ns_inode: None,
            boottime_offset_ns: None,
            ..meta
        };
        std::fs::write(
            pod.marker.join("metadata.toml"),
            toml::to_string(&seed).unwrap(),
        )
        .unwrap();
        assert!(
            !Path::new(&format!("/proc/{free}")).exists(),
            "a host process took pid {free} meanwhile: run again"
        );
        pod
    }

    /// The sidecar's pid here, for a marker without a recorded namespace:
    /// the process whose last `NSpid` is the recorded pid, in a namespace
    /// other than this reader's.
    pub fn host_pid_unrecorded(&self) -> Option<u32> {
        let own = std::fs::metadata("/proc/self/ns/pid").unwrap().ino();
        host_pid_where(self.meta().pid, |ino| ino != own)
    }
}
