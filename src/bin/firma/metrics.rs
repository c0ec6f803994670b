//! `firma sidecar metrics`: one observation of the runtime directory in the
//! Prometheus text format, on stdout or written atomically to a textfile
//! for node_exporter. The scan, the model and the encoder are the
//! library's (`firma_stack::sidecar_markers::metrics`, the same encoder as
//! the exporter's); this is only the command's glue.

use std::path::Path;

use firma_stack::sidecar_markers::ProbeOptions;
use firma_stack::sidecar_markers::metrics::{Format, MetricsModel, MetricsOptions, write_textfile};

/// What the command prints: the text for stdout (empty when written to
/// `textfile`), and the warning of a runtime directory that fails the
/// trust checks, as `status` gives it.
pub struct Done {
    pub stdout: String,
    pub untrusted: Option<String>,
}

/// `firma sidecar metrics`, or a one-line error.
pub fn command(
    runtime_dir: &Path,
    probe: ProbeOptions,
    textfile: Option<&Path>,
    no_gc: bool,
) -> Result<Done, String> {
    let opts = MetricsOptions {
        probe,
        collect: !no_gc,
    };
    let model = MetricsModel::scan(runtime_dir, &opts).map_err(|e| e.to_string())?;
    let body = model.render(Format::Text);
    let stdout = match textfile {
        None => body,
        Some(path) => {
            write_textfile(path, body.as_bytes()).map_err(|e| e.to_string())?;
            String::new()
        }
    };
    Ok(Done {
        stdout,
        untrusted: model.untrusted,
    })
}
