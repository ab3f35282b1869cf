//! A rogue peer for tests of how a Speil node holds up against a peer that speaks its protocols
//! but not its manners: it joins the node's DHT as a node would (TCP, libp2p's own pnet with the
//! test's key, noise, yamux; Kademlia under `/speil/kad/1.0.0`, identify with Speil's protocol
//! version, ping), and then
//! - publishes provider records for as many keys as the test asks, written straight onto one
//!   Kademlia stream ([`Rogue::publish_providers`]): 100,000 take seconds;
//! - answers the node's GET_PROVIDERS and FIND_NODE requests with peers that do not exist, at
//!   addresses the test chooses ([`Rogue::set_answer`], [`Answer`]);
//! - announces as many listen addresses as the test asks through identify
//!   ([`Rogue::announce_addresses`]);
//! - opens hundreds of connections, as many identities or as one, and holds them
//!   ([`Rogue::open_connections`]).
//!
//! The node's own dials cannot be seen from here; [`DialBack`] listens on addresses the test puts
//! in answers and counts the connections the node opens to each.
//!
//! There is no swarm: each connection is driven by a task of its own (`conn`), its streams
//! answered by `serve`, the messages encoded in `wire`. Everything runs on tasks of one tracker
//! and stops when the [`Rogue`] is dropped, which closes every connection.
//!
//! ```no_run
//! # async fn f(node: libp2p::Multiaddr) {
//! use test_support::rogue::{Answer, Rogue, fake_peers, tcp_addr};
//! let rogue = Rogue::start(test_support::rogue::Config { psk: Some([7; 32]), ..Default::default() });
//! rogue.connect(node).await.unwrap();
//! let keys = rogue.publish_providers(100_000).await.unwrap();
//! let ip = "169.254.169.254".parse().unwrap();
//! rogue.set_answer(Some(Answer::providers(fake_peers(1000, |_| vec![tcp_addr(ip, 80)]))));
//! # }
//! ```

mod answer;
mod conn;
mod dial_back;
mod serve;
mod wire;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures::{AsyncWriteExt as _, StreamExt as _};
use libp2p::core::muxing::SubstreamBox;
use libp2p::identity::Keypair;
use libp2p::pnet::PreSharedKey;
use sha2::{Digest as _, Sha256};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use answer::{Answer, FakePeer, fake_peers, tcp_addr};
pub use dial_back::DialBack;
/// The address and peer id types of the API, for tests that do not depend on libp2p.
pub use libp2p::{Multiaddr, PeerId};
pub use wire::{IDENTIFY_MAX_MESSAGE, KAD_MAX_MESSAGE};

use conn::Opener;
use wire::{Identify, KadMessage, KadPeer, kind};

/// Speil's Kademlia protocol name.
pub const KAD_PROTOCOL: &str = "/speil/kad/1.0.0";
/// Speil's identify protocol version.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/speil/id/1.0.0";
/// How many connections [`Rogue::open_connections`] opens at once.
const DIAL_CONCURRENCY: usize = 32;

/// The DHT key of a content key (a digest or `registry/repository:tag`), as Speil computes it:
/// the binary CIDv1 (raw codec, sha2-256) over the key's bytes.
pub fn dht_key(content_key: &str) -> Vec<u8> {
    let mut cid = vec![0x01, 0x55, 0x12, 0x20];
    cid.extend_from_slice(&Sha256::digest(content_key.as_bytes()));
    cid
}

/// The text of a `--p2p-psk-file` (the `swarm.key` format) holding `psk`.
pub fn swarm_key(psk: &[u8; 32]) -> String {
    format!("/key/swarm/psk/1.0.0/\n/base16/\n{}\n", hex::encode(psk))
}

/// How the rogue starts.
#[derive(Debug, Clone, Default)]
pub struct Config {
    /// The private network's 32-byte key (`--p2p-psk-file`'s third line, decoded); `None`: no
    /// private network.
    pub psk: Option<[u8; 32]>,
    /// The listen addresses identify announces (as many as fit in one identify message) and the
    /// provider records carry (the first). Empty: `/ip4/127.0.0.1/tcp/9`, where nobody listens.
    pub listen_addrs: Vec<Multiaddr>,
}

/// Whose identities [`Rogue::open_connections`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identities {
    /// A new identity per connection: each one a peer of its own to the node.
    Many,
    /// The rogue's own identity ([`Rogue::peer_id`]) on every connection.
    One,
}

/// What the rogue did and was asked so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Connections established (the node completed the handshake).
    pub established: u64,
    /// Connections that failed: refused, a handshake the node broke off, a timeout.
    pub failed: u64,
    /// Connections open now.
    pub open: u64,
    /// Established connections the node closed.
    pub closed_by_node: u64,
    /// Identify requests the node sent.
    pub identify_requests: u64,
    /// Pings the node sent and the rogue answered.
    pub pings: u64,
    /// FIND_NODE requests the node sent.
    pub find_node_requests: u64,
    /// GET_PROVIDERS requests the node sent.
    pub get_providers_requests: u64,
    /// Providers named in the answers to them.
    pub providers_sent: u64,
    /// ADD_PROVIDER messages the rogue wrote.
    pub add_provider_sent: u64,
    /// ADD_PROVIDER messages the node sent (its own records, when it publishes).
    pub add_provider_received: u64,
}

