//! Selecting sidecars: one [`Filter`] for every surface (docs/design.md,
//! "Selecting"). The CLI builds it from `--state`, `--agent`, `--session`,
//! `--reason` and `--sandbox-id`; a binding deserializes it from the JSON
//! object `{"states": [...], "agent": ..., "session": ..., "reasons":
//! [...], "sandbox_ids": [...]}` (every key optional, unknown keys refused)
//! and converts nothing else.
//!
//! Every part given must match (AND); a list matches when the value is one
//! of it (OR). An empty filter matches everything.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use super::error::{Result, StackError};
use super::model::{MarkerReport, Reason, SidecarEntry, State};
use super::watch::Event;

/// Which sidecars an operation shows; see the module docs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Filter {
    /// The entry's state is one of these (empty: any).
    pub states: Vec<State>,
    /// The entry's `agent_id` equals this.
    pub agent: Option<String>,
    /// The entry's `session_id` equals this.
    pub session: Option<String>,
    /// An `inspect` report's reason is one of these (empty: any). Entries
    /// (`list`, `get`, `watch`) have no reason: a filter with reasons
    /// matches none of them.
    pub reasons: Vec<Reason>,
    /// The sandbox id (an `inspect` report: its name) is one of these
    /// (empty: any).
    pub sandbox_ids: Vec<String>,
}

impl Filter {
    /// The filter a binding passes as JSON; `invalid_argument` naming what
    /// is wrong (an unknown key, a state or reason that does not exist).
    pub fn from_json(json: &str) -> Result<Filter> {
        let invalid = |reason: String| StackError::InvalidArgument {
            what: "filter".into(),
            reason,
        };
        // Only an object (serde would also take a positional array), each
        // key once: serde_json keeps the last of duplicate keys, so
        // `{"states":["running"],"states":["stopped"]}` would select what a
        // validator reading the first key never approved (the C ABI's
        // options objects refuse duplicates for the same reason).
        let UniqueKeys(map) = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| invalid(e.to_string()))
    }

    /// True when the filter selects nothing out (everything matches).
    pub fn is_empty(&self) -> bool {
        *self == Filter::default()
    }

    /// Whether `e` is selected.
    pub fn matches_entry(&self, e: &SidecarEntry) -> bool {
        self.reasons.is_empty()
            && self.id_ok(&e.sandbox_id)
            && (self.states.is_empty() || self.states.contains(&e.state))
            && self.agent.as_ref().is_none_or(|a| *a == e.agent_id)
            && self.session.as_ref().is_none_or(|s| *s == e.session_id)
    }

    /// Whether an `inspect` report is selected: by its name, state, reason
    /// and, for `agent`/`session`, its entry (a broken marker has none and
    /// matches neither).
    pub fn matches_report(&self, r: &MarkerReport) -> bool {
        self.id_ok(&r.name)
            && (self.states.is_empty() || r.state.is_some_and(|s| self.states.contains(&s)))
            && (self.reasons.is_empty() || self.reasons.contains(&r.reason))
            && self
                .agent
                .as_ref()
                .is_none_or(|a| r.entry.as_ref().is_some_and(|e| *a == e.agent_id))
            && self
                .session
                .as_ref()
                .is_none_or(|s| r.entry.as_ref().is_some_and(|e| *s == e.session_id))
    }

    fn id_ok(&self, id: &str) -> bool {
        self.sandbox_ids.is_empty() || self.sandbox_ids.iter().any(|i| i == id)
    }
}

/// A JSON object whose keys each appear once (compared after decoding
/// escapes); its values are kept as they are.
struct UniqueKeys(serde_json::Map<String, serde_json::Value>);

impl<'de> Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a filter, a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut access: A,
            ) -> std::result::Result<UniqueKeys, A::Error> {
                let mut map = serde_json::Map::new();
                while let Some(key) = access.next_key::<String>()? {
                    if map.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate key {}: each key may appear once",
                            serde_json::Value::String(key)
                        )));
                    }
                    let value = access.next_value()?;
                    map.insert(key, value);
                }
                Ok(UniqueKeys(map))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// A [`Filter`] over a watch stream: `appeared` and `changed` events whose
/// entry matches pass; a `changed` event that takes a shown sidecar out of
/// the selection passes once (the consumer sees it leave), then that
/// sidecar is no longer shown; `gone` passes for a shown sidecar; `synced`
/// and `resync` always pass. So a consumer applying the passed events
/// ([`Event::apply`]) and dropping entries that no longer match holds
/// exactly the selected sidecars.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    filter: Filter,
    shown: BTreeSet<String>,
}

impl EventFilter {
    pub fn new(filter: Filter) -> EventFilter {
        EventFilter {
            filter,
            shown: BTreeSet::new(),
        }
    }

