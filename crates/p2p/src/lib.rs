//! Speil's peer-to-peer side: a Kademlia DHT (rust-libp2p) in which every node advertises the
//! content it holds as provider records and looks up who holds what it lacks, plus the bootstrap
//! that finds the other nodes without ever dialing itself.
//!
//! Layout, from the handle down; each module imports only modules below it:
//! - [`Router`] (`router`): the handle the rest of Speil uses: advertise, withdraw, look up,
//!   status, readiness. Starting it spawns the swarm task and the bootstrap controller.
//! - [`bootstrap`]: where candidate nodes come from (DNS, HTTP, static), self filtering, the
//!   controller that runs bootstrap rounds, and the bootstrap state a node reports.
//! - `swarm`: the one task that owns the libp2p swarm and takes commands over a bounded channel,
//!   a dispatcher over parts that each own one piece of state (lookups, dial rounds, the address
//!   book, provider publication), and the libp2p behaviour with its protocol names.
//! - `messages`: what the router, the swarm task and the bootstrap controller send each other.
//! - `metrics`: the router's metrics.
//! - `liveness`: which peers stopped answering (pings, dials, broken connections).
//! - `transport`: TCP with noise and yamux, every dial from a new local port, none to an
//!   address the guard refuses.
//! - `guard`: which addresses peers may be reached at (never link-local, multicast, …;
//!   `--peer-cidrs`).
//! - [`private_network`]: the pre-shared key of `--p2p-psk-file` and the pnet layer that only
//!   lets nodes with the same key connect.
//! - [`key`]: content keys (digests, tag references) and their DHT keys.
//! - `addr`: TCP multiaddrs and socket addresses.
//! - `config`, `identity`: what the router starts with.

mod addr;
pub mod bootstrap;
mod config;
mod guard;
mod identity;
pub mod key;
mod liveness;
mod messages;
mod metrics;
pub mod private_network;
mod router;
mod swarm;
mod transport;

pub use bootstrap::NotReady;
pub use config::{Config, Limits};
pub use guard::{Cidr, Refusal};
pub use identity::load_or_create as load_identity;
pub use libp2p::{Multiaddr, PeerId};
pub use messages::{PeerInfo, Provider};
pub use metrics::{Advertised, Metrics};
pub use private_network::NetworkKey;
pub use router::{Router, Status};
