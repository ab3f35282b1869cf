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
//! - [`Router`]: the handle the rest of Speil uses: advertise, withdraw, look up, status.

pub mod bootstrap;
mod config;
mod identity;
pub mod key;
mod liveness;
mod metrics;
mod router;
pub use swarm::PeerInfo;
mod swarm;
mod transport;

pub use config::Config;
pub use identity::load_or_create as load_identity;
pub use libp2p::{Multiaddr, PeerId};
pub use metrics::{Advertised, Metrics};
pub use router::{Provider, Router, Status};
