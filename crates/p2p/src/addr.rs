//! TCP multiaddrs and socket addresses, converted both ways. The router only ever speaks TCP, so
//! every address it dials, learns or reports is `/ip4|ip6/…/tcp/…`; these helpers are the one
//! place that shape is read and written.

use std::net::{IpAddr, SocketAddr};

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;

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

/// Whether `addr` is a TCP address on a loopback IP.
pub(crate) fn is_loopback(addr: &Multiaddr) -> bool {
    socket_addr(addr).is_some_and(|s| s.ip().is_loopback())
}

/// `addr` without its `/p2p/<id>` parts.
pub(crate) fn without_peer_id(addr: Multiaddr) -> Multiaddr {
    addr.into_iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_addresses_and_multiaddrs_convert_both_ways() {
        let s: SocketAddr = "[::1]:5001".parse().unwrap();
        assert_eq!(tcp_multiaddr(s).to_string(), "/ip6/::1/tcp/5001");
        assert_eq!(socket_addr(&tcp_multiaddr(s)), Some(s));
        let id = libp2p::PeerId::random();
        let with_id: Multiaddr = format!("/ip4/10.0.0.1/tcp/5001/p2p/{id}").parse().unwrap();
        assert_eq!(
            socket_addr(&with_id),
            Some("10.0.0.1:5001".parse().unwrap())
        );
        assert_eq!(
            without_peer_id(with_id).to_string(),
            "/ip4/10.0.0.1/tcp/5001"
        );
        assert!(is_loopback(&"/ip4/127.0.0.2/tcp/1".parse().unwrap()));
        assert!(!is_loopback(&"/ip4/10.0.0.2/tcp/1".parse().unwrap()));
        assert_eq!(
            socket_addr(&"/dns4/example.com/tcp/1".parse().unwrap()),
            None
        );
    }
}
