//! The exporter's HTTP side: binding (TCP or a Unix socket), the routes,
//! content negotiation and gzip.

use std::io::Write as _;
use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use firma_stack::sidecar_markers::metrics::{Exporter, Format};
use tiny_http::{Header, Method, Request, Response, Server};

fn is_unix_path(listen: &str) -> bool {
    listen.contains('/')
}

/// Listens on `listen`: `IP:PORT`, or a Unix socket path. A socket left at
/// the path by an earlier run is replaced; any other file there is refused.
pub fn bind(listen: &str) -> Result<Server, String> {
    let fail = |e: &dyn std::fmt::Display| format!("cannot listen on {listen}: {e}");
    if is_unix_path(listen) {
        let path = Path::new(listen);
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(fail(&"a file that is not a socket is in the way"));
            }
            std::fs::remove_file(path).map_err(|e| fail(&e))?;
        }
        Server::http_unix(path).map_err(|e| fail(&e))
    } else {
        let addr: std::net::SocketAddr = listen
            .parse()
            .map_err(|_| fail(&"not IP:PORT nor a socket path"))?;
        Server::http(addr).map_err(|e| fail(&e))
    }
}

/// Removes the Unix socket on the way out.
pub fn unbind(listen: &str) {
    if is_unix_path(listen) {
        let _ = std::fs::remove_file(listen);
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers()
        .iter()
        .find(|h| h.field.as_str().as_str().eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str().to_string())
}

/// True when `Accept-Encoding` names gzip with a q above 0.
fn wants_gzip(accept_encoding: Option<&str>) -> bool {
    accept_encoding.is_some_and(|v| {
        v.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            parts.next().is_some_and(|c| c.eq_ignore_ascii_case("gzip"))
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        })
    })
}

fn h(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("a valid header")
}

/// 503: too many answers in flight.
pub fn overloaded(req: Request) {
    let _ = req.respond(Response::from_string("busy\n").with_status_code(503));
}

/// Answers one request; a client that went away is not an error.
pub fn respond(req: Request, ex: &Exporter) {
    let path = req.url().split('?').next().unwrap_or("").to_string();
    if !matches!(req.method(), Method::Get | Method::Head) {
        let _ = req.respond(Response::from_string("method not allowed\n").with_status_code(405));
        return;
    }
    let _ = match path.as_str() {
        "/metrics" => metrics(req, ex),
        "/healthz" => {
            let (code, body) = if ex.synced() {
                (200, "ok\n")
            } else {
                (503, "syncing\n")
            };
            req.respond(Response::from_string(body).with_status_code(code))
        }
        "/" => req.respond(
            Response::from_string(
                "firma sidecar exporter: /metrics (Prometheus text or OpenMetrics), /healthz\n",
            )
            .with_header(h("Content-Type", "text/plain; charset=utf-8")),
        ),
        _ => req.respond(Response::from_string("not found\n").with_status_code(404)),
    };
}

fn metrics(req: Request, ex: &Exporter) -> std::io::Result<()> {
    let format = Format::negotiate(header(&req, "Accept").as_deref());
    let gzip = wants_gzip(header(&req, "Accept-Encoding").as_deref());
    let body = ex.render(format);
    let mut resp_headers = vec![h("Content-Type", format.content_type())];
    let bytes = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(body.as_bytes())?;
        resp_headers.push(h("Content-Encoding", "gzip"));
        enc.finish()?
    } else {
        body.into_bytes()
    };
    let mut resp = Response::from_data(bytes);
    for hd in resp_headers {
        resp.add_header(hd);
    }
    req.respond(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_only_when_asked() {
        assert!(wants_gzip(Some("gzip")));
        assert!(wants_gzip(Some("deflate, GZIP;q=0.5")));
        assert!(!wants_gzip(Some("gzip;q=0")));
        assert!(!wants_gzip(Some("identity")));
        assert!(!wants_gzip(None));
    }
}
