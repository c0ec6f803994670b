//! What a command hands back to `main`: its stdout text, its stderr notes
//! and its exit status, and the one place they are written.

use std::io::Write;

use firma_stack::sidecar_markers::text;

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: a named sidecar or marker does not exist.
pub const EXIT_NOT_FOUND: u8 = 1;
/// Exit status: an error (or a usage error).
pub const EXIT_ERROR: u8 = 2;

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
    pub fn exit(code: u8) -> Output {
        Output {
            code,
            ..Output::default()
        }
    }

    /// A one-line error: exit 2, the line on stderr.
    pub fn error(msg: String) -> Output {
        Output {
            code: EXIT_ERROR,
            notes: vec![msg],
            ..Output::default()
        }
    }

    pub fn note(&mut self, line: impl Into<String>) {
        self.notes.push(line.into());
    }
}

/// Writes stdout (then flushes it), then the stderr lines; returns the exit
/// code (2 when stdout could not be written).
pub fn emit(out: Output) -> u8 {
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

/// `value` as one line of JSON: the exact serde serialization every surface
/// shares.
pub fn json_line<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, String> {
    serde_json::to_string(value)
        .map(|s| s + "\n")
        .map_err(|e| format!("cannot serialize output: {e}"))
}
