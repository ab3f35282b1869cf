//! Addresses for multi-node tests: each test takes its own random block `127.A.B.0/24` of the
//! loopback range, so nodes can bind the same ports on their own IPs (like pods) while tests run
//! in parallel.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rand::Rng as _;

/// The registry port every test node uses, like a DaemonSet's.
pub const REGISTRY_PORT: u16 = 5000;
/// The router port every test node uses.
pub const ROUTER_PORT: u16 = 5001;
/// The admin (metrics) port every test node uses.
pub const METRICS_PORT: u16 = 9090;

/// A `127.A.B.0/24` block of loopback addresses.
#[derive(Debug, Clone, Copy)]
pub struct Block([u8; 2]);

impl Block {
    /// A random block, unlikely to be used by another test at the same time.
    pub fn random() -> Block {
        let mut rng = rand::rng();
        Block([rng.random_range(1..=254), rng.random_range(1..=254)])
    }

    /// The address `127.A.B.n`.
    pub fn ip(self, n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, self.0[0], self.0[1], n))
    }

    /// `127.A.B.n:port`.
    pub fn addr(self, n: u8, port: u16) -> SocketAddr {
        SocketAddr::new(self.ip(n), port)
    }
}
