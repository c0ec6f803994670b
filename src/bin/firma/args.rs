//! What `firma` accepts: the clap definition of every command, option and
//! argument. Nothing here runs a command; the commands read these types,
//! and `firma completions` / `firma manpages` are generated from them
//! ([`Cli`]), so help, completions and man pages never drift apart.

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
pub use clap_complete::Shell;
use firma_stack::sidecar_markers::{self as sm, DEFAULT_TIMEOUT, MAX_TIMEOUT};

#[derive(Parser, Debug)]
#[command(
    name = "firma",
    version,
    about = "Inspect and clean up agent-sandbox sidecars",
    after_help = crate::manual::exit_codes_help()
)]
pub struct Cli {
    /// Runtime directory holding run/ (default: $FIRMA_STATE_DIR, else
    /// $XDG_RUNTIME_DIR/firma, else /run/firma for root and
    /// /tmp/firma-<uid> for other users).
    #[arg(long, global = true, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// Accepted before the subcommand for older scripts; the subcommand's
    /// own `--timeout-ms` wins. Not offered in help.
    #[arg(long = "timeout-ms", hide = true, value_name = "MS",
          value_parser = timeout_parser())]
    pub legacy_timeout_ms: Option<u64>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sidecar markers.
    #[command(subcommand)]
    Sidecar(SidecarCommand),
    /// Print the shell completion script (e.g. `firma completions bash`).
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Write the man pages (firma.1, firma-sidecar-*.1) into DIR.
    #[command(hide = true)]
    Manpages { dir: PathBuf },
}

/// The probe timeout of the subcommands that probe endpoints.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ProbeArgs {
    #[arg(long, value_name = "MS", value_parser = timeout_parser(), help = timeout_help())]
    pub timeout_ms: Option<u64>,
}

fn max_timeout_ms() -> u64 {
    u64::try_from(MAX_TIMEOUT.as_millis()).unwrap_or(u64::MAX)
}

fn timeout_parser() -> clap::builder::RangedU64ValueParser<u64> {
    clap::value_parser!(u64).range(1..=max_timeout_ms())
}

fn timeout_help() -> String {
    format!(
        "How long a sidecar's endpoint may take to accept a connection, in \
         milliseconds (1 to {}; default {})",
        max_timeout_ms(),
        DEFAULT_TIMEOUT.as_millis()
    )
}

