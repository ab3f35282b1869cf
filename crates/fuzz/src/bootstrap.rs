//! Targets for what the bootstrap reads from other machines and from the key file: the HTTP
//! bootstrap document (`/id`), DNS answers turned into candidates, and the private network's
//! `swarm.key`.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use hickory_resolver::proto::op::Message;
use hickory_resolver::proto::rr::RData;
use libp2p::multiaddr::Protocol;
use libp2p::pnet::PreSharedKey;
use p2p::bootstrap::{self, Candidate, http::IdDocument};
use p2p::private_network::NetworkKey;

use crate::text;

/// `bootstrap::http::document_candidates`: a document that parses gives one candidate per
/// address, each with the document's peer id and an address without `/p2p/`; the document as
/// a node serves it (serialized again) gives the same candidates.
pub(crate) fn http_document(data: &[u8]) {
    let parsed = bootstrap::http::document_candidates(data);
    let doc = serde_json::from_slice::<IdDocument>(data);
    assert_eq!(parsed.is_ok(), doc.is_ok());
    let (Ok(candidates), Ok(doc)) = (parsed, doc) else {
        return;
    };
    assert_eq!(candidates.len(), doc.addrs.len());
    for (c, addr) in candidates.iter().zip(&doc.addrs) {
        assert_eq!(c.peer, Some(doc.id));
        assert!(
            !c.addr.iter().any(|p| matches!(p, Protocol::P2p(_))),
            "{addr} became {}",
            c.addr
        );
        assert!(addr.to_string().starts_with(&c.addr.to_string()));
    }
    let served = serde_json::to_vec(&doc).unwrap();
    assert_eq!(
        bootstrap::http::document_candidates(&served).unwrap(),
        candidates
    );
}

/// `bootstrap::candidates_at` over the A and AAAA records of a DNS message decoded by
/// hickory (the parser the resolver uses); the message's id is the port. Each address answered
/// becomes exactly one candidate, a TCP address at the port with no peer id, in order.
pub(crate) fn dns_answer(data: &[u8]) {
    let Ok(message) = Message::from_vec(data) else {
        return;
    };
    let port = message.metadata.id;
    let ips: Vec<IpAddr> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
            _ => None,
        })
        .collect();
    let candidates: Vec<Candidate> = bootstrap::candidates_at(ips.iter().copied(), port);
    let distinct: BTreeSet<IpAddr> = ips.iter().copied().collect();
    assert_eq!(candidates.len(), distinct.len());
    for (c, ip) in candidates.iter().zip(&distinct) {
        assert_eq!(c.peer, None);
        assert_eq!(
            bootstrap::socket_addr(&c.addr),
            Some(SocketAddr::new(*ip, port))
        );
        assert_eq!(c.addr, bootstrap::tcp_multiaddr(SocketAddr::new(*ip, port)));
    }
}

/// `NetworkKey::from_str` against libp2p's own `swarm.key` reader: a file Speil accepts holds
/// the key libp2p reads from its first three lines; a file libp2p accepts, with 64 hex digits
/// and nothing but empty lines after the key, Speil accepts too (keys made for go-libp2p or
/// IPFS work). libp2p itself also takes a `+` sign before a hex pair (it parses each pair as a
/// number) and panics on a multibyte character in the key line; Speil refuses both.
pub(crate) fn psk_file(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let ours = s.parse::<NetworkKey>();
    let lines: Vec<&str> = s.lines().map(str::trim_end).collect();
    if let Ok(key) = ours {
        let first_three = lines[..3].join("\n");
        let theirs = first_three
            .parse::<PreSharedKey>()
            .unwrap_or_else(|e| panic!("libp2p refuses {first_three:?}: {e}"));
        assert_eq!(theirs.to_string().parse::<NetworkKey>(), Ok(key));
        assert!(lines[3..].iter().all(|l| l.is_empty()));
    }
    // libp2p is only asked about a key line of hex digits: it slices the line by bytes and
    // panics on a multibyte character there (libp2p-pnet 0.27; Speil's reader refuses it).
    let hex = lines
        .get(2)
        .is_some_and(|l| l.bytes().all(|b| b.is_ascii_hexdigit()));
    let rest_empty = lines.iter().skip(3).all(|l| l.is_empty());
    if hex && rest_empty && s.parse::<PreSharedKey>().is_ok() {
        assert!(ours.is_ok(), "{s:?}: {ours:?}");
    }
}
