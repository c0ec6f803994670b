//! `firma`: the operators' command line. See `firma --help`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = firma_stack::cli::Cli::parse();
    std::process::ExitCode::from(firma_stack::cli::run(cli))
}
