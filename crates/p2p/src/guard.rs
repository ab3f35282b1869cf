//! The address guard: which addresses this node may reach a peer at, whatever a peer claims.
//!
//! Peers tell a node where other peers are (Kademlia's closer peers and provider records,
//! identify's listen addresses), and the node dials those addresses, and the mirror sends HTTP
//! requests to their IPs. A rogue peer could point the node anywhere: at the cloud metadata
//! service (169.254.169.254), at multicast or broadcast addresses, at `0.0.0.0`. The guard
//! refuses, always:
//! - unspecified addresses (`0.0.0.0`, `::`) and port 0,
//! - multicast, and the IPv4 broadcast address,
//! - link-local addresses (169.254.0.0/16, fe80::/10), which include the cloud metadata address,
//! - loopback addresses, unless this node is itself reached over loopback (several nodes on the
//!   127.0.0.N of one host, as in a demo or a test), or `--peer-cidrs` names them,
//!
//! and, with `--peer-cidrs`, every address outside those networks. IPv4-mapped IPv6 addresses
//! are judged as the IPv4 address they carry. Every refusal is counted by reason
//! (`speil_p2p_addresses_refused_total`) and logged at DEBUG.
//!
//! The router applies it where addresses come in (the address book keeps no refused address, so
//! no provider handed to the mirror carries one) and where they go out (the transport refuses to
//! dial one, whoever asked: a bootstrap round, Kademlia or a lookup).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

use crate::metrics::Metrics;

/// An IP network, `10.0.0.0/8` or `fd00::/8`; a bare address is a network of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` lies in this network (an IPv4-mapped IPv6 address as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (ip, prefix) = match s.split_once('/') {
            Some((ip, prefix)) => (ip, Some(prefix)),
            None => (s, None),
        };
        let addr: IpAddr = ip
            .parse()
            .map_err(|_| format!("{s:?} is not an IP network such as 10.0.0.0/8 or fd00::/8"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Why the guard refused an address; the `reason` label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `0.0.0.0`, `::` or port 0.
    #[error("an unspecified address or port")]
    Unspecified,
    /// A multicast address.
    #[error("a multicast address")]
    Multicast,
    /// The IPv4 broadcast address.
    #[error("the broadcast address")]
    Broadcast,
    /// 169.254.0.0/16 (with the cloud metadata address) or fe80::/10.
    #[error("a link-local address (169.254.0.0/16, fe80::/10)")]
    LinkLocal,
    /// A loopback address, while this node is not reached over loopback itself.
    #[error("a loopback address of a node not on loopback")]
    Loopback,
    /// Outside every network of `--peer-cidrs`.
    #[error("outside --peer-cidrs")]
    OutsidePeerCidrs,
}

impl Refusal {
    /// The metric label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::Unspecified => "unspecified",
            Refusal::Multicast => "multicast",
            Refusal::Broadcast => "broadcast",
            Refusal::LinkLocal => "link_local",
            Refusal::Loopback => "loopback",
            Refusal::OutsidePeerCidrs => "outside_peer_cidrs",
        }
    }

    /// Every reason, for zeroed metrics.
    pub(crate) const ALL: [Refusal; 6] = [
        Refusal::Unspecified,
        Refusal::Multicast,
        Refusal::Broadcast,
        Refusal::LinkLocal,
        Refusal::Loopback,
        Refusal::OutsidePeerCidrs,
    ];
}

/// The guard of one node: cheap to clone, shared by the transport and the address book.
#[derive(Clone)]
pub(crate) struct AddressGuard {
    peer_cidrs: Arc<[Cidr]>,
    allow_loopback: bool,
    metrics: Option<Metrics>,
}

impl AddressGuard {
    /// A guard narrowed to `peer_cidrs` (none: every address the fixed rules allow) for a node
    /// whose own addresses are `own`: loopback is allowed when one of them is loopback.
    pub(crate) fn new(peer_cidrs: &[Cidr], own: &[SocketAddr], metrics: Option<Metrics>) -> Self {
        AddressGuard {
            peer_cidrs: peer_cidrs.into(),
            allow_loopback: own.iter().any(|a| a.ip().is_loopback()),
            metrics,
        }
    }

    /// Whether a peer may be reached at `addr`; a refusal is counted and logged.
    pub(crate) fn check_socket(&self, addr: SocketAddr) -> Result<(), Refusal> {
        let verdict = if addr.port() == 0 {
            Err(Refusal::Unspecified)
        } else {
            self.judge(addr.ip())
        };
        if let Err(reason) = verdict {
            tracing::debug!(address = %addr, %reason, "refused a peer address");
            if let Some(m) = &self.metrics {
                m.address_refused(reason.as_str());
            }
        }
        verdict
    }

    /// [`check_socket`](Self::check_socket) for a multiaddr. An address without an IP and TCP
    /// port (a DNS name, another transport) passes: the transport cannot dial it anyway.
    pub(crate) fn check(&self, addr: &Multiaddr) -> Result<(), Refusal> {
        let mut it = addr.iter();
        let ip = match it.next() {
            Some(Protocol::Ip4(v4)) => IpAddr::V4(v4),
            Some(Protocol::Ip6(v6)) => IpAddr::V6(v6),
            _ => return Ok(()),
        };
        let port = match it.next() {
            Some(Protocol::Tcp(port)) => port,
            _ => return Ok(()),
        };
        self.check_socket(SocketAddr::new(ip, port))
    }

