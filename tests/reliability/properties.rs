//! Property tests: the sandbox-id grammar of docs/design.md, "Invariants" (6) against an
//! independent predicate, writer → reader round-trips of every valid
//! `MetadataFile`, and the JSON of `SidecarEntry` round-tripping through
//! serde. (The Python and Go round-trips of the same JSON belong to those
//! bindings' own tests.)

use crate::common::*;
use firma_stack::sidecar_markers::{
    MAX_SANDBOX_ID_LEN, MetadataFile, SidecarEntry, StackError, State, create_marker, get,
    validate_sandbox_id,
};
use proptest::prelude::*;

/// docs/design.md, "Invariants" (6) written out byte by byte, without the library's helpers:
/// non-empty, at most 255 bytes, only `A-Z a-z 0-9 . _ -`, no leading `.`.
fn grammar(id: &str) -> bool {
    let b = id.as_bytes();
    let allowed = |c: u8| matches!(c, b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-');
    !b.is_empty() && b.len() <= 255 && b[0] != b'.' && b.iter().all(|&c| allowed(c))
}

const ALLOWED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";

/// Characters an id is made of: mostly allowed ones, some that are not
/// (separators, NUL, controls, non-ASCII of 2, 3 and 4 bytes).
fn id_char() -> impl Strategy<Value = char> {
    prop_oneof![
        8 => proptest::sample::select(ALLOWED.chars().collect::<Vec<_>>()),
        1 => proptest::sample::select(vec!['/', '\0', ' ', '\n', '\\', '*', ':', '~', '+']),
        1 => proptest::sample::select(vec!['é', 'ß', '☃', '€', '😀', '\u{7f}', '\u{80}', '\u{ff}']),
        1 => any::<char>(),
    ]
}

fn id_from(chars: impl Strategy<Value = Vec<char>>) -> impl Strategy<Value = String> {
    chars.prop_map(|v| v.into_iter().collect())
}

/// Ids of every length class, including the edges 254/255/256 bytes.
fn any_id() -> impl Strategy<Value = String> {
    let allowed = || proptest::sample::select(ALLOWED.chars().collect::<Vec<_>>());
    prop_oneof![
        id_from(proptest::collection::vec(id_char(), 0..12)),
        id_from(proptest::collection::vec(id_char(), 250..260)),
        id_from(proptest::collection::vec(allowed(), 254..=256)),
        // All allowed but one multi-byte character: 255 chars, >255 bytes.
        (
            id_from(proptest::collection::vec(allowed(), 254)),
            id_char()
        )
            .prop_map(|(s, c)| format!("{s}{c}")),
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn sandbox_id_validation_is_exactly_the_grammar(id in any_id()) {
        let verdict = validate_sandbox_id(&id);
        prop_assert_eq!(verdict.is_ok(), grammar(&id), "id {:?} ({} bytes): {:?}", id, id.len(), verdict);
        if let Err(e) = verdict {
            prop_assert!(matches!(e, StackError::InvalidSandboxId { .. }), "{:?}", e);
            prop_assert_eq!(e.code(), "invalid_argument");
        }
    }

    /// `get` applies the same grammar before it touches the filesystem: an
    /// invalid id is an error (never a path), a valid one under a runtime
    /// dir without `run/` is simply absent.
    #[test]
    fn get_refuses_exactly_the_ids_outside_the_grammar(id in any_id()) {
        let missing = std::path::Path::new("/nonexistent-firma-runtime-dir");
        match get(missing, &id) {
            Ok(None) => prop_assert!(grammar(&id), "{:?} accepted", id),
            Err(StackError::InvalidSandboxId { .. }) => prop_assert!(!grammar(&id), "{:?} refused", id),
            other => prop_assert!(false, "get({:?}) = {:?}", id, other),
        }
    }
}

#[test]
fn grammar_edges_are_where_design_puts_them() {
    assert_eq!(MAX_SANDBOX_ID_LEN, 255);
    let a = |n: usize| "a".repeat(n);
    assert!(validate_sandbox_id(&a(255)).is_ok());
    assert!(validate_sandbox_id(&a(256)).is_err());
    // 254 ASCII + one 2-byte character: 255 characters, 256 bytes.
    assert!(validate_sandbox_id(&format!("{}é", a(254))).is_err());
    assert!(validate_sandbox_id(".a").is_err());
    assert!(validate_sandbox_id("a.").is_ok());
    assert!(validate_sandbox_id("-").is_ok());
}

/// Free text as a writer might record it: quotes, backslashes, newlines,
/// controls, TOML syntax, non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        proptest::collection::vec(
            proptest::sample::select(vec![
                "\"", "\\", "\n", "\r\n", "\t", "'", "'''", "\"\"\"", "=", "[x]", "#", "\u{0}",
                "\u{1b}", "é", "☃", "😀", "\u{feff}", "a", " ", "key = 1",
            ]),
            0..12,
        )
        .prop_map(|v| v.concat()),
    ]
}

fn valid_id() -> impl Strategy<Value = String> {
    (
        proptest::sample::select(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
                .chars()
                .collect::<Vec<_>>(),
        ),
        proptest::collection::vec(
            proptest::sample::select(ALLOWED.chars().collect::<Vec<_>>()),
            0..40,
        ),
    )
        .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
}

