//! `firma-bench`: see the crate documentation (src/lib.rs) and
//! bench/README.md.

use std::process::ExitCode;

use clap::Parser;
use firma_bench::cli::{Cli, Cmd};
use firma_bench::{fleet, run, worker};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Fleet { dir, n } => fleet::serve(&dir, n),
        Cmd::Worker => worker::serve_rust(),
        Cmd::Run(args) => run::main(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("firma-bench: {msg}");
            ExitCode::FAILURE
        }
    }
}
