//! What the rogue answers when a node asks it for providers (GET_PROVIDERS) or for the peers
//! closest to a key (FIND_NODE): peers that do not exist, at addresses the test chooses.
//!
//! A node reads Kademlia messages of at most 16 KiB ([`KAD_MAX_MESSAGE`]), about 340 providers
//! with one IPv4 address each, so a long list of providers is handed out in slices: each answer
//! carries the next providers that fit, and a lookup that asks several of the rogue's identities
//! (see `Rogue::open_connections`) receives them all. A test that wants the node to see one
//! oversized answer sets [`Answer::max_message`] above the limit.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use prost::Message as _;

use super::wire::{KAD_MAX_MESSAGE, KadMessage, KadPeer, kind};

/// A peer named in an answer: an id and the addresses the node is told it listens on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakePeer {
    /// Its peer id; [`fake_peers`] makes random ones, for which no key exists.
    pub id: PeerId,
    /// Where the node is told to reach it.
    pub addrs: Vec<Multiaddr>,
}

/// `n` peers with random ids, peer `i` at `addrs(i)`.
pub fn fake_peers(n: usize, addrs: impl Fn(usize) -> Vec<Multiaddr>) -> Vec<FakePeer> {
    (0..n)
        .map(|i| FakePeer {
            id: PeerId::random(),
            addrs: addrs(i),
        })
        .collect()
}

/// `/ip4/<ip>/tcp/<port>` or `/ip6/<ip>/tcp/<port>`.
pub fn tcp_addr(ip: IpAddr, port: u16) -> Multiaddr {
    Multiaddr::empty()
        .with(Protocol::from(ip))
        .with(Protocol::Tcp(port))
}

/// The rogue's answer to GET_PROVIDERS and FIND_NODE requests.
#[derive(Debug)]
pub struct Answer {
    /// The DHT key (see [`super::dht_key`]) this answer is for; any other key gets an empty
    /// answer. `None`: every key.
    pub key: Option<Vec<u8>>,
    /// Providers, handed out in slices that fit [`Answer::max_message`], one slice per answer,
    /// starting over after the last.
    pub providers: Vec<FakePeer>,
    /// Closer peers, sent whole in every answer (GET_PROVIDERS and FIND_NODE), before the
    /// providers take the room left.
    pub closer: Vec<FakePeer>,
    /// The largest message to send: [`KAD_MAX_MESSAGE`] by default.
    pub max_message: usize,
    /// The next provider to hand out.
    next: AtomicUsize,
}

impl Answer {
    /// `providers` for every key, no closer peers, messages the node reads.
    pub fn providers(providers: Vec<FakePeer>) -> Answer {
        Answer {
            key: None,
            providers,
            closer: Vec::new(),
            max_message: KAD_MAX_MESSAGE,
            next: AtomicUsize::new(0),
        }
    }

    /// Only for the DHT key `key`.
    pub fn for_key(mut self, key: Vec<u8>) -> Answer {
        self.key = Some(key);
        self
    }

    /// With `closer` as the closer peers.
    pub fn closer(mut self, closer: Vec<FakePeer>) -> Answer {
        self.closer = closer;
        self
    }

    /// Messages of up to `bytes`.
    pub fn max_message(mut self, bytes: usize) -> Answer {
        self.max_message = bytes;
        self
    }

    /// The response to a request of type `r#type` for `key`, and how many providers it names.
    pub(super) fn respond(&self, r#type: i32, key: &[u8]) -> (KadMessage, usize) {
        let mut msg = KadMessage {
            r#type,
            key: key.to_vec(),
            ..KadMessage::default()
        };
        if self.key.as_deref().is_some_and(|k| k != key) {
            return (msg, 0);
        }
        for p in &self.closer {
            let peer = KadPeer::new(&p.id, &p.addrs);
            if msg.encoded_len() + peer.framed_len() > self.max_message {
                break;
            }
            msg.closer_peers.push(peer);
        }
        if r#type == kind::GET_PROVIDERS {
            self.fill_providers(&mut msg);
        }
        let n = msg.provider_peers.len();
        (msg, n)
    }

    /// Adds the next providers that fit, and moves the start of the next slice past them.
    fn fill_providers(&self, msg: &mut KadMessage) {
        let total = self.providers.len();
        if total == 0 {
            return;
        }
        let start = self.next.load(Ordering::Relaxed) % total;
        let mut len = msg.encoded_len();
        for p in self.providers[start..]
            .iter()
            .chain(&self.providers[..start])
        {
            let peer = KadPeer::new(&p.id, &p.addrs);
            len += peer.framed_len();
            if len > self.max_message {
                break;
            }
            msg.provider_peers.push(peer);
        }
        self.next
            .store(start + msg.provider_peers.len(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link_local(i: usize) -> Vec<Multiaddr> {
        let ip = IpAddr::from([169, 254, (i / 256) as u8, (i % 256) as u8]);
        vec![tcp_addr(ip, 5001)]
    }

    #[test]
    fn providers_come_in_slices_that_fit_and_cover_all() {
        let answer = Answer::providers(fake_peers(1000, link_local));
        let mut seen = std::collections::HashSet::new();
        let mut answers = 0;
        while seen.len() < 1000 {
            let (msg, n) = answer.respond(kind::GET_PROVIDERS, b"key");
            assert!(msg.encoded_len() <= KAD_MAX_MESSAGE);
            assert!(n > 300, "{n} providers in one answer");
            seen.extend(msg.provider_peers.into_iter().map(|p| p.id));
            answers += 1;
        }
        assert_eq!(answers, 3, "about 340 providers per answer");
    }

    #[test]
    fn another_key_gets_nothing_and_find_node_no_providers() {
        let closer = fake_peers(3, link_local);
        let answer = Answer::providers(fake_peers(10, link_local))
            .for_key(b"mine".to_vec())
            .closer(closer);
        let (msg, n) = answer.respond(kind::GET_PROVIDERS, b"other");
        assert_eq!((n, msg.closer_peers.len()), (0, 0));
        let (msg, n) = answer.respond(kind::FIND_NODE, b"mine");
        assert_eq!((n, msg.closer_peers.len()), (0, 3));
        let (msg, n) = answer.respond(kind::GET_PROVIDERS, b"mine");
        assert_eq!((n, msg.closer_peers.len()), (10, 3));
    }
}
