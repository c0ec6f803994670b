//! What `firma` accepts: the clap definition of every command, option and
//! argument. Nothing here runs a command; the commands read these types,
//! and `firma completions` / `firma manpages` are generated from them
//! ([`Cli`]), so help, completions and man pages never drift apart.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
pub use clap_complete::Shell;
use firma_stack::sidecar_markers::{self as sm, DEFAULT_TIMEOUT, MAX_TIMEOUT};

const EXIT_CODES_HELP: &str = "Exit status: 0 ok; 1 an id given to get or inspect has no \
marker; 2 error (one line on stderr) or usage error.";

#[derive(Parser, Debug)]
#[command(
    name = "firma",
    version,
    about = "Inspect and clean up agent-sandbox sidecars",
    after_help = EXIT_CODES_HELP
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
    Status {
        /// Print the JSON array of live entries instead of a table.
        #[arg(long, conflicts_with = "quiet")]
        json: bool,
        /// Print only the live sandbox ids, one per line.
        #[arg(short, long)]
        quiet: bool,
        /// Read-only: remove nothing (stale markers stay on disk and are not
        /// listed).
        #[arg(long)]
        no_gc: bool,
        #[command(flatten)]
        probe: ProbeArgs,
    },
    /// Show sidecars by id, whatever their state; exit 1 if one has no marker.
    Get {
        /// Sandbox ids of the runs, shown in this order.
        #[arg(required = true, value_name = "SANDBOX_ID")]
        sandbox_ids: Vec<String>,
        /// Print JSON: for one id its entry object (`null` when there is no
        /// marker); for several, one array in argument order with `null` for
        /// each missing id. Nothing is printed on exit 2.
        #[arg(long)]
        json: bool,
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
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// Print the JSON array of reports instead of a table (a NAME with no
        /// entry is left out of it).
        #[arg(long)]
        json: bool,
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
    Exporter(crate::exporter::ExporterArgs),
}

// The options of `firma sidecar stop` (no doc comment: the Stop variant's
// is its help).
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Sandbox ids of the sidecars to stop.
    #[arg(required = true, value_name = "ID")]
    pub sandbox_ids: Vec<String>,
    /// The first signal to send: a name (SIGTERM, TERM, INT, SIGRTMIN+1) or
    /// a number.
    #[arg(long, value_name = "NAME", default_value = "SIGTERM", value_parser = parse_signal)]
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
    #[arg(long)]
    pub json: bool,
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
