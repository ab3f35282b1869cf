//! What the router needs to start: where to listen, where its identity lives, how long provider
//! records live, and where the other nodes are found.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::bootstrap::source::Source;
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
        }
    }
}