/// The counters, shared by the rogue's tasks.
#[derive(Default)]
struct Counts {
    established: AtomicU64,
    failed: AtomicU64,
    open: AtomicU64,
    closed_by_node: AtomicU64,
    identify_requests: AtomicU64,
    pings: AtomicU64,
    find_node_requests: AtomicU64,
    get_providers_requests: AtomicU64,
    providers_sent: AtomicU64,
    add_provider_sent: AtomicU64,
    add_provider_received: AtomicU64,
}

/// What every task of the rogue reads.
struct Shared {
    psk: Option<PreSharedKey>,
    listen_addrs: RwLock<Vec<Multiaddr>>,
    answer: RwLock<Option<Arc<Answer>>>,
    counts: Counts,
    /// The open connections.
    conns: Mutex<Vec<Opener>>,
    /// The node [`Rogue::connect`] reached, for [`Rogue::open_connections`].
    node: Mutex<Option<Multiaddr>>,
    token: CancellationToken,
    tasks: TaskTracker,
}

/// The rogue peer; dropping it closes its connections and ends its tasks.
pub struct Rogue {
    key: Arc<Keypair>,
    shared: Arc<Shared>,
}

/// The result of [`Rogue::open_connections`].
#[derive(Debug, Clone, Default)]
pub struct Opened {
    /// Connections the node accepted.
    pub established: usize,
    /// Connections that failed (refused, broken off by the node, timed out).
    pub failed: usize,
    /// Up to 5 reasons.
    pub errors: Vec<String>,
}

impl Rogue {
    /// A rogue with a new identity, not connected yet. Call within a tokio runtime.
    pub fn start(config: Config) -> Rogue {
        let listen = if config.listen_addrs.is_empty() {
            vec!["/ip4/127.0.0.1/tcp/9".parse().expect("a valid address")]
        } else {
            config.listen_addrs
        };
        let shared = Shared {
            psk: config.psk.map(PreSharedKey::new),
            listen_addrs: RwLock::new(listen),
            answer: RwLock::new(None),
            counts: Counts::default(),
            conns: Mutex::new(Vec::new()),
            node: Mutex::new(None),
            token: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        Rogue {
            key: Arc::new(Keypair::generate_ed25519()),
            shared: Arc::new(shared),
        }
    }

    /// The rogue's own peer id.
    pub fn peer_id(&self) -> PeerId {
        self.key.public().to_peer_id()
    }

    /// Connects to the node at `addr` (`/ip4/…/tcp/<router port>`) as the rogue's own identity;
    /// the node's peer id, or why it failed. Later [`Rogue::open_connections`] go there too.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, String> {
        *self.shared.node.lock().unwrap() = Some(addr.clone());
        conn::dial(&self.shared, self.key.clone(), addr).await
    }

    /// Opens `n` more connections to the node [`Rogue::connect`] reached (32 at a time) and
    /// keeps those the node accepts open, answering pings, until the rogue is dropped.
    pub async fn open_connections(&self, n: usize, identities: Identities) -> Opened {
        let addr = self.shared.node.lock().unwrap().clone();
        let addr = addr.expect("Rogue::connect first");
        let results: Vec<Result<PeerId, String>> = futures::stream::iter(0..n)
            .map(|_| {
                let key = match identities {
                    Identities::One => self.key.clone(),
                    Identities::Many => Arc::new(Keypair::generate_ed25519()),
                };
                conn::dial(&self.shared, key, addr.clone())
            })
            .buffer_unordered(DIAL_CONCURRENCY)
            .collect()
            .await;
        let mut opened = Opened::default();
        for r in results {
            match r {
                Ok(_) => opened.established += 1,
                Err(e) => {
                    opened.failed += 1;
                    if opened.errors.len() < 5 {
                        opened.errors.push(e);
                    }
                }
            }
        }
        opened
    }

    /// Answers GET_PROVIDERS and FIND_NODE requests from now on with `answer`; `None`: with no
    /// peers at all.
    pub fn set_answer(&self, answer: Option<Answer>) {
        *self.shared.answer.write().unwrap() = answer.map(Arc::new);
    }

    /// What the rogue did and was asked so far.
    pub fn counters(&self) -> Counters {
        let c = &self.shared.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counters {
            established: get(&c.established),
            failed: get(&c.failed),
            open: get(&c.open),
            closed_by_node: get(&c.closed_by_node),
            identify_requests: get(&c.identify_requests),
            pings: get(&c.pings),
            find_node_requests: get(&c.find_node_requests),
            get_providers_requests: get(&c.get_providers_requests),
            providers_sent: get(&c.providers_sent),
            add_provider_sent: get(&c.add_provider_sent),
            add_provider_received: get(&c.add_provider_received),
        }
    }

