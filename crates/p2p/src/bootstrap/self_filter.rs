//! Recognising this node among candidates, before any dial.
//!
//! A node bound to a specific address is that address and nothing else: two nodes on one host
//! (127.0.0.1 and 127.0.0.2, like pods with their own IPs) are different nodes even though both
//! IPs sit on the loopback interface. A node bound to the unspecified address (`0.0.0.0`, `::`)
//! answers on every interface, so every interface address at its port is this node. A candidate
//! without a port is dialed at this node's port, so it is compared by IP. Advertised addresses
//! and the peer id are this node too, and so is any address a connection has shown to lead back
//! here (NAT, hairpin), remembered for the life of the process.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use libp2p::{Multiaddr, PeerId};

use crate::addr::socket_addr;
use crate::messages::Candidate;

/// What this node is, to drop itself from candidate lists.
#[derive(Debug, Clone)]
pub(crate) struct SelfFilter {
    peer: PeerId,
    own: HashSet<SocketAddr>,
    learned: HashSet<Multiaddr>,
}

impl SelfFilter {
    /// A filter for a node with `peer` id, bound to `listen`, reachable at `advertised`, on a
    /// host whose interfaces carry `interface_ips`.
    pub(crate) fn new(
        peer: PeerId,
        listen: SocketAddr,
        advertised: &[SocketAddr],
        interface_ips: &[IpAddr],
    ) -> SelfFilter {
        let mut f = SelfFilter {
            peer,
            own: HashSet::new(),
            learned: HashSet::new(),
        };
        f.set_own(listen, advertised, interface_ips);
        f
    }

    /// Recomputes this node's addresses, keeping what was learned from connections.
    pub(crate) fn set_own(
        &mut self,
        listen: SocketAddr,
        advertised: &[SocketAddr],
        interface_ips: &[IpAddr],
    ) {
        self.own = advertised.iter().copied().collect();
        if listen.ip().is_unspecified() {
            self.own.extend(
                interface_ips
                    .iter()
                    .map(|ip| SocketAddr::new(*ip, listen.port())),
            );
        } else {
            self.own.insert(listen);
        }
    }

    /// The IP addresses of this host's interfaces.
    pub(crate) fn interface_ips() -> Vec<IpAddr> {
        if_addrs::get_if_addrs()
            .map(|ifs| ifs.into_iter().map(|i| i.ip()).collect())
            .unwrap_or_default()
    }

    /// Remembers that `addr` led back to this node.
    pub(crate) fn learn(&mut self, addr: Multiaddr) {
        self.learned.insert(addr);
    }

    /// Whether `candidate` is this node.
    pub(crate) fn is_self(&self, candidate: &Candidate) -> bool {
        if candidate.peer == Some(self.peer) || self.learned.contains(&candidate.addr) {
            return true;
        }
        match socket_addr(&candidate.addr) {
            Some(addr) => {
                // Unspecified or the same mapped address written as IPv4-in-IPv6.
                let canonical = SocketAddr::new(addr.ip().to_canonical(), addr.port());
                self.own.contains(&addr) || self.own.contains(&canonical)
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(s: &str) -> Candidate {
        Candidate::at(s.parse().unwrap())
    }

    #[test]
    fn a_node_bound_to_one_ip_is_that_ip_only() {
        let me = PeerId::random();
        let f = SelfFilter::new(
            me,
            "127.0.0.2:5001".parse().unwrap(),
            &[],
            &["127.0.0.1".parse().unwrap()],
        );
        assert!(f.is_self(&c("127.0.0.2:5001")));
        assert!(
            !f.is_self(&c("127.0.0.1:5001")),
            "another pod on the same host"
        );
        assert!(
            !f.is_self(&c("127.0.0.2:5002")),
            "another port is another process"
        );
        assert!(!f.is_self(&c("127.0.0.3:5001")));
    }

    #[test]
    fn a_node_bound_to_all_interfaces_is_every_interface_ip() {
        let me = PeerId::random();
        let ips: Vec<IpAddr> = ["10.1.2.3", "127.0.0.1", "fd00::5"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let f = SelfFilter::new(me, "0.0.0.0:5001".parse().unwrap(), &[], &ips);
        assert!(f.is_self(&c("10.1.2.3:5001")));
        assert!(f.is_self(&c("[fd00::5]:5001")));
        assert!(f.is_self(&c("[::ffff:10.1.2.3]:5001")));
        assert!(!f.is_self(&c("10.1.2.4:5001")));
        assert!(!f.is_self(&c("10.1.2.3:6001")));
    }

    #[test]
    fn advertised_addresses_peer_id_and_learned_addresses_are_self() {
        let me = PeerId::random();
        let mut f = SelfFilter::new(
            me,
            "0.0.0.0:5001".parse().unwrap(),
            &["192.0.2.7:31001".parse().unwrap()],
            &[],
        );
        assert!(f.is_self(&c("192.0.2.7:31001")));
        let by_id = Candidate {
            peer: Some(me),
            ..c("198.51.100.1:5001")
        };
        assert!(f.is_self(&by_id));
        let hairpin = c("203.0.113.9:5001");
        assert!(!f.is_self(&hairpin));
        f.learn(hairpin.addr.clone());
        assert!(f.is_self(&hairpin));
    }
}