#[derive(Subcommand, Debug)]
pub enum SidecarCommand {
    /// List live sidecars, collecting stale markers on the way.
    #[command(
        long_about = "List the live sidecars (running, unhealthy or unknown) in a table.\n\n\
        Markers of sidecars that provably stopped are removed on the way (one stderr line \
        names them; --no-gc keeps them). Markers that cannot be read are skipped and named \
        on stderr; `firma sidecar inspect` says why."
    )]
    Status(StatusArgs),
    /// Show sidecars by id, whatever their state; exit 1 if one has no marker.
    Get {
        /// Sandbox ids of the runs, shown in this order.
        #[arg(required = true, value_name = "SANDBOX_ID", add = crate::complete::sandbox_ids())]
        sandbox_ids: Vec<String>,
        /// Print JSON, always one object per id and line, in argument
        /// order: its entry, or `null` when it has no marker (the same as
        /// --json-lines). Nothing is printed on exit 2.
        #[arg(long, conflicts_with_all = ["json_lines", "format"])]
        json: bool,
        #[command(flatten)]
        select: SelectArgs,
        #[command(flatten)]
        shape: ShapeArgs,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Explain every entry of run/: verdict, state and a reason code. Removes
    /// nothing.
    #[command(
        long_about = "Explain every entry of run/, read-only: its verdict (live, stale, \
        broken), its state, a stable reason code and one line of detail. Nothing is removed.\n\n\
        With NAMEs, only those entries, in that order; a name with no entry gets a stderr \
        line and exit status 1."
    )]
    Inspect {
        /// Entry names in run/ (default: every entry, sorted by name).
        #[arg(value_name = "NAME", add = crate::complete::sandbox_ids())]
        names: Vec<String>,
        /// Print the JSON array of reports instead of a table (a NAME with no
        /// entry is left out of it).
        #[arg(long, conflicts_with_all = ["json_lines", "format"])]
        json: bool,
        #[command(flatten)]
        select: SelectArgs,
        /// Only entries with this reason code (repeatable: any of them).
        #[arg(long = "reason", value_name = "REASON", value_parser = reason_parser())]
        reasons: Vec<sm::Reason>,
        #[command(flatten)]
        shape: ShapeArgs,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Remove the markers of sidecars that have stopped; print their ids.
    #[command(
        long_about = "Remove the markers of sidecars that have provably stopped (no such \
        process, a zombie, a reused pid, another boot) and print the removed ids, one per \
        line. Never probes endpoints and never removes a live or unreadable marker. A marker \
        that cannot be removed is left in place and named on stderr."
    )]
    Gc {
        /// Print the JSON array of removed ids instead of one per line.
        #[arg(long)]
        json: bool,
    },
    /// Print Prometheus metrics (text format 0.0.4), or write them
    /// atomically for node_exporter's textfile collector.
    Metrics {
        /// Write to this file (temp file + rename) instead of stdout.
        #[arg(long, value_name = "PATH")]
        textfile: Option<PathBuf>,
        /// Remove nothing; show stale markers as state `stopped`.
        #[arg(long)]
        no_gc: bool,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Stop sidecars safely (identity-checked signals through a pidfd),
    /// then remove their markers. Exit 0 all gone, 1 no such marker, 2 an
    /// error or refusal, 3 --no-kill and still running.
    Stop(StopArgs),
    /// Stream sidecars appearing, changing and going until SIGINT/SIGTERM.
    Watch(WatchArgs),
    /// Serve Prometheus metrics over HTTP (/metrics, /healthz), kept
    /// current by a watcher, until SIGINT/SIGTERM.
    Exporter(ExporterArgs),
    /// Exit 0 only when every named sidecar is running (like `systemctl
    /// is-active`): 1 no marker, 4 unhealthy, 5 unknown, 6 stopped, the
    /// worst first (2, 1, 6, 5, 4).
    Check {
        /// Sandbox ids to check.
        #[arg(required = true, value_name = "ID", add = crate::complete::sandbox_ids())]
        sandbox_ids: Vec<String>,
        /// Print nothing; only the exit status says.
        #[arg(short, long)]
        quiet: bool,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Wait until every named sidecar is running, or gone, on the watch
    /// stream (no polling). Exit 0 met, 7 timed out, 2 error.
    Wait(WaitArgs),
    /// Register a sidecar from the shell: write the marker for this
    /// process, then exec CMD (same pid, same start time).
    #[command(
        long_about = "Write the marker of sandbox ID for this process (its pid, start time, \
        boot id and namespaces: the identity `stop` verifies), then exec CMD ARGS in its \
        place. The pid and start time survive exec, so the marker names CMD.\n\n\
        Because firma is replaced by CMD, nothing is left to remove the marker when CMD \
        exits: it becomes stale and is collected by the next status, gc, metrics or watch. \
        If the exec fails, the marker is removed and firma exits 2."
    )]
    Run(RunArgs),
}

/// The selection shared by status, get, inspect, watch and stop --all
/// (the core's `Filter`).
/// The address the exporter listens on when `--listen` is not given:
/// loopback only (SECURITY.md, "Exporter").
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9847";

