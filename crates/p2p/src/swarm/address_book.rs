//! Where peers can be reached. Kademlia and identify tell the swarm task many addresses; lookups
//! need a provider's address before they can hand it out, bootstrap rounds need to know whether
//! a candidate's address belongs to a peer already connected, and the status lists every peer's
//! addresses. This book keeps them, bounded, and remembers the remote address of every open
//! connection (identify's loopback rule depends on it).

use std::collections::HashMap;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::addr::{is_loopback, socket_addr, without_peer_id};

/// Most peers whose addresses are remembered.
const ADDRESS_BOOK_MAX: usize = 10_000;

/// Peers' addresses and open connections' remote addresses.
#[derive(Default)]
pub(super) struct AddressBook {
    peers: HashMap<PeerId, Vec<Multiaddr>>,
    /// The remote address of every open connection.
    connections: HashMap<ConnectionId, Multiaddr>,
}

impl AddressBook {
    /// Adds `addrs` (without `/p2p/`) to what is known of `peer`. When the book is full, a new
    /// peer takes the place of an arbitrary one.
    pub(super) fn remember(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.peers.len() >= ADDRESS_BOOK_MAX
            && !self.peers.contains_key(&peer)
            && let Some(k) = self.peers.keys().next().copied()
        {
            self.peers.remove(&k);
        }
        let entry = self.peers.entry(peer).or_default();
        for a in addrs {
            let a = without_peer_id(a);
            if !entry.contains(&a) {
                entry.push(a);
            }
        }
    }

    /// The known addresses of `peer`; empty when none.
    pub(super) fn addrs(&self, peer: &PeerId) -> &[Multiaddr] {
        self.peers.get(peer).map_or(&[], Vec::as_slice)
    }

    /// A peer for which `is_connected` holds that is known at `addr`, if any.
    pub(super) fn connected_at(
        &self,
        addr: &Multiaddr,
        is_connected: impl Fn(&PeerId) -> bool,
    ) -> Option<PeerId> {
        self.peers
            .iter()
            .find(|(p, addrs)| is_connected(p) && addrs.contains(addr))
            .map(|(p, _)| *p)
    }

    /// A connection opened to or from `remote`.
    pub(super) fn opened(&mut self, connection: ConnectionId, remote: Multiaddr) {
        self.connections.insert(connection, remote);
    }

    /// A connection closed.
    pub(super) fn closed(&mut self, connection: ConnectionId) {
        self.connections.remove(&connection);
    }

    /// Of the addresses a peer reported through identify on `connection`, those worth keeping:
    /// TCP addresses only, and no loopback address unless the peer was reached over loopback. A
    /// peer listening on all interfaces lists loopback addresses too; those lead back to the
    /// dialer itself unless the peer is reached over loopback (nodes on 127.0.0.N of one host,
    /// as in tests).
    pub(super) fn identified(
        &self,
        connection: ConnectionId,
        listen_addrs: Vec<Multiaddr>,
    ) -> Vec<Multiaddr> {
        let via_loopback = self.connections.get(&connection).is_some_and(is_loopback);
        listen_addrs
            .into_iter()
            .filter(|a| socket_addr(a).is_some())
            .filter(|a| via_loopback || !is_loopback(a))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_kept_once_and_without_peer_ids() {
        let mut book = AddressBook::default();
        let p = PeerId::random();
        assert!(book.addrs(&p).is_empty());
        book.remember(p, vec![addr(&format!("/ip4/10.0.0.1/tcp/5001/p2p/{p}"))]);
        book.remember(
            p,
            vec![
                addr("/ip4/10.0.0.1/tcp/5001"),
                addr("/ip4/10.0.0.2/tcp/5001"),
            ],
        );
        assert_eq!(
            book.addrs(&p),
            [
                addr("/ip4/10.0.0.1/tcp/5001"),
                addr("/ip4/10.0.0.2/tcp/5001")
            ]
        );
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = AddressBook::default();
        for _ in 0..ADDRESS_BOOK_MAX {
            book.remember(PeerId::random(), vec![addr("/ip4/10.0.0.1/tcp/1")]);
        }
        let last = PeerId::random();
        book.remember(last, vec![addr("/ip4/10.0.0.9/tcp/1")]);
        assert_eq!(book.peers.len(), ADDRESS_BOOK_MAX);
        assert_eq!(book.addrs(&last), [addr("/ip4/10.0.0.9/tcp/1")]);
    }

    #[test]
    fn a_candidate_address_finds_only_a_connected_peer() {
        let mut book = AddressBook::default();
        let (up, down) = (PeerId::random(), PeerId::random());
        book.remember(up, vec![addr("/ip4/10.0.0.1/tcp/5001")]);
        book.remember(down, vec![addr("/ip4/10.0.0.2/tcp/5001")]);
        let connected = |p: &PeerId| *p == up;
        assert_eq!(
            book.connected_at(&addr("/ip4/10.0.0.1/tcp/5001"), connected),
            Some(up)
        );
        assert_eq!(
            book.connected_at(&addr("/ip4/10.0.0.2/tcp/5001"), connected),
            None
        );
    }

    #[test]
    fn identified_loopback_addresses_are_kept_only_over_loopback() {
        let mut book = AddressBook::default();
        let (remote, local) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
        );
        book.opened(remote, addr("/ip4/10.0.0.1/tcp/5001"));
        book.opened(local, addr("/ip4/127.0.0.2/tcp/5001"));
        let reported = vec![
            addr("/ip4/127.0.0.1/tcp/5001"),
            addr("/ip4/10.0.0.1/tcp/5001"),
            addr("/ip4/10.0.0.1/udp/5001/quic-v1"),
        ];
        assert_eq!(
            book.identified(remote, reported.clone()),
            [addr("/ip4/10.0.0.1/tcp/5001")]
        );
        assert_eq!(book.identified(local, reported.clone())[..2], reported[..2]);
        book.closed(local);
        assert_eq!(book.identified(local, reported).len(), 1);
    }
}
