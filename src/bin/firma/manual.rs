//! The parts of `firma`'s manual that clap's definition does not carry:
//! the exit statuses (one table: `firma --help`, `firma.1` and each
//! subcommand's page, which lists the codes it can return), examples, and
//! the reference sections of some pages (the reason codes from the core's
//! table, the event kinds, the metrics). [`crate::generate`] renders them
//! into the man pages; nothing here is written twice.

use firma_stack::sidecar_markers::{self as sm, Reason};

/// One exit status: its code, what it means, and the subcommands that can
/// return it (empty: every command).
pub struct ExitCode {
    pub code: u8,
    pub meaning: &'static str,
    pub commands: &'static [&'static str],
}

const fn exit(code: u8, meaning: &'static str, commands: &'static [&'static str]) -> ExitCode {
    ExitCode {
        code,
        meaning,
        commands,
    }
}

/// Every exit status of `firma` (docs/design.md, "Surfaces").
pub const EXIT_CODES: &[ExitCode] = &[
    exit(
        0,
        "success (also an empty or missing runtime directory: a warning on stderr)",
        &[],
    ),
    exit(
        1,
        "a named sidecar or entry has no marker",
        &["get", "inspect", "stop", "check"],
    ),
    exit(2, "an error (one line on stderr) or a usage error", &[]),
    exit(3, "stop --no-kill left a sidecar running", &["stop"]),
    exit(4, "check: a sidecar is unhealthy", &["check"]),
    exit(5, "check: a sidecar's state is unknown", &["check"]),
    exit(6, "check: a sidecar has stopped", &["check"]),
    exit(
        7,
        "wait: the timeout passed before every sidecar met the condition",
        &["wait"],
    ),
];

/// The exit statuses `command` (a `firma sidecar` subcommand's name, or
/// `None` for `firma` itself: all of them) can return.
pub fn exit_codes(command: Option<&str>) -> impl Iterator<Item = &'static ExitCode> {
    EXIT_CODES
        .iter()
        .filter(move |e| command.is_none_or(|c| e.commands.is_empty() || e.commands.contains(&c)))
}

/// `firma --help`'s closing table.
pub fn exit_codes_help() -> String {
    let mut text = String::from("Exit status:");
    for e in exit_codes(None) {
        let who = match e.commands {
            [] | [_] => String::new(),
            many => format!(" ({})", many.join(", ")),
        };
        text.push_str(&format!("\n  {}  {}{who}", e.code, e.meaning));
    }
    text
}

/// Every example: the page it belongs to (`None`: `firma.1`), what it
/// does, and the command line (each parsed by a test).
#[rustfmt::skip]
const EXAMPLES: &[(Option<&str>, &str, &str)] = &[
    (None, "List the live sidecars.", "firma sidecar status"),
    (None, "Why is an entry not listed?", "firma sidecar inspect web-1"),
    (None, "Stop a sidecar, waiting up to 10 s.", "firma sidecar stop web-1"),
    (Some("status"), "Only the unhealthy ones, ids only.", "firma sidecar status --state unhealthy -q"),
    (Some("status"), "One agent's sidecars as JSON.", "firma sidecar status --agent planner --json"),
    (Some("status"), "The original project's one-sandbox query.", "firma sidecar status --sandbox-id web-1 --json"),
    (Some("get"), "Two sidecars, one JSON value per line.", "firma sidecar get web-1 web-2 --json"),
    (Some("inspect"), "Every entry and why.", "firma sidecar inspect"),
    (Some("inspect"), "Only the broken ones that cannot be parsed.", "firma sidecar inspect --reason parse_error"),
    (Some("gc"), "Remove stale markers; print the removed ids as JSON.", "firma sidecar gc --json"),
    (Some("check"), "In a script: go on only when it serves.", "firma sidecar check web-1 && deploy"),
    (Some("wait"), "Wait until a new sidecar serves.", "firma sidecar wait web-1 --for running --timeout 30s"),
    (Some("wait"), "Wait until it is gone.", "firma sidecar wait web-1 --for gone --timeout 1m"),
    (Some("stop"), "Stop one, SIGKILL after 10 s.", "firma sidecar stop web-1"),
    (Some("stop"), "Stop every unhealthy one; ids already gone are fine.", "firma sidecar stop --all --state unhealthy --ignore-missing"),
    (Some("stop"), "Interrupt, never kill.", "firma sidecar stop --signal INT --no-kill web-1"),
    (Some("watch"), "Stream changes as JSON lines.", "firma sidecar watch --json"),
    (Some("metrics"), "Feed node_exporter's textfile collector.", "firma sidecar metrics --textfile /var/lib/node_exporter/textfile/firma.prom"),
    (Some("exporter"), "Serve /metrics on loopback.", "firma sidecar exporter --listen 127.0.0.1:9847"),
    (Some("run"), "Register a sidecar, then become it.", "firma sidecar run --id web-1 --agent planner -- ./sidecar --listen /run/web-1.sock"),
];