    /// The verdict on `ip`, without counting it.
    fn judge(&self, ip: IpAddr) -> Result<(), Refusal> {
        let ip = ip.to_canonical();
        if ip.is_unspecified() {
            return Err(Refusal::Unspecified);
        }
        if ip.is_multicast() {
            return Err(Refusal::Multicast);
        }
        match ip {
            IpAddr::V4(v4) if v4.is_broadcast() => return Err(Refusal::Broadcast),
            IpAddr::V4(v4) if v4.is_link_local() => return Err(Refusal::LinkLocal),
            IpAddr::V6(v6) if v6.is_unicast_link_local() => return Err(Refusal::LinkLocal),
            _ => {}
        }
        let named = self.peer_cidrs.iter().any(|c| c.contains(ip));
        if ip.is_loopback() && !self.allow_loopback && !named {
            return Err(Refusal::Loopback);
        }
        if !self.peer_cidrs.is_empty() && !named {
            return Err(Refusal::OutsidePeerCidrs);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(cidrs: &[&str], own: &str) -> AddressGuard {
        let cidrs: Vec<Cidr> = cidrs.iter().map(|c| c.parse().unwrap()).collect();
        AddressGuard::new(&cidrs, &[own.parse().unwrap()], None)
    }

    fn verdict(g: &AddressGuard, addr: &str) -> Result<(), Refusal> {
        g.check_socket(addr.parse().unwrap())
    }

    #[test]
    fn the_fixed_rules_refuse_whatever_a_peer_claims() {
        let g = guard(&[], "10.0.0.1:5001");
        assert_eq!(verdict(&g, "10.0.0.2:5001"), Ok(()));
        assert_eq!(verdict(&g, "[fd00::2]:5001"), Ok(()));
        assert_eq!(verdict(&g, "0.0.0.0:5001"), Err(Refusal::Unspecified));
        assert_eq!(verdict(&g, "[::]:5001"), Err(Refusal::Unspecified));
        assert_eq!(verdict(&g, "10.0.0.2:0"), Err(Refusal::Unspecified));
        assert_eq!(verdict(&g, "224.0.0.1:5001"), Err(Refusal::Multicast));
        assert_eq!(verdict(&g, "[ff02::1]:5001"), Err(Refusal::Multicast));
        assert_eq!(verdict(&g, "255.255.255.255:5001"), Err(Refusal::Broadcast));
        assert_eq!(verdict(&g, "169.254.169.254:80"), Err(Refusal::LinkLocal));
        assert_eq!(verdict(&g, "[fe80::1]:5001"), Err(Refusal::LinkLocal));
        // The metadata address hidden in an IPv4-mapped IPv6 address.
        assert_eq!(
            verdict(&g, "[::ffff:169.254.169.254]:80"),
            Err(Refusal::LinkLocal)
        );
        assert_eq!(verdict(&g, "127.0.0.1:5001"), Err(Refusal::Loopback));
        assert_eq!(verdict(&g, "[::1]:5001"), Err(Refusal::Loopback));
    }

    #[test]
    fn loopback_is_allowed_to_a_node_on_loopback_or_when_named() {
        assert_eq!(
            verdict(&guard(&[], "127.0.0.1:5001"), "127.0.0.2:5001"),
            Ok(())
        );
        let named = guard(&["127.0.0.0/8"], "0.0.0.0:5001");
        assert_eq!(verdict(&named, "127.0.0.2:5001"), Ok(()));
        // Still never link-local, even when a network names it.
        let wide = guard(&["0.0.0.0/0"], "10.0.0.1:5001");
        assert_eq!(verdict(&wide, "169.254.1.1:5001"), Err(Refusal::LinkLocal));
    }

    #[test]
    fn peer_cidrs_narrow_the_addresses_further() {
        let g = guard(&["10.0.0.0/16", "fd00::/8"], "10.0.0.1:5001");
        assert_eq!(verdict(&g, "10.0.255.1:5001"), Ok(()));
        assert_eq!(verdict(&g, "10.1.0.1:5001"), Err(Refusal::OutsidePeerCidrs));
        assert_eq!(verdict(&g, "[fd12::1]:5001"), Ok(()));
        assert_eq!(
            verdict(&g, "[2001:db8::1]:5001"),
            Err(Refusal::OutsidePeerCidrs)
        );
        assert_eq!(verdict(&g, "[::ffff:10.0.0.9]:5001"), Ok(()));
    }

    #[test]
    fn networks_parse_and_bad_ones_say_what_is_wrong() {
        let c: Cidr = "10.1.2.3".parse().unwrap();
        assert_eq!(c.to_string(), "10.1.2.3/32");
        assert!(c.contains("10.1.2.3".parse().unwrap()));
        assert!(!c.contains("10.1.2.4".parse().unwrap()));
        let all: Cidr = "::/0".parse().unwrap();
        assert!(all.contains("2001:db8::1".parse().unwrap()));
        assert!(!all.contains("10.0.0.1".parse().unwrap()));
        assert!(
            "10.0.0.0/33"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 32")
        );
        assert!(
            "fd00::/129"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("0 to 128")
        );
        assert!(
            "ten/8"
                .parse::<Cidr>()
                .unwrap_err()
                .contains("not an IP network")
        );
        assert!("10.0.0.0/x".parse::<Cidr>().is_err());
    }

    #[test]
    fn multiaddrs_without_an_ip_and_port_pass_to_the_transport() {
        let g = guard(&["10.0.0.0/8"], "10.0.0.1:5001");
        let dns: Multiaddr = "/dns4/example.com/tcp/5001".parse().unwrap();
        assert_eq!(g.check(&dns), Ok(()));
        let bad: Multiaddr =
            "/ip4/169.254.169.254/tcp/80/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN"
                .parse()
                .unwrap();
        assert_eq!(g.check(&bad), Err(Refusal::LinkLocal));
    }
}
