//! `firma_render_metrics`: one scan rendered as Prometheus metrics by the
//! core's one encoder (docs/design.md, "Metrics").

use std::ffi::c_char;

use super::options::{MS_OR_NULL, millis_unless_null, options_object, parse_options, unless_null};
use super::{FfiError, arg_opt_str, arg_runtime_dir, boundary};
use crate::sidecar_markers::metrics::{Format, MetricsOptions, render_metrics};

/// The options object of `firma_render_metrics`, read into the core's
/// options (which start as the defaults) and the format.
#[derive(Default)]
struct MetricsOptionsJson(MetricsOptions, Format);

options_object!(MetricsOptionsJson {
    "format": "\"text\" or \"openmetrics\"" => |o, v| o.1 = format_named::<A::Error>(v, o.1)?;
    "timeout_ms": MS_OR_NULL => |o, v| millis_unless_null(&mut o.0.probe.timeout, v);
    "collect": "true, false or null" => |o, v| unless_null(&mut o.0.collect, v);
});

/// The format `name` names (`null`: `default`), or an error saying what it
/// must be.
fn format_named<E: serde::de::Error>(name: Option<String>, default: Format) -> Result<Format, E> {
    let Some(name) = name else {
        return Ok(default);
    };
    Format::from_name(&name).ok_or_else(|| {
        E::custom(format!(
            "\"format\" must be \"text\" or \"openmetrics\", not {}",
            serde_json::Value::String(name)
        ))
    })
}

fn metrics_options(json: Option<&str>) -> Result<(MetricsOptions, Format), FfiError> {
    parse_options(json, "options_json").map(|MetricsOptionsJson(o, f)| (o, f))
}

/// Scans `runtime_dir` (NULL: the default runtime directory) once and
/// renders its sidecars as Prometheus metrics, as `firma sidecar metrics`
/// does: the same families, escaping and values on every surface.
/// `options_json` is NULL (all defaults) or a JSON object with any of
/// `"format"` (`"text"`, the text format 0.0.4, the default; or
/// `"openmetrics"`, OpenMetrics 1.0.0 ending `# EOF`), `"timeout_ms"`
/// (probe timeout, default 200) and `"collect"` (default true: stale markers
/// are collected as `firma_sidecar_list` does and counted; false: read-only,
/// their sidecars shown `stopped`); `null` is the default. An unknown key, a
/// key given twice, a value of the wrong type or out of range is
/// `FIRMA_INVALID_ARGUMENT`, naming the key.
///
/// On `FIRMA_OK`, `*out_text` is the exposition text itself (not JSON), to
/// serve as is (`Content-Type: text/plain; version=0.0.4` or
/// `application/openmetrics-text; version=1.0.0`). A missing or unreadable
/// runtime directory is not an error: its metrics say
/// `firma_runtime_dir_up 0`. On any other status `*out_text` is an error
/// object `{"code","message","path","errno"}`. Either way free it with
/// `firma_string_free`. A NULL `out_text` gives `FIRMA_INVALID_ARGUMENT`
/// and nothing is written.
///
/// # Safety
/// `runtime_dir` and `options_json` are NULL or NUL-terminated strings;
/// `out_text` is NULL or writable. Thread-safe.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn firma_render_metrics(
    runtime_dir: *const c_char,
    options_json: *const c_char,
    out_text: *mut *mut c_char,
) -> i32 {
    boundary(out_text, || {
        // SAFETY: forwarded contract.
        let dir = unsafe { arg_runtime_dir(runtime_dir) }?;
        // SAFETY: forwarded contract.
        let json = unsafe { arg_opt_str(options_json, "options_json") }?;
        let (opts, format) = metrics_options(json)?;
        Ok(render_metrics(dir, &opts, format)?)
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::sidecar_markers::ErrorCode;

    #[test]
    fn the_options_object_sets_format_timeout_and_collection() {
        let (o, f) = metrics_options(Some(
            r#"{"format":"openmetrics","timeout_ms":7,"collect":false}"#,
        ))
        .ok()
        .expect("valid options");
        assert_eq!(f, Format::OpenMetrics);
        assert_eq!(o.probe.timeout, Duration::from_millis(7));
        assert!(!o.collect);
        let (o, f) = metrics_options(None).ok().expect("defaults");
        assert_eq!((o, f), (MetricsOptions::default(), Format::Text));
        for (json, want) in [
            (
                r#"{"format":"json"}"#,
                r#""format" must be "text" or "openmetrics""#,
            ),
            (
                r#"{"format":1}"#,
                r#""format" must be "text" or "openmetrics""#,
            ),
            (r#"{"formats":"text"}"#, r#"unknown key "formats""#),
            (r#"{"collect":true,"collect":true}"#, "duplicate key"),
        ] {
            let e = metrics_options(Some(json)).expect_err(json).0;
            assert_eq!(e.code, ErrorCode::InvalidArgument, "{json}");
            assert!(e.message.contains(want), "{json}: {}", e.message);
        }
    }
}