    /// Whether to pass `ev` on; call it for every event, in order.
    pub fn admit(&mut self, ev: &Event) -> bool {
        match ev {
            Event::Appeared {
                sandbox_id, entry, ..
            }
            | Event::Changed {
                sandbox_id, entry, ..
            } => {
                if self.filter.matches_entry(entry) {
                    self.shown.insert(sandbox_id.clone());
                    true
                } else {
                    self.shown.remove(sandbox_id)
                }
            }
            Event::Gone { sandbox_id, .. } => self.shown.remove(sandbox_id),
            Event::Synced { .. } | Event::Resync { .. } => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sidecar_markers::Verdict;

    fn entry(id: &str, state: State, agent: &str) -> SidecarEntry {
        SidecarEntry {
            sandbox_id: id.into(),
            agent_id: agent.into(),
            session_id: "s".into(),
            authority_url: "u".into(),
            policy_bundle_version: "1".into(),
            pid: 1,
            started_at: "t".into(),
            state,
            listen: "/x".into(),
            uptime_secs: None,
        }
    }

    #[test]
    fn parts_are_anded_and_lists_ored() {
        let f = Filter::from_json(r#"{"states":["unhealthy","stopped"],"agent":"a"}"#).unwrap();
        assert!(f.matches_entry(&entry("x", State::Unhealthy, "a")));
        assert!(f.matches_entry(&entry("x", State::Stopped, "a")));
        assert!(!f.matches_entry(&entry("x", State::Running, "a")));
        assert!(!f.matches_entry(&entry("x", State::Unhealthy, "b")));
        assert!(Filter::default().matches_entry(&entry("x", State::Running, "b")));
        let ids = Filter {
            sandbox_ids: vec!["y".into()],
            ..Filter::default()
        };
        assert!(!ids.matches_entry(&entry("x", State::Running, "a")));
    }

    #[test]
    fn json_is_checked() {
        for bad in [r#"{"state":["running"]}"#, r#"{"states":["fine"]}"#, "[]"] {
            let e = Filter::from_json(bad).unwrap_err();
            assert_eq!(
                e.info().code,
                crate::sidecar_markers::ErrorCode::InvalidArgument
            );
        }
        assert!(Filter::from_json("{}").unwrap().is_empty());
    }

    #[test]
    fn a_duplicate_key_is_refused_naming_it() {
        for (json, key) in [
            (r#"{"states":["running"],"states":["stopped"]}"#, "states"),
            (r#"{"agent":"a","agent":"a"}"#, "agent"),
            // The same key spelled with an escape is the same key.
            (
                r#"{"sandbox_ids":["x"],"sandbox\u005fids":[]}"#,
                "sandbox_ids",
            ),
        ] {
            let e = Filter::from_json(json).unwrap_err().info();
            assert_eq!(
                e.code,
                crate::sidecar_markers::ErrorCode::InvalidArgument,
                "{json}"
            );
            assert!(
                e.message.contains(&format!("duplicate key \"{key}\"")),
                "{json}: {}",
                e.message
            );
        }
        let f = Filter::from_json(r#"{"states":["running"],"agent":"a"}"#).unwrap();
        assert_eq!(
            (f.states, f.agent),
            (vec![State::Running], Some("a".into()))
        );
    }

    #[test]
    fn reports_match_by_reason_and_broken_ones_have_no_agent() {
        let broken = MarkerReport {
            name: "b".into(),
            verdict: Verdict::Broken,
            state: None,
            reason: Reason::ParseError,
            detail: String::new(),
            entry: None,
            error: None,
        };
        let by_reason = Filter {
            reasons: vec![Reason::ParseError],
            ..Filter::default()
        };
        assert!(by_reason.matches_report(&broken));
        assert!(!by_reason.matches_entry(&entry("b", State::Running, "a")));
        let by_agent = Filter {
            agent: Some("a".into()),
            ..Filter::default()
        };
        assert!(!by_agent.matches_report(&broken));
    }

    #[test]
    fn a_watch_stream_shows_a_sidecar_leaving_the_selection_once() {
        let mut f = EventFilter::new(Filter {
            states: vec![State::Unhealthy],
            ..Filter::default()
        });
        let at = String::from("t");
        let changed = |s, p| Event::Changed {
            sandbox_id: "x".into(),
            entry: entry("x", s, "a"),
            previous: p,
            at: at.clone(),
        };
        let appeared = Event::Appeared {
            sandbox_id: "x".into(),
            entry: entry("x", State::Running, "a"),
            at: at.clone(),
        };
        assert!(!f.admit(&appeared));
        assert!(f.admit(&changed(State::Unhealthy, State::Running)));
        assert!(f.admit(&changed(State::Running, State::Unhealthy)));
        assert!(!f.admit(&changed(State::Running, State::Running)));
        let gone = Event::Gone {
            sandbox_id: "x".into(),
            reason: crate::sidecar_markers::GoneReason::Removed,
            at: at.clone(),
        };
        assert!(!f.admit(&gone));
        assert!(f.admit(&Event::Synced { at }));
    }
}