    /// A connection of the rogue's own identity.
    fn own_connection(&self) -> std::io::Result<Opener> {
        let peer = self.peer_id();
        let conns = self.shared.conns.lock().unwrap();
        conns
            .iter()
            .find(|c| c.peer == peer)
            .cloned()
            .ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotConnected, "Rogue::connect first")
            })
    }

    /// A stream of `protocol` on a connection of the rogue's own identity. A node too busy to
    /// agree on a protocol in time (libp2p gives it 10 s) drops the stream: tried 3 times.
    async fn open_own(
        &self,
        protocol: &str,
    ) -> std::io::Result<multistream_select::Negotiated<SubstreamBox>> {
        let opener = self.own_connection()?;
        let mut last = None;
        for _ in 0..3 {
            match opener.open(protocol).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("tried"))
    }

    /// Makes the node store a provider record (the rogue, at its first listen address) for `n`
    /// random digests, and returns them (`sha256:…`, see [`dht_key`]). The records are written
    /// as ADD_PROVIDER messages one after another on one Kademlia stream, with no query, so
    /// this returns once the node has read them all, which takes seconds for 100,000 (the node
    /// may still be storing the last ones).
    pub async fn publish_providers(&self, n: usize) -> std::io::Result<Vec<String>> {
        let keys: Vec<String> = (0..n)
            .map(|_| format!("sha256:{}", hex::encode(rand::random::<[u8; 32]>())))
            .collect();
        self.publish_provider_keys(&keys).await?;
        Ok(keys)
    }

    /// [`Rogue::publish_providers`] for the content keys `keys`; how long writing took.
    pub async fn publish_provider_keys(&self, keys: &[String]) -> std::io::Result<Duration> {
        let started = Instant::now();
        let mut stream = self.open_own(KAD_PROTOCOL).await?;
        let addrs = self.shared.listen_addrs.read().unwrap().clone();
        let provider = KadPeer::new(&self.peer_id(), &addrs[..1]);
        // Written in batches of about 64 KiB: yamux's window lets the node read at its pace.
        for batch in keys.chunks(512) {
            let mut buf = Vec::with_capacity(64 * 1024);
            for key in batch {
                let msg = KadMessage {
                    r#type: kind::ADD_PROVIDER,
                    key: dht_key(key),
                    provider_peers: vec![provider.clone()],
                    ..KadMessage::default()
                };
                buf.extend_from_slice(&wire::frame(&msg));
            }
            stream.write_all(&buf).await?;
            self.shared
                .counts
                .add_provider_sent
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        stream.flush().await?;
        stream.close().await?;
        Ok(started.elapsed())
    }
}

impl Rogue {
    /// Announces `addrs` as the rogue's listen addresses: identify answers from now on carry
    /// the first that fit in one message, provider records the first, and every connection of
    /// the rogue's own identity pushes them all to the node in identify pushes of at most
    /// [`IDENTIFY_MAX_MESSAGE`] bytes each (a push replaces the addresses the node had from the
    /// one before). How many addresses each push carried.
    pub async fn announce_addresses(&self, addrs: Vec<Multiaddr>) -> std::io::Result<Vec<usize>> {
        let mut pushes = Vec::new();
        let mut rest = &addrs[..];
        while !rest.is_empty() {
            let mut msg = Identify::default();
            let n = serve::fill_addrs(&mut msg, rest, IDENTIFY_MAX_MESSAGE);
            if n == 0 {
                break;
            }
            pushes.push(msg);
            rest = &rest[n..];
        }
        *self.shared.listen_addrs.write().unwrap() = addrs;
        for msg in &pushes {
            self.push(msg).await?;
        }
        Ok(pushes.iter().map(|m| m.listen_addrs.len()).collect())
    }

    /// Pushes all of `addrs` in one identify push, whatever its size (over
    /// [`IDENTIFY_MAX_MESSAGE`] the node drops it); its size in bytes.
    pub async fn push_identify(&self, addrs: &[Multiaddr]) -> std::io::Result<usize> {
        let msg = Identify {
            listen_addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            ..Identify::default()
        };
        self.push(&msg).await?;
        Ok(prost::Message::encoded_len(&msg))
    }

    /// Sends `msg` as an identify push on every connection of the rogue's own identity.
    async fn push(&self, msg: &Identify) -> std::io::Result<()> {
        let peer = self.peer_id();
        let conns: Vec<Opener> = self.shared.conns.lock().unwrap().clone();
        for c in conns.iter().filter(|c| c.peer == peer) {
            let mut stream = c.open(serve::IDENTIFY_PUSH).await?;
            wire::write(&mut stream, msg).await?;
            stream.close().await?;
        }
        Ok(())
    }

    /// Stops the rogue and waits until every task has ended and every connection is closed.
    pub async fn shutdown(self) {
        let shared = self.shared.clone();
        drop(self);
        shared.tasks.wait().await;
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.shared.token.cancel();
        self.shared.tasks.close();
    }
}