/// `listen` forms the writer accepts. TCP ones are loopback only; a port
/// nobody serves is refused at once.
fn listen() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(String::new())),
        any::<u16>().prop_map(|p| Some(format!("127.0.0.1:{p}"))),
        any::<u16>().prop_map(|p| Some(format!("[::1]:{p}"))),
        any::<u16>().prop_map(|p| Some(format!("localhost:{p}"))),
        "[a-z0-9/ ._-]{0,40}".prop_map(|p| Some(format!("/nonexistent-firma/{p}"))),
    ]
}

prop_compose! {
    fn metadata_file()(
        sandbox_id in valid_id(),
        agent_id in text(),
        session_id in text(),
        authority_url in text(),
        policy_bundle_version in text(),
        started_at in text(),
        listen in listen(),
    ) -> MetadataFile {
        MetadataFile {
            sandbox_id,
            agent_id,
            session_id,
            authority_url,
            policy_bundle_version,
            // This test process: live, so the marker is read and probed.
            pid: std::process::id(),
            started_at,
            listen,
            boot_id: None,
            pid_start_ticks: None,
            pid_ns_inode: None,
            boottime_offset_ns: None,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn writer_then_reader_round_trips_every_field(meta in metadata_file()) {
        let rt = runtime();
        let dir = create_marker(rt.path(), &meta).unwrap();
        let e = get(rt.path(), &meta.sandbox_id).unwrap().expect("marker just written");
        prop_assert_eq!(&e.sandbox_id, &meta.sandbox_id);
        prop_assert_eq!(&e.agent_id, &meta.agent_id);
        prop_assert_eq!(&e.session_id, &meta.session_id);
        prop_assert_eq!(&e.authority_url, &meta.authority_url);
        prop_assert_eq!(&e.policy_bundle_version, &meta.policy_bundle_version);
        prop_assert_eq!(e.pid, meta.pid);
        prop_assert_eq!(&e.started_at, &meta.started_at);
        let want_listen = match meta.listen.as_deref() {
            None | Some("") => dir.join("sidecar.sock").to_str().unwrap().to_owned(),
            Some(l) => l.to_owned(),
        };
        prop_assert_eq!(&e.listen, &want_listen);
        // Our own process, identity recorded by the writer: never stopped.
        prop_assert_ne!(e.state, State::Stopped);
        prop_assert!(e.uptime_secs.is_some());
        // What is on disk is the same record plus the identity.
        let on_disk: MetadataFile =
            toml::from_str(&std::fs::read_to_string(dir.join("metadata.toml")).unwrap()).unwrap();
        let mut expected = meta.clone();
        expected.boot_id = on_disk.boot_id.clone();
        expected.pid_start_ticks = on_disk.pid_start_ticks;
        expected.pid_ns_inode = on_disk.pid_ns_inode;
        expected.boottime_offset_ns = on_disk.boottime_offset_ns;
        prop_assert!(on_disk.pid_start_ticks.is_some());
        prop_assert!(on_disk.pid_ns_inode.is_some());
        prop_assert!(on_disk.boottime_offset_ns.is_some());
        prop_assert_eq!(on_disk, expected);
        prop_assert_eq!(run_names(rt.path()), vec![meta.sandbox_id.clone()]);
    }
}

fn state() -> impl Strategy<Value = State> {
    proptest::sample::select(vec![
        State::Running,
        State::Unhealthy,
        State::Stopped,
        State::Unknown,
    ])
}

prop_compose! {
    fn entry()(
        sandbox_id in any::<String>(),
        agent_id in text(),
        session_id in text(),
        authority_url in text(),
        policy_bundle_version in text(),
        pid in any::<u32>(),
        started_at in text(),
        state in state(),
        listen in text(),
        uptime_secs in any::<Option<u64>>(),
    ) -> SidecarEntry {
        SidecarEntry {
            sandbox_id, agent_id, session_id, authority_url, policy_bundle_version,
            pid, started_at, state, listen, uptime_secs,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn sidecar_entry_json_round_trips(e in entry()) {
        let json = serde_json::to_string(&e).unwrap();
        let back: SidecarEntry = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, &e);
        // Keys in the order of docs/design.md, "Entries", state as its lowercase name, uptime
        // a number or null.
        // (A value cannot fake a key: its quotes are escaped.)
        let mut pos = 0;
        for k in [
            "sandbox_id", "agent_id", "session_id", "authority_url",
            "policy_bundle_version", "pid", "started_at", "state", "listen", "uptime_secs",
        ] {
            let at = json[pos..].find(&format!("\"{k}\":"));
            prop_assert!(at.is_some(), "{} missing or out of order in {}", k, json);
            pos += at.unwrap();
        }
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(v.as_object().unwrap().len(), 10);
        prop_assert_eq!(v["state"].as_str(), Some(e.state.as_str()));
        prop_assert_eq!(v["uptime_secs"].as_u64(), e.uptime_secs);
        prop_assert_eq!(v["pid"].as_u64(), Some(u64::from(e.pid)));
    }
}
