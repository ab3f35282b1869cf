//! The streams a node opens to the rogue, answered as a Speil node would, so that the node keeps
//! the connection and puts the rogue in its routing table: identify (with Speil's protocol
//! version and the Kademlia protocol among the protocols), ping, and Kademlia, where the rogue
//! answers with the test's [`super::Answer`] (or with nothing) and counts what it was asked.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::Multiaddr;
use libp2p::core::muxing::SubstreamBox;
use libp2p::identity::Keypair;
use multistream_select::listener_select_proto;
use prost::Message as _;

use super::wire::{self, IDENTIFY_MAX_MESSAGE, Identify, KadMessage, kind};
use super::{IDENTIFY_PROTOCOL_VERSION, KAD_PROTOCOL, Shared};

/// Identify's stream protocol (the same for every libp2p network; Speil's own name is the
/// protocol version inside the message).
pub(super) const IDENTIFY: &str = "/ipfs/id/1.0.0";
/// Identify push: the sender announces its (new) information.
pub(super) const IDENTIFY_PUSH: &str = "/ipfs/id/push/1.0.0";
/// libp2p ping.
const PING: &str = "/ipfs/ping/1.0.0";
/// How long the node may take to agree on a protocol.
const NEGOTIATE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest request read (the node's own limit is 16 KiB).
const MAX_REQUEST: usize = 64 * 1024;

/// Serves one stream the node opened, until it ends or the rogue stops.
pub(super) async fn inbound(stream: SubstreamBox, shared: Arc<Shared>, key: Arc<Keypair>) {
    let token = shared.token.clone();
    let serving = async {
        let protocols = [KAD_PROTOCOL, IDENTIFY, IDENTIFY_PUSH, PING];
        let negotiate = listener_select_proto(stream, protocols);
        let Ok(Ok((protocol, mut stream))) =
            tokio::time::timeout(NEGOTIATE_TIMEOUT, negotiate).await
        else {
            return;
        };
        match protocol {
            KAD_PROTOCOL => kad(&mut stream, &shared).await,
            IDENTIFY => {
                shared
                    .counts
                    .identify_requests
                    .fetch_add(1, Ordering::Relaxed);
                let addrs = shared.listen_addrs.read().unwrap().clone();
                let msg = identify(&key, &addrs, IDENTIFY_MAX_MESSAGE);
                let _ = wire::write(&mut stream, &msg).await;
                let _ = stream.close().await;
            }
            IDENTIFY_PUSH => {
                let _ = wire::read::<_, Identify>(&mut stream, MAX_REQUEST).await;
            }
            _ => ping(&mut stream, &shared).await,
        }
    };
    tokio::select! {
        () = token.cancelled() => {}
        () = serving => {}
    }
}

/// Answers Kademlia requests on one stream until the node closes it.
async fn kad<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, shared: &Shared) {
    let c = &shared.counts;
    while let Ok(Some(request)) = wire::read::<_, KadMessage>(stream, MAX_REQUEST).await {
        let response = match request.r#type {
            kind::ADD_PROVIDER => {
                c.add_provider_received.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            t @ (kind::GET_PROVIDERS | kind::FIND_NODE) => {
                let counter = if t == kind::FIND_NODE {
                    &c.find_node_requests
                } else {
                    &c.get_providers_requests
                };
                counter.fetch_add(1, Ordering::Relaxed);
                let answer = shared.answer.read().unwrap().clone();
                match answer {
                    Some(answer) => {
                        let (msg, providers) = answer.respond(t, &request.key);
                        c.providers_sent
                            .fetch_add(providers as u64, Ordering::Relaxed);
                        msg
                    }
                    None => empty(&request),
                }
            }
            // PING, and the record requests Speil's DHT never makes.
            _ => empty(&request),
        };
        if wire::write(stream, &response).await.is_err() {
            return;
        }
    }
}

/// A response naming nobody.
fn empty(request: &KadMessage) -> KadMessage {
    KadMessage {
        r#type: request.r#type,
        key: request.key.clone(),
        ..KadMessage::default()
    }
}

/// Echoes ping payloads (32 bytes each) until the node closes the stream.
async fn ping<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, shared: &Shared) {
    let mut payload = [0u8; 32];
    while stream.read_exact(&mut payload).await.is_ok() {
        if stream.write_all(&payload).await.is_err() || stream.flush().await.is_err() {
            return;
        }
        shared.counts.pings.fetch_add(1, Ordering::Relaxed);
    }
}

/// The identify message of `key` listing as many of `addrs` as fit in `max` bytes.
pub(super) fn identify(key: &Keypair, addrs: &[Multiaddr], max: usize) -> Identify {
    let mut msg = Identify {
        protocol_version: Some(IDENTIFY_PROTOCOL_VERSION.to_owned()),
        agent_version: Some("speil-rogue/0".to_owned()),
        public_key: Some(key.public().encode_protobuf()),
        listen_addrs: Vec::new(),
        observed_addr: None,
        protocols: [KAD_PROTOCOL, IDENTIFY, IDENTIFY_PUSH, PING]
            .map(str::to_owned)
            .to_vec(),
    };
    fill_addrs(&mut msg, addrs, max);
    msg
}

/// Adds addresses from `addrs` to `msg` while it stays within `max` bytes; how many it took.
pub(super) fn fill_addrs(msg: &mut Identify, addrs: &[Multiaddr], max: usize) -> usize {
    let mut len = msg.encoded_len();
    for (i, a) in addrs.iter().enumerate() {
        let bytes = a.to_vec();
        len += 1 + prost::length_delimiter_len(bytes.len()) + bytes.len();
        if len > max {
            return i;
        }
        msg.listen_addrs.push(bytes);
    }
    addrs.len()
}
