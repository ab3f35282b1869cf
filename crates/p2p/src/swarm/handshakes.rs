//! Failed private network handshakes (`--p2p-psk-file`), logged by the log policy: the first
//! failure at an address is one WARN line with what to check, later ones at that address are
//! DEBUG, so a node retrying a misconfigured peer every round does not repeat itself. Dials are
//! remembered by address; incoming connections by IP, since their port is new each time. An
//! address that connects again is forgotten, so a key that breaks again is reported again.

use std::collections::HashSet;
use std::error::Error;

use libp2p::Multiaddr;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{DialError, ListenError};

use crate::private_network::failure_of;

/// Addresses remembered; past this, failures at new addresses are logged at DEBUG only, so a
/// stream of strangers cannot grow the set.
const MAX_WARNED: usize = 1024;

/// The addresses a handshake failure was reported for at WARN.
#[derive(Default)]
pub(super) struct Handshakes {
    warned: HashSet<Multiaddr>,
}

impl Handshakes {
    /// Whether a failure at `addr` is the first one to report at WARN.
    fn first(&mut self, addr: &Multiaddr) -> bool {
        if self.warned.contains(addr) || self.warned.len() >= MAX_WARNED {
            return false;
        }
        self.warned.insert(addr.clone())
    }

    /// A dial failed: reports the private network failures among its errors.
    pub(super) fn dial_failed(&mut self, error: &DialError) {
        let DialError::Transport(errors) = error else {
            return;
        };
        for (addr, e) in errors {
            let Some(failure) = failure_of(e as &(dyn Error + 'static)) else {
                continue;
            };
            let check = failure.what_to_check();
            if self.first(addr) {
                tracing::warn!(address = %addr, reason = %failure, "the handshake with {addr} failed: {check}");
            } else {
                tracing::debug!(address = %addr, reason = %failure, "the handshake failed again");
            }
        }
    }

    /// An incoming connection failed: a node that sent bytes this node's key cannot read is
    /// reported; nodes that connected and left are only DEBUG (probes, scanners).
    pub(super) fn incoming_failed(&mut self, from: &Multiaddr, error: &ListenError) {
        let ListenError::Transport(e) = error else {
            return;
        };
        let Some(failure) = failure_of(e as &(dyn Error + 'static)) else {
            return;
        };
        let ip = ip_of(from);
        if failure == crate::private_network::Failure::KeyMismatch && self.first(&ip) {
            tracing::warn!(address = %ip, reason = %failure, "a node at {ip} connected without this private network's key: is --p2p-psk-file the same key on every node?");
        } else {
            tracing::debug!(address = %from, reason = %failure, "incoming handshake failed");
        }
    }

    /// A connection to `addr` opened: a later failure there is news again.
    pub(super) fn connected(&mut self, addr: &Multiaddr, dialer: bool) {
        if !self.warned.is_empty() {
            let addr = if dialer { addr.clone() } else { ip_of(addr) };
            self.warned.remove(&addr);
        }
    }
}

/// `addr` without its port: the IP part alone.
fn ip_of(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .take_while(|p| matches!(p, Protocol::Ip4(_) | Protocol::Ip6(_)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_is_reported_once_until_it_connects() {
        let mut h = Handshakes::default();
        let a: Multiaddr = "/ip4/10.0.0.2/tcp/5001".parse().unwrap();
        let b: Multiaddr = "/ip4/10.0.0.3/tcp/5001".parse().unwrap();
        assert!(h.first(&a));
        assert!(!h.first(&a), "once per address");
        assert!(h.first(&b));
        h.connected(&a, true);
        assert!(h.first(&a), "reported again after a connection in between");
        assert_eq!(ip_of(&a).to_string(), "/ip4/10.0.0.2");
    }

    #[test]
    fn the_set_is_bounded() {
        let mut h = Handshakes::default();
        for i in 0..MAX_WARNED + 10 {
            let addr: Multiaddr = format!("/ip4/10.0.0.1/tcp/{i}").parse().unwrap();
            assert_eq!(h.first(&addr), i < MAX_WARNED);
        }
        assert_eq!(h.warned.len(), MAX_WARNED);
    }
}
