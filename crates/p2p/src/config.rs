//! What the router needs to start: where to listen, where its identity lives, how long provider
//! records live, and where the other nodes are found.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::bootstrap::source::Source;
use crate::guard::Cidr;
use crate::private_network::NetworkKey;

/// Configuration of the P2P router.
#[derive(Debug, Clone)]
pub struct Config {
    /// The TCP address the libp2p swarm listens on (`--router-addr`).
    pub listen: SocketAddr,
    /// Addresses other nodes reach this one at, when they differ from the listen address (NAT);
    /// also treated as this node's own when filtering candidates.
    pub advertise: Vec<SocketAddr>,
    /// Where the peer identity is kept; `None` for a new identity each run.
    pub data_dir: Option<PathBuf>,
    /// How long a provider record lives in the DHT without being republished.
    pub provider_ttl: Duration,
    /// How often this node republishes its provider records; below `provider_ttl`.
    pub provider_republish: Duration,
    /// Where candidate nodes come from.
    pub bootstrap: Source,
    /// How often a healthy node looks for new nodes.
    pub refresh_interval: Duration,
    /// How long `isolated` or `discovery_failed` may last before one ERROR line.
    pub error_after: Duration,
    /// Where this node serves its id and addresses for HTTP bootstrap, if anywhere.
    pub http_bootstrap_addr: Option<SocketAddr>,
    /// How often every connected peer is pinged.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered; libp2p forgives the first failure, so two in a row
    /// disconnect the peer and drop it from the routing table.
    pub ping_timeout: Duration,
    /// How long a peer that stopped answering (failed ping, failed dial, broken connection) is
    /// left out of lookup results while it is not connected.
    pub peer_down_for: Duration,
    /// The private network's key (`--p2p-psk-file`): only nodes with the same key connect.
    /// `None`: an open network, without the private network layer at all.
    pub private_network: Option<NetworkKey>,
    /// The networks peers may be reached at (`--peer-cidrs`); empty for every address the
    /// address guard's fixed rules allow (see `guard.rs`).
    pub peer_cidrs: Vec<Cidr>,
    /// Bounds on what peers can make the router hold or do.
    pub limits: Limits,
}

/// Bounds on what peers can make the router hold or do; each is a flag of `speil run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Established connections, in and out (`--p2p-max-connections`).
    pub max_connections: u32,
    /// Established connections with one peer (`--p2p-max-connections-per-peer`).
    pub max_connections_per_peer: u32,
    /// Connections being set up, in each direction (`--p2p-max-pending-connections`).
    pub max_pending_connections: u32,
    /// Lookups of different keys running at once (`--p2p-max-lookups`); one more is answered
    /// with no providers at once (the mirror then answers 404 and containerd goes upstream).
    pub max_lookups: usize,
    /// Providers one lookup hands out (`--p2p-max-providers-per-lookup`); the rest are ignored.
    pub max_providers_per_lookup: usize,
    /// Providers of unknown address one lookup dials to learn it
    /// (`--p2p-max-dials-per-lookup`); the rest are ignored.
    pub max_dials_per_lookup: usize,
}

impl Default for Limits {
    /// Room for a cluster of a few hundred nodes, every node connected to every other (the
    /// bootstrap dials every candidate), and for a pull of many images at once; far below what
    /// would let a flood of peers or records exhaust the node.
    fn default() -> Self {
        Limits {
            max_connections: 512,
            max_connections_per_peer: 4,
            max_pending_connections: 128,
            max_lookups: 256,
            // Kademlia keeps 20 providers per key anyway; the mirror tries 3 per request.
            max_providers_per_lookup: 20,
            max_dials_per_lookup: 4,
        }
    }
}

/// The names of the limits in `speil_p2p_limit_reached`.
pub(crate) struct Limit;

impl Limit {
    pub(crate) const LOOKUPS: &'static str = "lookups";
    pub(crate) const PROVIDERS_PER_LOOKUP: &'static str = "providers_per_lookup";
    pub(crate) const DIALS_PER_LOOKUP: &'static str = "dials_per_lookup";
    pub(crate) const ADDRESSES_PER_PEER: &'static str = "addresses_per_peer";
    pub(crate) const ALL: [&'static str; 4] = [
        Self::LOOKUPS,
        Self::PROVIDERS_PER_LOOKUP,
        Self::DIALS_PER_LOOKUP,
        Self::ADDRESSES_PER_PEER,
    ];
}

impl Config {
    /// A configuration listening on `listen` with the defaults Speil's flags use.
    pub fn new(listen: SocketAddr) -> Self {
        Config {
            listen,
            advertise: Vec::new(),
            data_dir: None,
            provider_ttl: Duration::from_secs(30 * 60),
            provider_republish: Duration::from_secs(10 * 60),
            bootstrap: Source::None,
            refresh_interval: Duration::from_secs(60),
            error_after: Duration::from_secs(120),
            http_bootstrap_addr: None,
            ping_interval: Duration::from_secs(5),
            ping_timeout: Duration::from_secs(5),
            peer_down_for: Duration::from_secs(30),
            private_network: None,
            peer_cidrs: Vec::new(),
            limits: Limits::default(),
        }
    }
}
