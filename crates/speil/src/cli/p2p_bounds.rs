//! Flags of what peers may make the router do or hold: where peers may be reached
//! (`--peer-cidrs`, on top of the address guard's fixed rules) and the router's limits. Over a
//! limit the router leaves something out (a connection, a lookup, a provider) and counts it; it
//! never waits. docs/security.md explains each.

use clap::Args;

/// Flags of the router's bounds.
#[derive(Debug, Args)]
pub(crate) struct P2pBoundArgs {
    /// The networks peers may be reached at, comma-separated CIDRs (10.0.0.0/8, fd00::/8): the
    /// node network. No other address is dialed or handed to the mirror, whatever a peer claims.
    /// Link-local (with the cloud metadata address), multicast, broadcast and unspecified
    /// addresses are refused even without it, and loopback unless this node listens on loopback.
    #[arg(long, env = "SPEIL_PEER_CIDRS", value_delimiter = ',', value_parser = peer_cidr)]
    pub(crate) peer_cidrs: Vec<p2p::Cidr>,

    /// Most established router connections, in and out; more are refused. Keep it above the
    /// number of nodes: every node connects to every node the bootstrap lists.
    #[arg(long, env = "SPEIL_P2P_MAX_CONNECTIONS", default_value_t = p2p::Limits::default().max_connections, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) p2p_max_connections: u32,

    /// Most established router connections with one peer.
    #[arg(long, env = "SPEIL_P2P_MAX_CONNECTIONS_PER_PEER", default_value_t = p2p::Limits::default().max_connections_per_peer, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) p2p_max_connections_per_peer: u32,

    /// Most router connections being set up at once, in each direction.
    #[arg(long, env = "SPEIL_P2P_MAX_PENDING_CONNECTIONS", default_value_t = p2p::Limits::default().max_pending_connections, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) p2p_max_pending_connections: u32,

    /// Most lookups of different keys at once; one more finds no provider at once (the pull
    /// goes upstream).
    #[arg(long, env = "SPEIL_P2P_MAX_LOOKUPS", default_value_t = p2p::Limits::default().max_lookups as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) p2p_max_lookups: u32,

    /// Most providers one lookup hands to the mirror; the rest are ignored.
    #[arg(long, env = "SPEIL_P2P_MAX_PROVIDERS_PER_LOOKUP", default_value_t = p2p::Limits::default().max_providers_per_lookup as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) p2p_max_providers_per_lookup: u32,

    /// Most providers of unknown address one lookup dials to learn it; the rest are ignored.
    #[arg(long, env = "SPEIL_P2P_MAX_DIALS_PER_LOOKUP", default_value_t = p2p::Limits::default().max_dials_per_lookup as u32, value_parser = clap::value_parser!(u32).range(0..))]
    pub(crate) p2p_max_dials_per_lookup: u32,
}

impl P2pBoundArgs {
    /// The router's limits from these flags.
    pub(crate) fn limits(&self) -> p2p::Limits {
        p2p::Limits {
            max_connections: self.p2p_max_connections,
            max_connections_per_peer: self.p2p_max_connections_per_peer,
            max_pending_connections: self.p2p_max_pending_connections,
            max_lookups: self.p2p_max_lookups as usize,
            max_providers_per_lookup: self.p2p_max_providers_per_lookup as usize,
            max_dials_per_lookup: self.p2p_max_dials_per_lookup as usize,
        }
    }
}

/// An IP network such as 10.0.0.0/8; a bare IP is a network of one.
fn peer_cidr(s: &str) -> Result<p2p::Cidr, String> {
    s.trim().parse()
}
