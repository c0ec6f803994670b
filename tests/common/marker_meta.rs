//! The one marker the fixtures write through the library's writer; a file of
//! its own so that examples/watch_latency.rs can include it too (an example
//! cannot include the rest of tests/common, which needs the test binaries).

use firma_stack::sidecar_markers::MetadataFile;

/// The same marker as tests/common's `metadata` writes, as the writer takes
/// it; change fields with struct update syntax
/// (`MetadataFile { listen, ..meta(id, pid) }`).
pub fn meta(id: &str, pid: u32) -> MetadataFile {
    MetadataFile {
        sandbox_id: id.into(),
        agent_id: "agent".into(),
        session_id: "session".into(),
        authority_url: "https://authority.invalid".into(),
        policy_bundle_version: "v1".into(),
        pid,
        started_at: "2026-11-29T12:00:00Z".into(),
        listen: None,
        boot_id: None,
        pid_start_ticks: None,
        pid_ns_inode: None,
        boottime_offset_ns: None,
    }
}
