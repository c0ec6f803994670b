//! The stream's events and their JSON: one object per event, the same on
//! every surface (docs/design.md, "Events").

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::sidecar_markers::{SidecarEntry, State};

/// Why a sidecar left the stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GoneReason {
    /// This watcher collected its stale marker (reported by exactly one
    /// caller, as by `gc_stale`).
    Collected,
    /// Its marker disappeared by other hands (or stopped being a valid
    /// marker).
    Removed,
}

impl GoneReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GoneReason::Collected => "collected",
            GoneReason::Removed => "removed",
        }
    }
}

/// One event of the stream; serializes as the JSON object every surface
/// uses (`{"event": "appeared", ...}`). `at` is RFC 3339 UTC with
/// milliseconds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A live marker found by the initial scan (or a rescan), or a new one.
    Appeared {
        sandbox_id: String,
        entry: SidecarEntry,
        at: String,
    },
    /// The events before this one describe the whole directory: from here
    /// on the stream is complete. Once after the initial scan and after
    /// each `resync`.
    Synced { at: String },
    /// A known sidecar changed (its state, or its metadata).
    Changed {
        sandbox_id: String,
        entry: SidecarEntry,
        previous: State,
        at: String,
    },
    /// A known sidecar is gone; at most once per appearance.
    Gone {
        sandbox_id: String,
        reason: GoneReason,
        at: String,
    },
    /// The watcher lost track (or runs degraded, as the reason says) and
    /// rescans; `synced` follows.
    Resync { reason: String, at: String },
}

impl Event {
    /// `"appeared"`, `"synced"`, `"changed"`, `"gone"` or `"resync"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Appeared { .. } => "appeared",
            Event::Synced { .. } => "synced",
            Event::Changed { .. } => "changed",
            Event::Gone { .. } => "gone",
            Event::Resync { .. } => "resync",
        }
    }

    /// The sandbox id the event is about, if any.
    pub fn sandbox_id(&self) -> Option<&str> {
        match self {
            Event::Appeared { sandbox_id, .. }
            | Event::Changed { sandbox_id, .. }
            | Event::Gone { sandbox_id, .. } => Some(sandbox_id),
            Event::Synced { .. } | Event::Resync { .. } => None,
        }
    }

    /// When the watcher saw it (RFC 3339 UTC, milliseconds).
    pub fn at(&self) -> &str {
        match self {
            Event::Appeared { at, .. }
            | Event::Synced { at }
            | Event::Changed { at, .. }
            | Event::Gone { at, .. }
            | Event::Resync { at, .. } => at,
        }
    }

    /// The event as one line of JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("events always serialize")
    }

    /// Applies the event to a map of sandbox id → entry, as a consumer
    /// builds the state `list` returns. `resync` and `synced` change
    /// nothing (the events after a `resync` correct the state).
    pub fn apply(&self, state: &mut BTreeMap<String, SidecarEntry>) {
        match self {
            Event::Appeared {
                sandbox_id, entry, ..
            }
            | Event::Changed {
                sandbox_id, entry, ..
            } => {
                state.insert(sandbox_id.clone(), entry.clone());
            }
            Event::Gone { sandbox_id, .. } => {
                state.remove(sandbox_id);
            }
            Event::Synced { .. } | Event::Resync { .. } => {}
        }
    }
}

