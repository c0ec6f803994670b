//! The `firma` command line: `firma sidecar status|get|inspect|gc`.
//!
//! Exit codes, for every subcommand:
//! - 0: success — also an empty runtime directory, or one that does not
//!   exist (a one-line warning on stderr says so);
//! - 1: `get` or `inspect` was given an id that has no marker (the ones
//!   found are still printed);
//! - 2: an error — one line on stderr naming what was wrong — or a usage
//!   error.
//!
//! stdout carries only the data: a table, the JSON, or ids. Notes,
//! warnings and per-marker problems go to stderr, one line each, starting
//! `firma: `, after stdout has been written. Every string that came from a
//! marker is escaped for people (`text::escape`: a newline in a field shows
//! as `\n`, no escape sequence reaches the terminal); `--json` output is the
//! exact serde serialization every surface shares.

mod render;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::sidecar_markers::{
    self as sm, DEFAULT_TIMEOUT, MAX_TIMEOUT, ProbeOptions, ScanOptions, ScanReport, StackError,
    text,
};

pub use render::human_uptime;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: a named sidecar or marker does not exist.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit status: an error (or a usage error).
pub const EXIT_ERROR: u8 = 2;

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
        shell: crate::cli_gen::Shell,
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
    Stop(crate::cli_stop::StopArgs),
    /// Stream sidecars appearing, changing and going until SIGINT/SIGTERM.
    Watch(crate::cli_watch::WatchArgs),
}

/// What a command produced: stdout text, stderr lines (without the
/// `firma: ` prefix) and the exit status.
#[derive(Debug, Default)]
pub struct Output {
    pub code: u8,
    pub stdout: String,
    pub notes: Vec<String>,
}

impl Output {
    /// Nothing more to print: only the exit code.
    fn exit(code: u8) -> Output {
        Output {
            code,
            ..Output::default()
        }
    }

    fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

/// Runs the command, prints its output and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    let out = match execute(cli) {
        Ok(out) => out,
        Err(msg) => Output {
            code: EXIT_ERROR,
            notes: vec![msg],
            ..Output::default()
        },
    };
    emit(out)
}

/// Writes stdout (then flushes it), then the stderr lines.
fn emit(out: Output) -> u8 {
    let mut code = out.code;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.stdout.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => {}
        // A closed pipe (`firma ... | head`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => {
            eprintln!("firma: cannot write output: {e}");
            code = EXIT_ERROR;
        }
    }
    drop(stdout);
    let mut stderr = std::io::stderr().lock();
    for line in &out.notes {
        // Every note is built from escaped parts; folding it again keeps
        // it one line whatever a future caller passes.
        let _ = writeln!(stderr, "firma: {}", text::one_line(line));
    }
    code
}

fn execute(cli: Cli) -> Result<Output, String> {
    let dir = cli.runtime_dir.unwrap_or_else(sm::default_runtime_dir);
    let ctx = Ctx {
        dir,
        legacy_timeout_ms: cli.legacy_timeout_ms,
    };
    match cli.command {
        Command::Sidecar(cmd) => sidecar(&ctx, cmd),
        // These write their own output.
        Command::Completions { shell } => crate::cli_gen::completions(shell).map(Output::exit),
        Command::Manpages { dir } => crate::cli_gen::manpages(&dir).map(Output::exit),
    }
}

/// Settings shared by the sidecar subcommands.
struct Ctx {
    dir: PathBuf,
    legacy_timeout_ms: Option<u64>,
}

impl Ctx {
    fn probe(&self, args: ProbeArgs) -> ProbeOptions {
        match args.timeout_ms.or(self.legacy_timeout_ms) {
            Some(ms) => ProbeOptions::with_timeout(Duration::from_millis(ms)),
            None => ProbeOptions::with_timeout(DEFAULT_TIMEOUT),
        }
    }

    /// The runtime dir as people should read it: absolute, escaped.
    fn shown(&self) -> String {
        shown_path(&self.dir)
    }

    fn run_shown(&self) -> String {
        shown_path(&self.dir.join("run"))
    }

    /// True when the runtime directory itself does not exist (a mistyped
    /// `--runtime-dir`, not an idle host).
    fn missing(&self) -> bool {
        matches!(std::fs::metadata(&self.dir), Err(e) if e.kind() == std::io::ErrorKind::NotFound)
    }

