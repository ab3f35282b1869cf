//! Where peers can be reached. Kademlia and identify tell the swarm task many addresses; lookups
//! need a provider's address before they can hand it out, bootstrap rounds need to know whether
//! a candidate's address belongs to a peer already connected, and the status lists every peer's
//! addresses. This book keeps them, bounded (per peer, the newest), never one the address guard
//! refuses, and remembers the remote address of every open connection (identify's loopback rule
//! depends on it).

use std::collections::HashMap;

use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::addr::{is_loopback, socket_addr, without_peer_id};
use crate::guard::AddressGuard;

/// Most peers whose addresses are remembered.
const ADDRESS_BOOK_MAX: usize = 10_000;
/// Most addresses remembered per peer: a node has one or two (IPv4, IPv6), a few more behind
/// NAT; a peer that announces thousands keeps its newest.
pub(super) const ADDRESSES_PER_PEER: usize = 8;

/// Peers' addresses and open connections' remote addresses.
pub(super) struct AddressBook {
    peers: HashMap<PeerId, Vec<Multiaddr>>,
    /// The remote address of every open connection.
    connections: HashMap<ConnectionId, Multiaddr>,
    guard: AddressGuard,
}

impl AddressBook {
    /// An empty book that keeps no address `guard` refuses.
    pub(super) fn new(guard: AddressGuard) -> Self {
        AddressBook {
            peers: HashMap::new(),
            connections: HashMap::new(),
            guard,
        }
    }

    /// Adds `addrs` (without `/p2p/`) that the guard allows to what is known of `peer`, the
    /// newest last; an address known already becomes the newest. Past [`ADDRESSES_PER_PEER`],
    /// the oldest are forgotten; returns them. When the book is full, a new peer takes the
    /// place of an arbitrary one.
    pub(super) fn remember(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
        let addrs: Vec<Multiaddr> = addrs
            .into_iter()
            .map(without_peer_id)
            .filter(|a| self.guard.check(a).is_ok())
            .collect();
        if addrs.is_empty() {
            return Vec::new();
        }
        if self.peers.len() >= ADDRESS_BOOK_MAX
            && !self.peers.contains_key(&peer)
            && let Some(k) = self.peers.keys().next().copied()
        {
            self.peers.remove(&k);
        }
        let entry = self.peers.entry(peer).or_default();
        for a in addrs {
            entry.retain(|known| *known != a);
            entry.push(a);
        }
        let over = entry.len().saturating_sub(ADDRESSES_PER_PEER);
        entry.drain(..over).collect()
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
    /// TCP addresses the guard allows, no loopback address unless the peer was reached over
    /// loopback, and no more than [`ADDRESSES_PER_PEER`] (the first it lists). A peer listening
    /// on all interfaces lists loopback addresses too; those lead back to the dialer itself
    /// unless the peer is reached over loopback (nodes on 127.0.0.N of one host, as in tests).
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
            .filter(|a| self.guard.check(a).is_ok())
            .take(ADDRESSES_PER_PEER)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A book of a node on loopback, as in tests.
    fn book() -> AddressBook {
        AddressBook::new(AddressGuard::new(
            &[],
            &["127.0.0.1:5001".parse().unwrap()],
            None,
        ))
    }

    fn addr(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn addresses_are_kept_once_and_without_peer_ids() {
        let mut book = book();
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
    fn a_peer_keeps_its_newest_addresses_and_never_a_refused_one() {
        let mut book = book();
        let p = PeerId::random();
        let many: Vec<Multiaddr> = (1..=20)
            .map(|i| addr(&format!("/ip4/10.0.1.{i}/tcp/5001")))
            .collect();
        assert_eq!(
            book.remember(p, many.clone()),
            many[..20 - ADDRESSES_PER_PEER]
        );
        assert_eq!(book.addrs(&p), &many[20 - ADDRESSES_PER_PEER..]);
        // Seen again, an old address becomes the newest; the oldest goes.
        book.remember(p, vec![many[12].clone()]);
        assert_eq!(book.addrs(&p).last(), Some(&many[12]));
        assert_eq!(book.addrs(&p).len(), ADDRESSES_PER_PEER);
        let q = PeerId::random();
        book.remember(
            q,
            vec![
                addr("/ip4/169.254.169.254/tcp/80"),
                addr("/ip4/0.0.0.0/tcp/5001"),
                addr("/ip4/224.0.0.1/tcp/5001"),
            ],
        );
        assert!(book.addrs(&q).is_empty());
    }

    #[test]
    fn the_book_is_bounded() {
        let mut book = book();
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
        let mut book = book();
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
        let mut book = book();
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
