//! Speil's peer-to-peer side: a Kademlia DHT (rust-libp2p) in which every node advertises the
//! content it holds as provider records and looks up who holds what it lacks, plus the bootstrap
//! that finds the other nodes without ever dialing itself.
//!
//! Layout:
//! - [`key`]: content keys (digests, tag references) and their DHT keys.
//! - [`bootstrap`]: where candidate nodes come from (DNS, HTTP, static), self filtering, and the
//!   bootstrap state a node reports.
//! - `swarm`: the one task that owns the libp2p swarm and takes commands over a bounded channel.
//! - `transport`: TCP with noise and yamux, every dial from a new local port.
//! - `liveness`: which peers stopped answering (pings, dials, broken connections).
//! - `messages`: what the router, the swarm task and the bootstrap controller send each other;
//!   below all three, so that imports between modules point one way.
//! - `addr`: TCP multiaddrs and socket addresses.
//! - [`Router`]: the handle the rest of Speil uses: advertise, withdraw, look up, status.

mod addr;
pub mod bootstrap;
mod config;
mod identity;
pub mod key;
mod liveness;
mod messages;
mod metrics;
mod router;
mod swarm;
mod transport;

pub use bootstrap::NotReady;
pub use config::Config;
pub use identity::load_or_create as load_identity;
pub use libp2p::{Multiaddr, PeerId};
pub use messages::{PeerInfo, Provider};
pub use metrics::{Advertised, Metrics};
pub use router::{Router, Status};