    fn missing_warning(&self) -> String {
        format!("runtime directory {} does not exist", self.shown())
    }

    /// The warning line for a runtime directory that fails the trust
    /// checks, when it does (docs/design.md, "Trust"); nothing when it
    /// passes or cannot be opened (the command itself reports that).
    fn untrusted_warning(&self) -> Option<String> {
        sm::check_runtime_dir(&self.dir)
            .ok()
            .flatten()
            .map(|w| untrusted_note(&w))
    }
}

/// `warning: <dir> is not trusted: <why>; read-only: ...`, from the line
/// the core gives (`check_runtime_dir`, `ScanReport::untrusted`).
fn untrusted_note(why: &str) -> String {
    format!(
        "warning: {}; read-only: nothing is collected, and gc, stop and writers refuse",
        text::escape(why)
    )
}

fn shown_path(p: &Path) -> String {
    let abs = std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    text::escape(&text::path_string(&abs))
}

/// One line for a person from a core error.
fn message(e: &StackError) -> String {
    e.info().message
}

fn sidecar(ctx: &Ctx, cmd: SidecarCommand) -> Result<Output, String> {
    match cmd {
        SidecarCommand::Status {
            json,
            quiet,
            no_gc,
            probe,
        } => status(ctx, json, quiet, no_gc, probe),
        SidecarCommand::Get {
            sandbox_ids,
            json,
            probe,
        } => get(ctx, &sandbox_ids, json, probe),
        SidecarCommand::Inspect { names, json, probe } => inspect(ctx, &names, json, probe),
        SidecarCommand::Gc { json } => gc(ctx, json),
        SidecarCommand::Watch(args) => {
            // Before the stream, which runs until a signal.
            if let Some(w) = ctx.untrusted_warning() {
                eprintln!("firma: {}", text::one_line(&w));
            }
            let code = crate::cli_watch::run(&ctx.dir, ctx.probe(args.probe), &args)?;
            Ok(Output::exit(code))
        }
        SidecarCommand::Stop(args) => {
            let (stdout, code) = crate::cli_stop::run(&ctx.dir, &args)?;
            Ok(Output {
                stdout,
                code,
                ..Output::default()
            })
        }
        SidecarCommand::Metrics {
            textfile,
            no_gc,
            probe,
        } => {
            let stdout =
                crate::metrics::command(&ctx.dir, ctx.probe(probe), textfile.as_deref(), no_gc)?;
            Ok(Output {
                stdout,
                notes: ctx.untrusted_warning().into_iter().collect(),
                ..Output::default()
            })
        }
    }
}

fn status(
    ctx: &Ctx,
    json: bool,
    quiet: bool,
    no_gc: bool,
    probe: ProbeArgs,
) -> Result<Output, String> {
    let opts = ScanOptions {
        probe: Some(ctx.probe(probe)),
        collect: !no_gc,
    };
    let report = sm::scan(&ctx.dir, &opts).map_err(|e| message(&e))?;
    let mut out = Output::default();
    if json {
        out.stdout = json_line(&report.live)?;
    } else if quiet {
        for e in &report.live {
            out.stdout.push_str(&text::escape(&e.sandbox_id));
            out.stdout.push('\n');
        }
    } else {
        out.stdout = render::entries_table(&report.live, render::colour_wanted());
    }
    if let Some(w) = &report.untrusted {
        out.note(untrusted_note(w));
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if !json && !quiet && report.live.is_empty() {
            out.note(format!("no live sidecars in {}", ctx.shown()));
        }
        scan_notes(&mut out, &report, true);
    }
    Ok(out)
}

/// The stderr lines of a scan: what it collected (when `show_collected`),
/// what it skipped, and each problem it met.
fn scan_notes(out: &mut Output, report: &ScanReport, show_collected: bool) {
    let collected = &report.collected;
    if show_collected && !collected.is_empty() {
        out.note(format!(
            "collected {}: {}",
            render::count(collected.len(), "stale marker"),
            render::name_list(collected)
        ));
    }
    if !report.broken.is_empty() {
        let n = report.broken.len();
        out.note(format!(
            "{} could not be read: {} (see firma sidecar inspect)",
            render::count(n, "marker"),
            render::name_list(&report.broken)
        ));
    }
    for p in &report.problems {
        out.note(text::escape(&p.error.message));
    }
}

