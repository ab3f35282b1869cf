//! Where candidate nodes come from (`--bootstrap-kind`): the source as configured, its kind, and
//! why asking it can fail. Asking is done by `dns.rs`, `http.rs` and the controller.

use std::net::SocketAddr;

use libp2p::Multiaddr;

/// Where candidate nodes come from (`--bootstrap-kind`).
#[derive(Debug, Clone)]
pub enum Source {
    /// No other nodes: a standalone node (other nodes may still bootstrap to this one).
    None,
    /// The A and AAAA records of a name, such as a headless service; every address is dialed at
    /// this node's router port, and the peer id is learned from the connection.
    Dns(DnsSource),
    /// A URL serving another node's `/id` document.
    Http {
        /// The URL, such as `http://speil-bootstrap:5002/id`.
        url: String,
    },
    /// Fixed addresses, with or without `/p2p/<id>`.
    Static(Vec<Multiaddr>),
}

/// The kind of a [`Source`], as `--bootstrap-kind` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// `none`
    None,
    /// `dns`
    Dns,
    /// `http`
    Http,
    /// `static`
    Static,
}

impl SourceKind {
    /// The name of this kind, as in `--bootstrap-kind`, the status and log lines.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::None => "none",
            SourceKind::Dns => "dns",
            SourceKind::Http => "http",
            SourceKind::Static => "static",
        }
    }
}

impl std::fmt::Display for SourceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The DNS bootstrap source (`--dns-bootstrap-domain`, `--dns-bootstrap-nameserver`).
#[derive(Debug, Clone)]
pub struct DnsSource {
    /// The name whose records list the nodes.
    pub domain: String,
    /// The server to ask; the system resolver (`/etc/resolv.conf`) when `None`.
    pub nameserver: Option<SocketAddr>,
}

impl Source {
    /// The kind of this source.
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::None => SourceKind::None,
            Source::Dns(_) => SourceKind::Dns,
            Source::Http { .. } => SourceKind::Http,
            Source::Static(_) => SourceKind::Static,
        }
    }

    /// What this source asks, for the status and log lines: the DNS name and nameserver, the
    /// URL, or the static addresses.
    pub fn describe(&self) -> String {
        match self {
            Source::None => "nothing (--bootstrap-kind none)".to_owned(),
            Source::Dns(dns) => format!(
                "{} (nameserver: {})",
                dns.domain,
                dns.nameserver
                    .map_or_else(|| "system resolver".to_owned(), |n| n.to_string())
            ),
            Source::Http { url } => url.clone(),
            Source::Static(addrs) => addrs
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        }
    }
}

/// Why a discovery round found no candidates at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The DNS lookup failed (not "no such name": that is an empty answer).
    #[error("DNS lookup of {name} failed: {reason}")]
    Dns {
        /// The name looked up.
        name: String,
        /// Why.
        reason: String,
    },
    /// The HTTP bootstrap endpoint did not answer with an id document.
    #[error("HTTP bootstrap from {url} failed: {reason}")]
    Http {
        /// The URL asked.
        url: String,
        /// Why.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_descriptions_read_as_the_flags() {
        let dns = Source::Dns(DnsSource {
            domain: "speil.speil.svc".into(),
            nameserver: None,
        });
        assert_eq!(dns.kind(), SourceKind::Dns);
        assert_eq!(dns.kind().to_string(), "dns");
        assert_eq!(
            dns.describe(),
            "speil.speil.svc (nameserver: system resolver)"
        );
        assert_eq!(Source::None.kind().as_str(), "none");
        let url = Source::Http {
            url: "http://a:5002/id".into(),
        };
        assert_eq!(
            (url.kind().as_str(), url.describe().as_str()),
            ("http", "http://a:5002/id")
        );
        let fixed = Source::Static(vec!["/ip4/10.0.0.1/tcp/5001".parse().unwrap()]);
        assert_eq!(fixed.kind(), SourceKind::Static);
    }
}
