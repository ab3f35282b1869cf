//! Parsers of flag values: each accepts the form its flag documents and refuses anything else
//! with a message that says the form expected (clap adds the flag and the value).

use std::path::PathBuf;
use std::time::Duration;

/// A duration such as `500ms`, `2s` or `5m`.
pub(super) fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 500ms, 2s or 5m)"))
}

/// A duration above zero: a timeout of zero would close every connection at once.
pub(super) fn positive_duration(s: &str) -> Result<Duration, String> {
    match duration(s)? {
        d if d.is_zero() => Err("expected a duration above zero, such as 10s".to_owned()),
        d => Ok(d),
    }
}

/// A registry as a URL (`https://docker.io`) or a host (`docker.io`, `localhost:5000`).
pub(super) fn registry_url(s: &str) -> Result<oci::Registry, String> {
    let host = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .unwrap_or(s);
    let host = host.trim_end_matches('/');
    let host = if host == "registry-1.docker.io" || host == "index.docker.io" {
        "docker.io"
    } else {
        host
    };
    host.parse()
        .map_err(|e| format!("{e} (expected a registry URL such as https://docker.io)"))
}

/// A registry as [`registry_url`] takes it, and whether it was given as `http://` (its upstream
/// speaks plain HTTP).
pub(super) fn upstream_url(s: &str) -> Result<(oci::Registry, bool), String> {
    Ok((registry_url(s)?, s.starts_with("http://")))
}

/// An http:// base URL such as `http://127.0.0.1:5000`.
pub(super) fn http_base_url(s: &str) -> Result<String, String> {
    match s.parse::<axum::http::Uri>() {
        Ok(u) if matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some() => {
            Ok(s.trim_end_matches('/').to_owned())
        }
        _ => Err("expected a URL such as http://127.0.0.1:5000".into()),
    }
}

/// An http:// URL without a path beyond `/`, such as `http://10.0.0.5:9090`.
pub(super) fn status_url(s: &str) -> Result<String, String> {
    let expected = "expected the node's metrics address as a URL, such as http://127.0.0.1:9090";
    match s.parse::<axum::http::Uri>() {
        Ok(u)
            if u.scheme_str() == Some("http")
                && u.host().is_some()
                && matches!(u.path(), "" | "/")
                && u.query().is_none() =>
        {
            Ok(s.trim_end_matches('/').to_owned())
        }
        Ok(u) if u.scheme_str() == Some("https") => Err(format!(
            "{expected} (the metrics address serves plain http)"
        )),
        Ok(u) if u.host().is_some() && !matches!(u.path(), "" | "/") => Err(format!(
            "{expected}, without a path: leave out '{}'",
            u.path()
        )),
        _ => Err(expected.to_owned()),
    }
}

pub(super) fn http_url(s: &str) -> Result<String, String> {
    match s.parse::<axum::http::Uri>() {
        Ok(u) if u.scheme_str() == Some("http") && u.host().is_some() => Ok(s.to_owned()),
        _ => Err("expected an http:// URL such as http://speil-bootstrap:5002/id".into()),
    }
}

pub(super) fn multiaddr(s: &str) -> Result<p2p::Multiaddr, String> {
    let addr: p2p::Multiaddr = s
        .parse()
        .map_err(|e| format!("{e} (expected a multiaddr such as /ip4/10.0.0.2/tcp/5001)"))?;
    if p2p::bootstrap::socket_addr(&addr).is_none() {
        return Err(
            "expected /ip4/<ip>/tcp/<port> or /ip6/<ip>/tcp/<port>, optionally with /p2p/<id>"
                .into(),
        );
    }
    Ok(addr)
}

/// The levels a filter directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// A log level, or comma-separated directives: each one a level or `target=level`. tracing's
/// own syntax also takes a bare word as a target at every level, so a mistyped level (`debgu`)
/// would silence every other line; here a bare word must be a level.
pub(super) fn log_filter(s: &str) -> Result<String, String> {
    let expected =
        "expected error, warn, info, debug or trace, or directives such as info,registry=debug";
    for directive in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = directive.rsplit_once('=').map_or(directive, |(_, l)| l);
        if !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(level)) {
            return Err(format!(
                "'{level}' in '{directive}' is not a log level ({expected})"
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e} ({expected})"))
}

/// An `IP:PORT` address. Host names are refused: a node binds and advertises addresses.
pub(super) fn socket_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse().map_err(|_| {
        let hint = if s.contains(':') && !s.starts_with('[') && s.matches(':').count() == 1 {
            " (a host name is not accepted: give an IP address)"
        } else {
            ""
        };
        format!("expected IP:PORT such as 0.0.0.0:5000 or [::]:5000{hint}")
    })
}

/// An OCI image-layout directory that exists and has its `oci-layout` file.
pub(super) fn oci_dir(s: &str) -> Result<PathBuf, String> {
    let dir = PathBuf::from(s);
    let layout = "an OCI image layout: a directory with oci-layout, index.json and blobs/, as `skopeo copy docker://… oci:DIR:…` writes";
    match std::fs::metadata(&dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(format!("no such directory (expected {layout})"))
        }
        Err(e) => Err(format!("cannot read it: {e}")),
        Ok(m) if !m.is_dir() => Err(format!("not a directory (expected {layout})")),
        Ok(_) if !dir.join("oci-layout").is_file() => Err(format!(
            "the directory has no oci-layout file (expected {layout})"
        )),
        Ok(_) => Ok(dir),
    }
}

/// The credentials in the file of `--basic-auth-file` (`speil run` and `speil configure` read it
/// alike), when given. A file that cannot be read or is not `user:password` is a bad value
/// naming the flag and the file, never its content.
pub(crate) fn basic_auth(file: Option<&std::path::Path>) -> anyhow::Result<Option<oci::BasicAuth>> {
    let Some(file) = file else { return Ok(None) };
    let refused = |why: String| {
        super::bad_value(anyhow::anyhow!(
            "--basic-auth-file {}: {why}",
            file.display()
        ))
    };
    let content = read_small(file, "a user:password file").map_err(refused)?;
    oci::BasicAuth::parse(&content)
        .map(Some)
        .map_err(|e| refused(e.to_string()))
}

/// Largest credentials or key file read: either is under 100 bytes in practice.
const MAX_SECRET_FILE: u64 = 4096;

/// The content of `file`, refused past [`MAX_SECRET_FILE`] bytes (it is not `what`), so a flag
/// pointed at the wrong file never reads it whole.
fn read_small(file: &std::path::Path, what: &str) -> Result<String, String> {
    let size = std::fs::metadata(file).map_err(|e| e.to_string())?.len();
    if size > MAX_SECRET_FILE {
        return Err(format!("{size} bytes: not {what}"));
    }
    std::fs::read_to_string(file).map_err(|e| e.to_string())
}

/// The private network's key in the file of `--p2p-psk-file`, when given. A file that cannot be
/// read or is not in the swarm.key format is a bad value naming the flag and the file, never its
/// content.
pub(crate) fn p2p_psk(file: Option<&std::path::Path>) -> anyhow::Result<Option<p2p::NetworkKey>> {
    let Some(file) = file else { return Ok(None) };
    let refused =
        |why: String| super::bad_value(anyhow::anyhow!("--p2p-psk-file {}: {why}", file.display()));
    let content =
        read_small(file, "a key file (a swarm.key file is under 100 bytes)").map_err(refused)?;
    content
        .parse()
        .map(Some)
        .map_err(|e: p2p::private_network::KeyError| refused(e.to_string()))
}
