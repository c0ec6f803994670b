//! Shell completions and man pages of the `firma` command line, generated
//! from its clap definition ([`crate::args::Cli`]) so they can never drift
//! from the options the command really takes.
//!
//! - `firma completions bash|zsh|fish|elvish|powershell` prints the script;
//! - `firma manpages DIR` (hidden; `make install` runs it) writes `firma.1`
//!   and one page per visible subcommand, named after its path
//!   (`firma-sidecar.1`, `firma-sidecar-status.1`, ...).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::env::Shells;

use crate::args::{Cli, Shell};
use crate::manual;

/// The environment variable that asks `firma` for completion candidates
/// ([`crate::complete`]): the registration script runs
/// `FIRMA_COMPLETE=SHELL firma -- WORDS…`, which [`answer`] handles before
/// anything else runs.
const VAR: &str = "FIRMA_COMPLETE";

/// Answers a completion request and exits, when the shell made one; a
/// normal run returns at once.
pub fn answer() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
        .var(VAR)
        .bin("firma")
        .completer("firma")
        .complete();
}

/// `firma completions SHELL`: the registration script for `shell`.
pub fn write_registration(shell: Shell, out: &mut dyn Write) -> Result<(), String> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let completer = shells
        .completer(&name)
        .ok_or_else(|| format!("no dynamic completion for {name}"))?;
    completer
        .write_registration(VAR, "firma", "firma", "firma", out)
        .map_err(|e| format!("cannot write the {name} completion: {e}"))
}

/// `firma completions SHELL`: the registration script on stdout (see
/// [`crate::complete`]); exit code 0.
pub fn completions(shell: Shell) -> Result<u8, String> {
    let mut buf = Vec::new();
    write_registration(shell, &mut buf)?;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(&buf).and_then(|()| stdout.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(format!("cannot write output: {e}")),
    }
}

/// One generated man page: its file name and roff source.
pub struct ManPage {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Every man page of `firma`: the top-level page first, then one per visible
/// subcommand, depth first. Help subcommands and hidden commands get none.
pub fn man_pages() -> Result<Vec<ManPage>, String> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, true, &mut pages)?;
    // SEE ALSO: every page names the others, so `man firma` leads to the
    // pages of the subcommands and back.
    let names: Vec<String> = pages
        .iter()
        .map(|p| p.file_name.trim_end_matches(".1").to_owned())
        .collect();
    for page in &mut pages {
        let own = page.file_name.trim_end_matches(".1");
        let others: Vec<String> = names
            .iter()
            .filter(|n| n.as_str() != own)
            .map(|n| format!("\\fB{}\\fR(1)", roff_escape(n)))
            .collect();
        if !others.is_empty() {
            page.roff.extend_from_slice(
                format!(".SH \"SEE ALSO\"\n{}\n", others.join(",\n")).as_bytes(),
            );
        }
    }
    Ok(pages)
}

fn collect(cmd: &clap::Command, top: bool, pages: &mut Vec<ManPage>) -> Result<(), String> {
    let name = cmd.get_display_name().unwrap_or_else(|| cmd.get_name());
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .source(format!("firma-stack {}", env!("CARGO_PKG_VERSION")))
        .manual("firma-stack manual");
    let mut roff = Vec::new();
    man.render(&mut roff)
        .map_err(|e| format!("cannot render the man page of {name}: {e}"))?;
    // `firma` itself, `firma sidecar` (every status), or one subcommand.
    let command = match name.strip_prefix("firma-sidecar-") {
        Some(sub) => Some(sub),
        None if top || name == "firma-sidecar" => None,
        None => Some(cmd.get_name()),
    };
    roff.extend_from_slice(extra_sections(command, top).as_bytes());
    pages.push(ManPage {
        file_name: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, false, pages)?;
    }
    Ok(())
}

/// EXIT STATUS, reference sections, EXAMPLES and (on `firma.1`)
/// ENVIRONMENT, from [`crate::manual`].
fn extra_sections(command: Option<&str>, top: bool) -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for e in manual::exit_codes(command) {
        roff.push_str(&format!(
            ".TP\n\\fB{}\\fR\n{}\n",
            e.code,
            roff_text(e.meaning)
        ));
    }
    for (title, rows) in manual::reference(command) {
        roff.push_str(&format!(".SH \"{title}\"\n"));
        for (term, text) in rows {
            roff.push_str(&format!(
                ".TP\n\\fB{}\\fR\n{}\n",
                roff_text(&term),
                roff_text(&text)
            ));
        }
    }
    if command == Some("stop") {
        roff.push_str(&format!(
            ".SH SIGNALS\nBy name, with or without SIG, any case, or by number: {}, SIGRTMIN+N, SIGRTMAX\\-N.\n",
            roff_text(&manual::signal_list())
        ));
    }
    let examples = manual::examples(command);
    if !examples.is_empty() {
        roff.push_str(".SH EXAMPLES\n");
        for (what, line) in examples {
            roff.push_str(&format!(
                ".PP\n{}\n.PP\n.RS 4\n\\fB{}\\fR\n.RE\n",
                roff_text(what),
                roff_text(line)
            ));
        }
    }
    if top {
        roff.push_str(ENVIRONMENT);
    }
    roff
}

/// Text for a roff line: backslashes and hyphens escaped, and a leading
/// `.` or `'` (a request) guarded.
fn roff_text(s: &str) -> String {
    let escaped = roff_escape(s);
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

const ENVIRONMENT: &str = ".SH ENVIRONMENT\n\
.TP\n\\fBFIRMA_STATE_DIR\\fR\nThe runtime directory when \\fB\\-\\-runtime\\-dir\\fR is not given.\n\
.TP\n\\fBXDG_RUNTIME_DIR\\fR\nWithout \\fBFIRMA_STATE_DIR\\fR, the runtime directory is \\fI$XDG_RUNTIME_DIR/firma\\fR, else \\fI/run/firma\\fR for root and \\fI/tmp/firma\\-<uid>\\fR for other users.\n";

fn roff_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('-', "\\-")
}

/// `firma manpages DIR`: writes every page into DIR (created if missing) and
/// prints each path written.
pub fn manpages(dir: &Path) -> Result<u8, String> {
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let mut written: Vec<PathBuf> = Vec::new();
    for page in man_pages()? {
        let path = dir.join(&page.file_name);
        fs::write(&path, &page.roff)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        written.push(path);
    }
    let mut stdout = std::io::stdout().lock();
    for path in &written {
        let _ = writeln!(stdout, "{}", path.display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_cover_every_visible_subcommand() {
        let pages = man_pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        assert_eq!(names[0], "firma.1");
        for want in [
            "firma-sidecar.1",
            "firma-sidecar-status.1",
            "firma-sidecar-get.1",
            "firma-sidecar-gc.1",
            "firma-completions.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(
            !names
                .iter()
                .any(|n| n.contains("manpages") || n.contains("help")),
            "hidden or help commands got a page: {names:?}"
        );
        let top = String::from_utf8(pages[0].roff.clone()).unwrap();
        assert!(top.contains(".TH FIRMA 1"), "{top}");
        assert!(top.contains("EXIT STATUS"), "{top}");
    }
}