pub(super) fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// An event time, as `now_rfc3339` writes them (the watcher's tests
    /// share it and [`entry`]).
    pub(in crate::sidecar_markers::watch) const AT: &str = "2025-01-02T03:04:05.678Z";

    /// A sidecar `id` in `state`; the pid and the socket differ by id.
    pub(in crate::sidecar_markers::watch) fn entry(id: &str, state: State) -> SidecarEntry {
        SidecarEntry {
            sandbox_id: id.into(),
            agent_id: "agent".into(),
            session_id: "session".into(),
            authority_url: "https://authority.example".into(),
            policy_bundle_version: "1".into(),
            pid: 1000 + id.len() as u32,
            started_at: "2025-01-02T03:04:05Z".into(),
            state,
            listen: format!("/run/{id}/sidecar.sock"),
            uptime_secs: Some(5),
        }
    }

    /// Every event's JSON, byte for byte: the contract of every surface.
    #[test]
    fn events_serialize_as_the_contract_says() {
        let e = entry("sb-1", State::Running);
        let ej = serde_json::to_string(&e).unwrap();
        let table = [
            (
                Event::Appeared {
                    sandbox_id: "sb-1".into(),
                    entry: e.clone(),
                    at: AT.into(),
                },
                format!(r#"{{"event":"appeared","sandbox_id":"sb-1","entry":{ej},"at":"{AT}"}}"#),
            ),
            (
                Event::Synced { at: AT.into() },
                format!(r#"{{"event":"synced","at":"{AT}"}}"#),
            ),
            (
                Event::Changed {
                    sandbox_id: "sb-1".into(),
                    entry: e.clone(),
                    previous: State::Unhealthy,
                    at: AT.into(),
                },
                format!(
                    r#"{{"event":"changed","sandbox_id":"sb-1","entry":{ej},"previous":"unhealthy","at":"{AT}"}}"#
                ),
            ),
            (
                Event::Gone {
                    sandbox_id: "sb-1".into(),
                    reason: GoneReason::Collected,
                    at: AT.into(),
                },
                format!(
                    r#"{{"event":"gone","sandbox_id":"sb-1","reason":"collected","at":"{AT}"}}"#
                ),
            ),
            (
                Event::Gone {
                    sandbox_id: "sb-1".into(),
                    reason: GoneReason::Removed,
                    at: AT.into(),
                },
                format!(r#"{{"event":"gone","sandbox_id":"sb-1","reason":"removed","at":"{AT}"}}"#),
            ),
            (
                Event::Resync {
                    reason: "the inotify queue overflowed: rescanning".into(),
                    at: AT.into(),
                },
                format!(
                    r#"{{"event":"resync","reason":"the inotify queue overflowed: rescanning","at":"{AT}"}}"#
                ),
            ),
        ];
        for (ev, json) in table {
            assert_eq!(ev.to_json(), json);
            assert!(json.starts_with(&format!(r#"{{"event":"{}""#, ev.kind())));
            let back: Event = serde_json::from_str(&json).unwrap();
            assert_eq!(back, ev);
            assert_eq!(ev.at(), AT);
        }
    }

    #[test]
    fn gone_reasons_name_themselves_as_in_json() {
        for r in [GoneReason::Collected, GoneReason::Removed] {
            assert_eq!(
                serde_json::to_string(&r).unwrap(),
                format!("\"{}\"", r.as_str())
            );
        }
    }

    #[test]
    fn sandbox_id_only_for_events_about_one_sidecar() {
        let e = entry("sb-2", State::Stopped);
        let appeared = Event::Appeared {
            sandbox_id: "sb-2".into(),
            entry: e,
            at: AT.into(),
        };
        assert_eq!(appeared.sandbox_id(), Some("sb-2"));
        assert_eq!(Event::Synced { at: AT.into() }.sandbox_id(), None);
        let resync = Event::Resync {
            reason: "r".into(),
            at: AT.into(),
        };
        assert_eq!(resync.sandbox_id(), None);
    }

    /// Applying the events in order builds the state they describe.
    #[test]
    fn apply_builds_the_state() {
        let mut state = BTreeMap::new();
        let running = entry("a", State::Running);
        let unhealthy = entry("a", State::Unhealthy);
        let events = [
            Event::Appeared {
                sandbox_id: "a".into(),
                entry: running.clone(),
                at: AT.into(),
            },
            Event::Appeared {
                sandbox_id: "b".into(),
                entry: entry("b", State::Running),
                at: AT.into(),
            },
            Event::Synced { at: AT.into() },
            Event::Changed {
                sandbox_id: "a".into(),
                entry: unhealthy.clone(),
                previous: State::Running,
                at: AT.into(),
            },
            Event::Resync {
                reason: "r".into(),
                at: AT.into(),
            },
            Event::Gone {
                sandbox_id: "b".into(),
                reason: GoneReason::Removed,
                at: AT.into(),
            },
            Event::Gone {
                sandbox_id: "never-seen".into(),
                reason: GoneReason::Collected,
                at: AT.into(),
            },
        ];
        for ev in &events {
            ev.apply(&mut state);
        }
        assert_eq!(state, BTreeMap::from([("a".to_string(), unhealthy)]));
    }

    #[test]
    fn now_is_rfc3339_utc_with_milliseconds() {
        let at = now_rfc3339();
        // 2025-01-02T03:04:05.678Z
        assert_eq!(at.len(), 24, "{at}");
        assert!(at.ends_with('Z') && at.as_bytes()[19] == b'.', "{at}");
        assert!(humantime::parse_rfc3339(&at).is_ok(), "{at}");
    }
}
