//! Finding the other nodes: candidate sources (DNS, HTTP, static), the filter that drops every
//! candidate that is this node before it is dialed, and the bootstrap state a node reports.

mod controller;
mod dns;
pub mod http;
mod self_filter;
mod state;

use std::net::{IpAddr, SocketAddr};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};

pub(crate) use controller::Controller;
pub use dns::DnsSource;
pub(crate) use self_filter::SelfFilter;
pub use state::{Round, State};

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

impl Source {
    /// The name of this kind, as in `--bootstrap-kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Source::None => "none",
            Source::Dns(_) => "dns",
            Source::Http { .. } => "http",
            Source::Static(_) => "static",
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

/// A node that might be another Speil node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Its TCP address (without `/p2p/`).
    pub addr: Multiaddr,
    /// Its peer id when the source knows it; DNS candidates have none.
    pub peer: Option<PeerId>,
}

impl Candidate {
    /// A candidate at `ip:port` with no known peer id.
    pub fn at(addr: SocketAddr) -> Candidate {
        Candidate {
            addr: tcp_multiaddr(addr),
            peer: None,
        }
    }

    /// A candidate from a multiaddr that may end in `/p2p/<id>`.
    pub fn from_multiaddr(mut addr: Multiaddr) -> Candidate {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(id)) => {
                addr.pop();
                Some(id)
            }
            _ => None,
        };
        Candidate { addr, peer }
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

/// `/ip4/…/tcp/…` or `/ip6/…/tcp/…` for a socket address.
pub fn tcp_multiaddr(addr: SocketAddr) -> Multiaddr {
    let ip = match addr.ip() {
        IpAddr::V4(v4) => Protocol::Ip4(v4),
        IpAddr::V6(v6) => Protocol::Ip6(v6),
    };
    Multiaddr::empty().with(ip).with(Protocol::Tcp(addr.port()))
}

/// The socket address of a TCP multiaddr (ignoring any trailing `/p2p/`).
pub fn socket_addr(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut it = addr.iter();
    let ip = match it.next()? {
        Protocol::Ip4(v4) => IpAddr::V4(v4),
        Protocol::Ip6(v6) => IpAddr::V6(v6),
        _ => return None,
    };
    match it.next()? {
        Protocol::Tcp(port) => Some(SocketAddr::new(ip, port)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_from_multiaddrs() {
        let id = PeerId::random();
        let c =
            Candidate::from_multiaddr(format!("/ip4/10.0.0.1/tcp/5001/p2p/{id}").parse().unwrap());
        assert_eq!(c.peer, Some(id));
        assert_eq!(socket_addr(&c.addr), Some("10.0.0.1:5001".parse().unwrap()));
        let c = Candidate::at("[::1]:5001".parse().unwrap());
        assert_eq!(c.addr.to_string(), "/ip6/::1/tcp/5001");
        assert_eq!(c.peer, None);
    }
}