fn get(ctx: &Ctx, ids: &[String], json: bool, probe: ProbeArgs) -> Result<Output, String> {
    // Bad input is refused before anything is looked at.
    for id in ids {
        sm::validate_sandbox_id(id).map_err(|e| message(&e))?;
    }
    let opts = ctx.probe(probe);
    let mut out = Output::default();
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    let mut failed = false;
    for id in ids {
        match sm::get_with(&ctx.dir, id, &opts) {
            Ok(Some(entry)) => found.push(Some(entry)),
            Ok(None) => {
                missing.push(id);
                found.push(None);
            }
            // One id: exactly the error, as before several were accepted.
            Err(e) if ids.len() == 1 => return Err(message(&e)),
            Err(e) => {
                out.note(message(&e));
                failed = true;
                found.push(None);
            }
        }
    }
    out.code = if failed {
        EXIT_ERROR
    } else if missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_NOT_FOUND
    };
    if json {
        // On exit 2 stdout stays empty: a script never takes a partial
        // answer for a whole one.
        if !failed {
            out.stdout = match found.as_slice() {
                [one] => json_line(one)?,
                many => json_line(&many)?,
            };
        }
    } else if found.iter().any(Option::is_some) {
        out.stdout = render::entries_table(found.iter().flatten(), render::colour_wanted());
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else if let Some(w) = ctx.untrusted_warning() {
        out.note(w);
    }
    for id in missing {
        out.note(format!(
            "no sidecar \"{}\" in {}",
            text::escape(id),
            ctx.shown()
        ));
    }
    Ok(out)
}

fn inspect(ctx: &Ctx, names: &[String], json: bool, probe: ProbeArgs) -> Result<Output, String> {
    let reports = sm::inspect_with(&ctx.dir, &ctx.probe(probe)).map_err(|e| message(&e))?;
    let mut out = Output::default();
    let mut missing = Vec::new();
    let shown: Vec<&sm::MarkerReport> = if names.is_empty() {
        reports.iter().collect()
    } else {
        names
            .iter()
            .filter_map(|n| {
                let r = reports.iter().find(|r| &r.name == n);
                if r.is_none() {
                    missing.push(n);
                }
                r
            })
            .collect()
    };
    if json {
        out.stdout = json_line(&shown)?;
    } else {
        out.stdout = render::reports_table(shown.iter().copied(), render::colour_wanted());
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if let Some(w) = ctx.untrusted_warning() {
            out.note(w);
        }
        if names.is_empty() && reports.is_empty() && !json {
            out.note(format!("no markers in {}", ctx.run_shown()));
        }
    }
    for n in &missing {
        out.note(format!(
            "no entry \"{}\" in {}",
            text::escape(n),
            ctx.run_shown()
        ));
    }
    out.code = if missing.is_empty() {
        EXIT_OK
    } else {
        EXIT_NOT_FOUND
    };
    Ok(out)
}

fn gc(ctx: &Ctx, json: bool) -> Result<Output, String> {
    let opts = ScanOptions {
        probe: None,
        collect: true,
    };
    let report = sm::scan(&ctx.dir, &opts).map_err(|e| message(&e))?;
    if let Some(w) = &report.untrusted {
        // What gc_stale refuses with untrusted_directory; the scan removed
        // nothing.
        return Err(format!(
            "refusing to collect stale markers: {}",
            text::escape(w)
        ));
    }
    let mut out = Output::default();
    if json {
        out.stdout = json_line(&report.collected)?;
    } else {
        for id in &report.collected {
            out.stdout
                .push_str(&format!("removed {}\n", text::escape(id)));
        }
    }
    if ctx.missing() {
        out.note(ctx.missing_warning());
    } else {
        if report.collected.is_empty() && !json {
            out.note(format!("no stale markers in {}", ctx.shown()));
        }
        scan_notes(&mut out, &report, false);
    }
    Ok(out)
}

fn json_line<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, String> {
    serde_json::to_string(value)
        .map(|s| s + "\n")
        .map_err(|e| format!("cannot serialize output: {e}"))
}