/// Options of `firma sidecar exporter`.
#[derive(Args, Debug)]
pub struct ExporterArgs {
    /// Where to serve /metrics and /healthz: IP:PORT, or a path (containing
    /// a `/`) for a Unix socket.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,
    /// Read-only: collect nothing (a stopped sidecar stays, state `stopped`).
    #[arg(long)]
    pub no_gc: bool,
    /// How often every known sidecar is judged again and probed (a death
    /// is seen at once through its pidfd whatever this is).
    #[arg(long, value_name = "MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub probe_interval_ms: u64,
    /// How often broken markers are counted (one read-only inspect pass).
    #[arg(long, value_name = "MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(100..=86_400_000))]
    pub inspect_interval_ms: u64,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// `firma sidecar status`'s options.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print the JSON array of live entries instead of a table.
    #[arg(long, conflicts_with_all = ["quiet", "json_lines", "format"])]
    pub json: bool,
    /// Print only the live sandbox ids, one per line.
    #[arg(short, long, conflicts_with_all = ["json_lines", "format"])]
    pub quiet: bool,
    /// Only this sandbox (repeatable); the original project's form
    /// `status --sandbox-id ID --json` prints `[]` for one that is
    /// not live, with exit 0.
    #[arg(long = "sandbox-id", value_name = "ID", add = crate::complete::sandbox_ids())]
    pub sandbox_ids: Vec<String>,
    /// Read-only: remove nothing (stale markers stay on disk and are not
    /// listed).
    #[arg(long)]
    pub no_gc: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    #[command(flatten)]
    pub shape: ShapeArgs,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SelectArgs {
    /// Only sidecars in this state (repeatable: any of them).
    #[arg(long = "state", value_name = "STATE", value_parser = state_parser())]
    pub states: Vec<sm::State>,
    /// Only sidecars of this agent id.
    #[arg(long, value_name = "AGENT_ID")]
    pub agent: Option<String>,
    /// Only sidecars of this session id.
    #[arg(long, value_name = "SESSION_ID")]
    pub session: Option<String>,
}

impl SelectArgs {
    pub fn filter(&self) -> sm::Filter {
        sm::Filter {
            states: self.states.clone(),
            agent: self.agent.clone(),
            session: self.session.clone(),
            ..sm::Filter::default()
        }
    }
}

/// How a listing is printed (status, get, inspect).
#[derive(Args, Debug, Clone, Default)]
pub struct ShapeArgs {
    /// `wide`: every column (LISTEN, STARTED), not only those that fit
    /// 100 columns.
    #[arg(short = 'o', long = "output", value_name = "MODE", value_parser = ["wide"])]
    pub output: Option<String>,
    /// Named columns (`sandbox_id,state,pid`), or a template where
    /// {FIELD} is a field of the entry (`{sandbox_id}\t{state}`; \t, \n
    /// and {{ }} as usual). FIELDs: the JSON keys, and uptime (human).
    #[arg(long, value_name = "COLUMNS|TEMPLATE", conflicts_with = "json_lines")]
    pub format: Option<String>,
    /// Leave out the header line of a table.
    #[arg(long)]
    pub no_headers: bool,
    /// Sort by this field (numbers by value, a missing value last).
    #[arg(long, value_name = "FIELD")]
    pub sort: Option<String>,
    /// One JSON object per line (NDJSON), the library's JSON.
    #[arg(long)]
    pub json_lines: bool,
}

/// The options of `firma sidecar wait`.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Sandbox ids to wait for.
    #[arg(required = true, value_name = "ID", add = crate::complete::sandbox_ids())]
    pub sandbox_ids: Vec<String>,
    /// The condition: running, or gone (no marker, or stopped).
    #[arg(long = "for", value_name = "CONDITION", value_parser = ["running", "gone"])]
    pub condition: String,
    /// How long to wait at most: `30s`, `500ms`, `2m`, `1h` or seconds.
    #[arg(long, value_name = "DUR", default_value = "30s", value_parser = parse_duration)]
    pub timeout: std::time::Duration,
    /// Print the outcome as JSON (`{"condition","met","waited_ms","sidecars"}`).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

/// The options of `firma sidecar run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The sandbox id to register.
    #[arg(long, value_name = "ID")]
    pub id: String,
    /// agent_id of the marker.
    #[arg(long, value_name = "AGENT_ID", default_value = "")]
    pub agent: String,
    /// session_id of the marker.
    #[arg(long, value_name = "SESSION_ID", default_value = "")]
    pub session: String,
    /// authority_url of the marker.
    #[arg(long, value_name = "URL", default_value = "")]
    pub authority_url: String,
    /// policy_bundle_version of the marker.
    #[arg(long, value_name = "VERSION", default_value = "")]
    pub policy_bundle_version: String,
    /// The endpoint CMD serves: an absolute socket path or host:port
    /// (default: <marker>/sidecar.sock).
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Option<String>,
    /// The command and its arguments.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub command: Vec<std::ffi::OsString>,
}

/// `30s`, `500ms`, `2m`, `1h`, or a number of seconds.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (30s, 500ms, 2m, 1h)"))?;
    let ms = match unit {
        "ms" => Some(n),
        "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration (30s, 500ms, 2m, 1h)"))?;
    Ok(std::time::Duration::from_millis(ms))
}

