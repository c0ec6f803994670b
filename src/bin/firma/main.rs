//! `firma`: the operators' command line, `firma sidecar
//! status|get|inspect|gc|metrics|stop|watch` over the library's core. See
//! `firma --help`.
//!
//! Exit codes, for every subcommand:
//! - 0: success — also an empty runtime directory, or one that does not
//!   exist (a one-line warning on stderr says so);
//! - 1: `get` or `inspect` was given an id that has no marker (the ones
//!   found are still printed);
//! - 2: an error — one line on stderr naming what was wrong — or a usage
//!   error.
//!
//! (`stop` adds 3; see its module.) stdout carries only the data: a table,
//! the JSON, or ids. Notes, warnings and per-marker problems go to stderr,
//! one line each, starting `firma: `, after stdout has been written. Every
//! string that came from a marker is escaped for people (`text::escape`: a
//! newline in a field shows as `\n`, no escape sequence reaches the
//! terminal); `--json` output is the exact serde serialization every
//! surface shares.
//!
//! The modules, each using only those listed before it: [`args`] (what the
//! command line accepts), [`output`], [`signals`] and [`render`]; [`ctx`]
//! (the settings the subcommands share); the commands [`list`], [`stop`],
//! [`watch`], [`metrics`] and [`generate`] (completions and man pages); this file
//! dispatches to them.

// No `unsafe` in the command line: signals go through `nix`.
#![forbid(unsafe_code)]

mod args;
mod complete;
mod ctx;
mod exporter;
mod generate;
mod health;
mod list;
mod manual;
mod metrics;
mod output;
mod render;
mod run;
mod shape;
mod signals;
mod stop;
mod usage;
mod watch;

use firma_stack::sidecar_markers::{self as sm, text};

use crate::args::{Cli, Command, SidecarCommand};
use crate::ctx::{Ctx, untrusted_note};
use crate::output::Output;

fn main() -> std::process::ExitCode {
    // A shell asking for completion candidates is answered here.
    generate::answer();
    let cli = usage::parse();
    let out = execute(cli).unwrap_or_else(Output::error);
    std::process::ExitCode::from(output::emit(out))
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
        Command::Completions { shell } => generate::completions(shell).map(Output::exit),
        Command::Manpages { dir } => generate::manpages(&dir).map(Output::exit),
    }
}

fn sidecar(ctx: &Ctx, cmd: SidecarCommand) -> Result<Output, String> {
    match cmd {
        SidecarCommand::Status(args) => list::status(ctx, args),
        SidecarCommand::Get {
            sandbox_ids,
            json,
            select,
            shape,
            probe,
        } => list::get(ctx, &sandbox_ids, json, &select, &shape, probe),
        SidecarCommand::Inspect {
            names,
            json,
            select,
            reasons,
            shape,
            probe,
        } => {
            let filter = sm::Filter {
                reasons,
                ..select.filter()
            };
            list::inspect(ctx, &names, json, &filter, &shape, probe)
        }
        SidecarCommand::Gc { json } => list::gc(ctx, json),
        SidecarCommand::Check {
            sandbox_ids,
            quiet,
            probe,
        } => health::check(ctx, &sandbox_ids, quiet, probe),
        SidecarCommand::Wait(args) => health::wait(ctx, &args),
        SidecarCommand::Run(args) => run::run(ctx, &args).map(Output::exit),
        SidecarCommand::Watch(args) => {
            // Before the stream, which runs until a signal.
            if ctx.missing() {
                eprintln!("firma: {}", ctx.missing_warning());
            }
            if let Some(w) = ctx.untrusted_warning() {
                eprintln!("firma: {}", text::one_line(&w));
            }
            let code = watch::run(&ctx.dir, ctx.probe(args.probe), &args)?;
            Ok(Output::exit(code))
        }
        SidecarCommand::Stop(args) => {
            let (stdout, code) = stop::run(&ctx.dir, &args)?;
            Ok(Output {
                stdout,
                code,
                ..Output::default()
            })
        }
        SidecarCommand::Exporter(args) => {
            // Once, before serving, as `watch` does.
            if ctx.missing() {
                eprintln!("firma: {}", ctx.missing_warning());
            }
            if let Some(w) = ctx.untrusted_warning() {
                eprintln!("firma: {}", text::one_line(&w));
            }
            exporter::run(&ctx.dir, ctx.probe(args.probe), &args).map(Output::exit)
        }
        SidecarCommand::Metrics {
            textfile,
            no_gc,
            probe,
        } => {
            let done = metrics::command(&ctx.dir, ctx.probe(probe), textfile.as_deref(), no_gc)?;
            // The scan's own trust verdict, worded as `status` words it.
            let mut notes: Vec<String> = done.untrusted.iter().map(|w| untrusted_note(w)).collect();
            if ctx.missing() {
                notes.push(ctx.missing_warning());
            }
            Ok(Output {
                stdout: done.stdout,
                notes,
                ..Output::default()
            })
        }
    }
}
