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

use crate::args::{Cli, Shell};

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn Write) {
    let mut cmd = without_hidden_subcommands(&Cli::command());
    clap_complete::generate(shell, &mut cmd, "firma", out);
}

/// The command with its hidden subcommands left out: clap_complete's
/// generators would otherwise offer them (they skip hidden arguments but
/// not hidden subcommands). Arguments and visible subcommands are copied as
/// they are, so a new option or subcommand is completed without a change
/// here.
fn without_hidden_subcommands(full: &clap::Command) -> clap::Command {
    let mut cmd = clap::Command::new("firma").version(env!("CARGO_PKG_VERSION"));
    if let Some(about) = full.get_about() {
        cmd = cmd.about(about.clone());
    }
    for arg in full.get_arguments() {
        cmd = cmd.arg(arg.clone());
    }
    for sub in full.get_subcommands().filter(|s| !s.is_hide_set()) {
        cmd = cmd.subcommand(sub.clone());
    }
    cmd
}

/// `firma completions SHELL`: the script on stdout; exit code 0.
pub fn completions(shell: Shell) -> Result<u8, String> {
    let mut buf = Vec::new();
    write_completions(shell, &mut buf);
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
    if top {
        roff.extend_from_slice(EXIT_STATUS.as_bytes());
    }
    pages.push(ManPage {
        file_name: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, false, pages)?;
    }
    Ok(())
}

const EXIT_STATUS: &str = ".SH \"EXIT STATUS\"\n\
.TP\n\\fB0\\fR\nSuccess.\n\
.TP\n\\fB1\\fR\n\\fBfirma sidecar get\\fR found no such sidecar.\n\
.TP\n\\fB2\\fR\nAny error, including a usage error; one line on standard error names what was wrong.\n\
.SH ENVIRONMENT\n\
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

    #[test]
    fn completions_name_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut buf = Vec::new();
            write_completions(shell, &mut buf);
            let script = String::from_utf8(buf).unwrap();
            for word in ["sidecar", "status", "gc", "runtime-dir", "completions"] {
                assert!(script.contains(word), "{shell}: {word} missing");
            }
            assert!(
                !script.contains("manpages"),
                "{shell} offers the hidden command"
            );
        }
    }
}
