//! Where a sidecar serves: the `listen` key of `metadata.toml` parsed into
//! an endpoint to probe (docs/design.md, "On-disk format").

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Where a sidecar serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Endpoint {
    /// `sidecar.sock` inside the marker directory (reached through the
    /// directory's descriptor, so path length never matters).
    MarkerSocket,
    /// An absolute Unix socket path from `listen`.
    Unix(PathBuf),
    /// A TCP address from `listen`.
    Tcp(SocketAddr),
}

/// Parses `listen`. Host names other than `localhost` are refused: resolving
/// them could block on DNS, and a probe must never block.
pub(crate) fn parse_listen(listen: Option<&str>) -> std::result::Result<Endpoint, String> {
    let s = match listen {
        None | Some("") => return Ok(Endpoint::MarkerSocket),
        Some(s) => s,
    };
    if s.starts_with('/') {
        if s.contains('\0') {
            return Err("listen path contains a NUL byte".into());
        }
        return Ok(Endpoint::Unix(PathBuf::from(s)));
    }
    if let Ok(addr) = s.parse::<SocketAddr>() {
        return Ok(Endpoint::Tcp(addr));
    }
    if let Some((host, port)) = s.rsplit_once(':') {
        if host.eq_ignore_ascii_case("localhost") {
            let port: u16 = port
                .parse()
                .map_err(|_| format!("listen {s:?}: port {port:?} is not a number 0-65535"))?;
            return Ok(Endpoint::Tcp(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                port,
            )));
        }
        if port.parse::<u16>().is_ok() {
            return Err(format!(
                "listen {s:?}: host must be an IP address or localhost (names are not resolved)"
            ));
        }
    }
    Err(format!(
        "listen {s:?} is neither an absolute Unix socket path nor host:port"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(parse_listen(None), Ok(Endpoint::MarkerSocket));
        assert_eq!(parse_listen(Some("")), Ok(Endpoint::MarkerSocket));
        assert_eq!(
            parse_listen(Some("/run/s.sock")),
            Ok(Endpoint::Unix(PathBuf::from("/run/s.sock")))
        );
        assert_eq!(
            parse_listen(Some("[::1]:80")),
            Ok(Endpoint::Tcp("[::1]:80".parse().unwrap()))
        );
        assert_eq!(
            parse_listen(Some("LocalHost:8080")),
            Ok(Endpoint::Tcp("127.0.0.1:8080".parse().unwrap()))
        );
        for (bad, why) in [
            ("/a\0b", "NUL"),
            ("example.com:80", "names are not resolved"),
            ("localhost:http", "not a number"),
            ("relative.sock", "neither"),
        ] {
            let e = parse_listen(Some(bad)).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }
}
