//! Finding the other nodes: candidate sources (DNS, HTTP, static), the filter that drops every
//! candidate that is this node before it is dialed, the controller that runs bootstrap rounds,
//! and the bootstrap state a node reports.
//!
//! This file only declares and re-exports: the modules below import each other directly, never
//! through here, so the re-exports add no import cycle.

pub(crate) mod controller;
pub(crate) mod dns;
pub mod http;
pub(crate) mod self_filter;
pub(crate) mod source;
pub(crate) mod state;

pub use crate::addr::{socket_addr, tcp_multiaddr};
pub use crate::messages::Candidate;
pub use dns::candidates_at;
pub use source::{DiscoveryError, DnsSource, Source, SourceKind};
pub use state::{NotReady, Round, State};