const STATE_NAMES: [&str; 4] = ["running", "unhealthy", "stopped", "unknown"];

/// Every reason code (docs/design.md, "Reason codes"); a unit test checks
/// each one parses.
pub const REASON_NAMES: [&str; 23] = [
    "serving",
    "endpoint_missing",
    "connection_refused",
    "backlog_full",
    "timeout",
    "permission_denied",
    "not_a_socket",
    "unreachable",
    "connect_error",
    "probe_unavailable",
    "unverifiable",
    "process_gone",
    "zombie",
    "pid_reused",
    "other_boot",
    "parse_error",
    "id_mismatch",
    "io_error",
    "symlink",
    "not_a_directory",
    "invalid_name",
    "mount_point",
    "leftover",
];

fn from_name<T: serde::de::DeserializeOwned>(s: &str) -> T {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).expect("a listed name")
}

fn state_parser() -> impl clap::builder::TypedValueParser<Value = sm::State> {
    clap::builder::PossibleValuesParser::new(STATE_NAMES).map(|s| from_name(&s))
}

fn reason_parser() -> impl clap::builder::TypedValueParser<Value = sm::Reason> {
    clap::builder::PossibleValuesParser::new(REASON_NAMES).map(|s| from_name(&s))
}

// The options of `firma sidecar stop` (no doc comment: the Stop variant's
// is its help).
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Sandbox ids of the sidecars to stop (stopped in parallel, at most
    /// 16 at a time).
    #[arg(required_unless_present = "all", value_name = "ID", add = crate::complete::sandbox_ids())]
    pub sandbox_ids: Vec<String>,
    /// Stop every live sidecar the selection (--state, --agent,
    /// --session) matches; none matching is exit 0.
    #[arg(long, conflicts_with = "sandbox_ids")]
    pub all: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    /// An id with no marker counts as stopped (exit 0, `null` in --json).
    #[arg(long)]
    pub ignore_missing: bool,
    /// The first signal to send: a name (SIGTERM, TERM, INT, SIGRTMIN+1) or
    /// a number.
    #[arg(long, value_name = "NAME", default_value = "SIGTERM", value_parser = parse_signal,
          add = crate::complete::signals())]
    pub signal: i32,
    /// How long to wait for the exit after the first signal.
    #[arg(long, value_name = "N", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub grace_ms: u64,
    /// Do not send SIGKILL after the grace period: leave a sidecar that is
    /// still running (exit 3, marker kept).
    #[arg(long)]
    pub no_kill: bool,
    /// UNSAFE: signal even when the process's identity cannot be verified
    /// (a marker without boot_id/pid_start_ticks, or from another pid
    /// namespace). A pid proven reused is still refused.
    #[arg(long)]
    pub no_identity_check: bool,
    /// Print a JSON array, one element per id: the outcome object, null for
    /// a missing marker, or {"sandbox_id", "error"} for an error.
    #[arg(long)]
    pub json: bool,
}

fn parse_signal(s: &str) -> Result<i32, String> {
    sm::parse_signal(s).map_err(|e| e.to_string())
}

/// Options of `firma sidecar watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Print one JSON object per event (NDJSON) instead of readable lines.
    #[arg(long, visible_alias = "json-lines")]
    pub json: bool,
    #[command(flatten)]
    pub select: SelectArgs,
    /// How often every known sidecar is judged again and probed.
    #[arg(long, value_name = "MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=86_400_000))]
    pub probe_interval_ms: u64,
    /// Read-only: do not collect stale markers (a stopped sidecar is
    /// reported `changed` to `stopped`).
    #[arg(long)]
    pub no_gc: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn every_reason_and_state_name_parses_and_durations_have_units() {
        for r in REASON_NAMES {
            assert_eq!(from_name::<sm::Reason>(r).as_str(), r);
        }
        for s in STATE_NAMES {
            assert_eq!(from_name::<sm::State>(s).as_str(), s);
        }
        let d = std::time::Duration::from_millis;
        assert_eq!(parse_duration("500ms"), Ok(d(500)));
        assert_eq!(parse_duration("3"), Ok(d(3000)));
        assert_eq!(parse_duration("2m"), Ok(d(120_000)));
        assert!(parse_duration("2 weeks").is_err());
    }
}
