//! `firma sidecar metrics`: one observation of the runtime directory in the
//! Prometheus text format, on stdout or written atomically to a textfile
//! for node_exporter. The observing, rendering and writing are the
//! library's (`firma_stack::sidecar_markers::metrics`); this is only the
//! command's glue.

use std::path::Path;

use firma_stack::sidecar_markers::ProbeOptions;
use firma_stack::sidecar_markers::metrics::{observe, render, write_textfile};

/// `firma sidecar metrics`: returns the text for stdout (empty when written
/// to `textfile`), or a one-line error.
pub fn command(
    runtime_dir: &Path,
    probe: ProbeOptions,
    textfile: Option<&Path>,
    no_gc: bool,
) -> Result<String, String> {
    let obs = observe(runtime_dir, probe, !no_gc).map_err(|e| e.to_string())?;
    let body = render(&obs);
    match textfile {
        None => Ok(body),
        Some(path) => {
            write_textfile(path, body.as_bytes()).map_err(|e| e.to_string())?;
            Ok(String::new())
        }
    }
}