/// The examples of a page: (what it does, the command line).
pub fn examples(command: Option<&str>) -> Vec<(&'static str, &'static str)> {
    EXAMPLES
        .iter()
        .filter(|(page, _, _)| *page == command)
        .map(|&(_, what, line)| (what, line))
        .collect()
}

/// Reference sections of a page beyond EXIT STATUS and EXAMPLES: (title,
/// entries as (term, text)).
pub fn reference(command: Option<&str>) -> Vec<(&'static str, Vec<(String, String)>)> {
    match command {
        Some("inspect") => vec![(
            "REASON CODES",
            Reason::ALL
                .iter()
                .map(|r| {
                    (
                        r.as_str().to_owned(),
                        format!("verdict {}", r.verdict().as_str()),
                    )
                })
                .collect(),
        )],
        Some("watch") => vec![("EVENTS", event_schema())],
        _ => Vec::new(),
    }
}

/// The signal names `stop --signal` offers, for its page.
pub fn signal_list() -> String {
    sm::signal_names().collect::<Vec<_>>().join(", ")
}

/// One line of `--json` output per event kind, serialized by the core
/// (the entry shown as ENTRY, the time as AT).
fn event_schema() -> Vec<(String, String)> {
    let entry = sm::SidecarEntry {
        sandbox_id: "web-1".into(),
        agent_id: String::new(),
        session_id: String::new(),
        authority_url: String::new(),
        policy_bundle_version: String::new(),
        pid: 1,
        started_at: String::new(),
        state: sm::State::Running,
        listen: String::new(),
        uptime_secs: None,
    };
    let entry_json = serde_json::to_string(&entry).unwrap_or_default();
    let at = || "AT".to_owned();
    let id = || "web-1".to_owned();
    let events = [
        sm::Event::Appeared {
            sandbox_id: id(),
            entry: entry.clone(),
            at: at(),
        },
        sm::Event::Changed {
            sandbox_id: id(),
            entry,
            previous: sm::State::Unhealthy,
            at: at(),
        },
        sm::Event::Gone {
            sandbox_id: id(),
            reason: sm::GoneReason::Collected,
            at: at(),
        },
        sm::Event::Gone {
            sandbox_id: id(),
            reason: sm::GoneReason::Removed,
            at: at(),
        },
        sm::Event::Resync {
            reason: "why, for a person".into(),
            at: at(),
        },
        sm::Event::Synced { at: at() },
    ];
    events
        .iter()
        .map(|e| {
            let json = serde_json::to_string(e)
                .unwrap_or_default()
                .replace(&entry_json, "ENTRY")
                // A space after each comma, so the page can break the line.
                .replace(",\"", ", \"");
            (e.kind().to_owned(), json)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    /// Every example is a command line `firma` accepts as written.
    #[test]
    fn every_example_parses() {
        let pages = [
            None,
            Some("status"),
            Some("get"),
            Some("inspect"),
            Some("gc"),
            Some("check"),
            Some("wait"),
            Some("stop"),
            Some("watch"),
            Some("metrics"),
            Some("exporter"),
            Some("run"),
        ];
        for page in pages {
            assert!(!examples(page).is_empty(), "{page:?} has no example");
            for (_, line) in examples(page) {
                let words: Vec<&str> = line.split_whitespace().take_while(|w| *w != "&&").collect();
                if let Err(e) = crate::args::Cli::try_parse_from(&words) {
                    panic!("{line}: {e}");
                }
            }
        }
    }

    #[test]
    fn each_page_lists_only_its_exit_codes() {
        let codes = |c| exit_codes(c).map(|e| e.code).collect::<Vec<_>>();
        assert_eq!(codes(None), [0, 1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(codes(Some("check")), [0, 1, 2, 4, 5, 6]);
        assert_eq!(codes(Some("gc")), [0, 2]);
        assert!(exit_codes_help().contains("\n  3  stop --no-kill"));
    }

    #[test]
    fn the_reason_codes_and_events_come_from_the_core() {
        let reasons = &reference(Some("inspect"))[0].1;
        assert_eq!(reasons.len(), Reason::ALL.len());
        assert!(reasons.contains(&("process_gone".to_owned(), "verdict stale".to_owned())));
        let events = &reference(Some("watch"))[0].1;
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            kinds,
            ["appeared", "changed", "gone", "gone", "resync", "synced"]
        );
        assert!(
            events[0]
                .1
                .starts_with(r#"{"event":"appeared", "sandbox_id":"web-1", "entry":ENTRY"#)
        );
    }
}
