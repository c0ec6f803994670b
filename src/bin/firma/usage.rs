//! Usage errors as one line: `firma: <what was wrong>; <hint> (see `firma
//! … --help`)`, exit 2, in place of clap's four to six lines of parser
//! output. `--help`, `--version` and a bare `firma` keep clap's output.
//!
//! The hint for the most common slip — a sidecar subcommand typed without
//! its noun (`firma status`) — names the full command; otherwise clap's own
//! tip (a similar name, `--` before a value starting with `-`) is kept.

use clap::CommandFactory;
use clap::error::{ContextKind, ContextValue, ErrorKind};

use crate::args::Cli;
use crate::output::EXIT_ERROR;

/// Parses the command line, or prints the one-line usage error and exits 2.
pub fn parse() -> Cli {
    match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(e) => match e.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => e.exit(),
            _ => {
                eprintln!("{}", one_line(&e));
                std::process::exit(EXIT_ERROR.into())
            }
        },
    }
}

/// The error as one line for a person.
pub fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    // The error is the first paragraph; a newline in it comes from a value
    // typed on the command line and is shown escaped, keeping one line.
    let first = text.split("\n\n").next().unwrap_or_default();
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut line = format!("firma: {}", first.trim_end().replace('\n', "\\n"));
    if let Some(hint) = noun_forgotten(e) {
        line.push_str(&format!("; did you mean `firma sidecar {hint}`?"));
    } else if let Some(tip) = text.lines().find_map(|l| l.trim().strip_prefix("tip: ")) {
        line.push_str("; ");
        line.push_str(tip);
    }
    if let Some(path) = command_path(&text) {
        line.push_str(&format!(" (see `{path} --help`)"));
    }
    line
}

/// `firma status`: the word is a subcommand of `firma sidecar`.
fn noun_forgotten(e: &clap::Error) -> Option<String> {
    if e.kind() != ErrorKind::InvalidSubcommand {
        return None;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return None;
    };
    let cli = Cli::command();
    let sidecar = cli.find_subcommand("sidecar")?;
    sidecar
        .get_subcommands()
        .any(|s| !s.is_hide_set() && s.get_name() == word)
        .then(|| word.clone())
}

/// `firma sidecar stop` from clap's `Usage: firma sidecar stop [OPTIONS] …`.
fn command_path(text: &str) -> Option<String> {
    let usage = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Usage: "))?;
    let words: Vec<&str> = usage
        .split_whitespace()
        .take_while(|w| !w.starts_with(['[', '<', '-']))
        .collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(args: &[&str]) -> String {
        let e = <Cli as clap::Parser>::try_parse_from(args).unwrap_err();
        one_line(&e)
    }

    /// Each usage error is one line naming what was wrong, with its hint.
    #[test]
    fn usage_errors_are_one_line_with_a_hint() {
        let cases: [(&[&str], &[&str]); 4] = [
            (
                &["firma", "status"],
                &["did you mean `firma sidecar status`?"],
            ),
            (
                &["firma", "sidecar", "stop", "--frob", "x"],
                &["'--frob'", "(see `firma sidecar stop --help`)"],
            ),
            (
                &["firma", "sidecar", "stop", "--signal", "TERN", "x"],
                &["TERN"],
            ),
            (
                &["firma", "sidecar", "stop", "--signal=TERM\n", "x"],
                &["'TERM\\n'", "\"TERM\\n\" is not a signal"],
            ),
        ];
        for (args, wants) in cases {
            let line = error_of(args);
            assert!(line.starts_with("firma: "), "{line}");
            assert!(!line.contains('\n'), "{line}");
            for want in wants {
                assert!(line.contains(want), "{args:?}: {want} not in {line}");
            }
        }
    }
}
