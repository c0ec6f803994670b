//! The settings every `firma sidecar` subcommand shares ([`Ctx`]: the
//! runtime directory and the probe timeout given before the subcommand),
//! and the warnings about that directory they all print the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use firma_stack::sidecar_markers::{self as sm, DEFAULT_TIMEOUT, ProbeOptions, text};

use crate::args::ProbeArgs;

/// Settings shared by the sidecar subcommands.
pub struct Ctx {
    pub dir: PathBuf,
    pub legacy_timeout_ms: Option<u64>,
}

impl Ctx {
    pub fn probe(&self, args: ProbeArgs) -> ProbeOptions {
        match args.timeout_ms.or(self.legacy_timeout_ms) {
            Some(ms) => ProbeOptions::with_timeout(Duration::from_millis(ms)),
            None => ProbeOptions::with_timeout(DEFAULT_TIMEOUT),
        }
    }

    /// The runtime dir as people should read it: absolute, escaped.
    pub fn shown(&self) -> String {
        shown_path(&self.dir)
    }

    pub fn run_shown(&self) -> String {
        shown_path(&self.dir.join("run"))
    }

    /// True when the runtime directory itself does not exist (a mistyped
    /// `--runtime-dir`, not an idle host).
    pub fn missing(&self) -> bool {
        matches!(std::fs::metadata(&self.dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    pub fn missing_warning(&self) -> String {
        format!("runtime directory {} does not exist", self.shown())
    }

    /// The warning line for a runtime directory that fails the trust
    /// checks, when it does (docs/design.md, "Trust"); nothing when it
    /// passes or cannot be opened (the command itself reports that).
    pub fn untrusted_warning(&self) -> Option<String> {
        sm::check_runtime_dir(&self.dir)
            .ok()
            .flatten()
            .map(|w| untrusted_note(&w))
    }
}

/// `warning: <dir> is not trusted: <why>; read-only: ...`, from the line
/// the core gives (`check_runtime_dir`, `ScanReport::untrusted`).
pub fn untrusted_note(why: &str) -> String {
    format!(
        "warning: {}; read-only: nothing is collected, and gc, stop and writers refuse",
        text::escape(why)
    )
}

fn shown_path(p: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    text::escape(&text::path_string(&abs))
}
