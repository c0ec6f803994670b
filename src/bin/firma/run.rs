//! `firma sidecar run --id ID … -- CMD ARGS…`: registers a sidecar from
//! the shell. The marker is written by the core's writer
//! ([`sm::create_marker`]) for this process — its pid, and the start time,
//! boot id and namespaces the writer records — and then this process
//! becomes CMD by `execvp`: the pid and its start time survive exec, so
//! the marker names CMD and `stop` verifies it.
//!
//! What exec makes impossible: nothing of firma is left to remove the
//! marker when CMD exits. The marker then names a dead pid, is stale, and
//! the next `status`, `gc`, `metrics` or `watch` collects it. When the
//! exec itself fails, the marker is removed and the exit status is 2.

use std::os::unix::process::CommandExt;

use firma_stack::sidecar_markers::{self as sm, MetadataFile, text};

use crate::args::RunArgs;
use crate::ctx::Ctx;

/// Writes the marker and execs; returns only on failure (exit 2).
pub fn run(ctx: &Ctx, args: &RunArgs) -> Result<u8, String> {
    let meta = MetadataFile {
        sandbox_id: args.id.clone(),
        agent_id: args.agent.clone(),
        session_id: args.session.clone(),
        authority_url: args.authority_url.clone(),
        policy_bundle_version: args.policy_bundle_version.clone(),
        pid: std::process::id(),
        started_at: sm::now_rfc3339(),
        listen: args.listen.clone(),
        boot_id: None,
        pid_start_ticks: None,
        pid_ns_inode: None,
        boottime_offset_ns: None,
    };
    sm::create_marker(&ctx.dir, &meta).map_err(|e| e.info().message)?;
    let (cmd, rest) = args.command.split_first().expect("clap requires CMD");
    let err = std::process::Command::new(cmd).args(rest).exec();
    let _ = sm::remove_marker(&ctx.dir, &args.id);
    Err(format!(
        "cannot run {}: {err} (marker removed)",
        text::escape(&cmd.to_string_lossy())
    ))
}
