//! The `firma` command line: `firma sidecar status|get|gc`.
//!
//! Exit codes: 0 success; 1 `get` found no such sidecar; 2 any error (one
//! line on stderr naming what was wrong). Usage errors also exit 2.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::sidecar_markers::{self as sm, ProbeOptions, SidecarEntry};

#[derive(Parser, Debug)]
#[command(
    name = "firma",
    version,
    about = "Inspect and clean up agent-sandbox sidecars"
)]
pub struct Cli {
    /// Runtime directory holding run/ (default: $FIRMA_STATE_DIR, else
    /// $XDG_RUNTIME_DIR/firma, else /tmp/firma-<uid>).
    #[arg(long, global = true, value_name = "DIR")]
    pub runtime_dir: Option<PathBuf>,
    /// How long a sidecar's endpoint may take to accept a connection.
    #[arg(long, global = true, value_name = "MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    pub timeout_ms: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Sidecar markers.
    #[command(subcommand)]
    Sidecar(SidecarCommand),
}

#[derive(Subcommand, Debug)]
pub enum SidecarCommand {
    /// List live sidecars (collecting stale markers on the way).
    Status {
        /// Print the JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one sidecar, whatever its state; exit 1 if there is none.
    Get {
        /// Sandbox id of the run.
        sandbox_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove the markers of sidecars that have stopped.
    Gc {
        #[arg(long)]
        json: bool,
    },
    /// Stream sidecars appearing, changing and going until SIGINT/SIGTERM.
    Watch(crate::cli_watch::WatchArgs),
}

/// Runs the command and returns the process exit code.
pub fn run(cli: Cli) -> u8 {
    match execute(cli) {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("firma: {msg}");
            2
        }
    }
}

fn execute(cli: Cli) -> Result<u8, String> {
    let dir = cli.runtime_dir.unwrap_or_else(sm::default_runtime_dir);
    let opts = ProbeOptions::with_timeout(Duration::from_millis(cli.timeout_ms));
    let mut out = String::new();
    let code = match cli.command {
        Command::Sidecar(SidecarCommand::Watch(args)) => {
            return crate::cli_watch::run(&dir, opts, &args);
        }
        Command::Sidecar(SidecarCommand::Status { json }) => {
            let entries = sm::list_with(&dir, &opts).map_err(|e| e.to_string())?;
            if json {
                out = json_line(&entries)?;
            } else if entries.is_empty() {
                out = format!("no live sidecars in {}\n", dir.display());
            } else {
                out = table(&entries);
            }
            0
        }
        Command::Sidecar(SidecarCommand::Get { sandbox_id, json }) => {
            let entry = sm::get_with(&dir, &sandbox_id, &opts).map_err(|e| e.to_string())?;
            match (&entry, json) {
                (_, true) => out = json_line(&entry)?,
                (Some(e), false) => out = table(std::slice::from_ref(e)),
                (None, false) => {
                    eprintln!("firma: no sidecar {sandbox_id:?} in {}", dir.display());
                }
            }
            if entry.is_some() { 0 } else { 1 }
        }
        Command::Sidecar(SidecarCommand::Gc { json }) => {
            let removed = sm::gc_stale(&dir).map_err(|e| e.to_string())?;
            if json {
                out = json_line(&removed)?;
            } else if removed.is_empty() {
                out = format!("no stale markers in {}\n", dir.display());
            } else {
                for id in &removed {
                    out.push_str(&format!("removed {id}\n"));
                }
            }
            0
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(out.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => Ok(code),
        // A closed pipe (`firma ... | head`) is not worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(code),
        Err(e) => Err(format!("cannot write output: {e}")),
    }
}

fn json_line<T: serde::Serialize>(value: &T) -> Result<String, String> {
    serde_json::to_string(value)
        .map(|s| s + "\n")
        .map_err(|e| format!("cannot serialize output: {e}"))
}

/// Human form of an uptime: `45s`, `12m 3s`, `2h 5m`, `3d 4h`.
pub fn human_uptime(secs: Option<u64>) -> String {
    let Some(s) = secs else { return "-".into() };
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

fn table(entries: &[SidecarEntry]) -> String {
    let header = [
        "SANDBOX", "AGENT", "SESSION", "STATE", "PID", "UPTIME", "LISTEN",
    ];
    let rows: Vec<[String; 7]> = entries
        .iter()
        .map(|e| {
            [
                e.sandbox_id.clone(),
                e.agent_id.clone(),
                e.session_id.clone(),
                e.state.to_string(),
                e.pid.to_string(),
                human_uptime(e.uptime_secs),
                e.listen.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                l.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::human_uptime;

    #[test]
    fn uptime_units() {
        assert_eq!(human_uptime(None), "-");
        assert_eq!(human_uptime(Some(45)), "45s");
        assert_eq!(human_uptime(Some(723)), "12m 3s");
        assert_eq!(human_uptime(Some(7500)), "2h 5m");
        assert_eq!(human_uptime(Some(3 * 86_400 + 4 * 3600 + 5)), "3d 4h");
    }
}
