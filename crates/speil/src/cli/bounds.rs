//! The flags that bound what clients can make the registry port hold: connections, requests in
//! flight, requests forwarded to peers, and how long a connection may dawdle. Each default is
//! far above what containerd and the other nodes need and far below what exhausts a node; the
//! reasoning is with each flag.

use std::time::Duration;

use clap::Args;

use super::values::positive_duration;

/// Flags of the registry port's bounds.
#[derive(Debug, Args)]
pub(crate) struct BoundsArgs {
    /// Open connections on --registry-addr; one more is answered 503 (TOOMANYREQUESTS,
    /// Retry-After) and closed, never left waiting.
    ///
    /// 1024: containerd keeps a few connections per pull and each other node a few while it
    /// mirrors from this one; four times --registry-max-requests leaves room for idle keep-alive
    /// connections. An open connection costs a descriptor and about 16 KiB (hyper's read and
    /// write buffers): 16 MiB at the limit.
    #[arg(long, env = "SPEIL_REGISTRY_MAX_CONNECTIONS", default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) registry_max_connections: u32,

    /// Requests answered at once on --registry-addr (until the last byte is sent); one more
    /// is answered 503 with Retry-After. /readyz and /livez are always answered.
    ///
    /// 256: a blob being sent holds up to 1 MiB of read-ahead, so this caps that at 256 MiB; a
    /// node's own containerd pulls a few layers at a time, and each other node asks at most a few
    /// providers per blob, so 256 streams saturate a NIC long before they are refused.
    #[arg(long, env = "SPEIL_REGISTRY_MAX_REQUESTS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub(crate) registry_max_requests: u32,

    /// How long a connection may take to send a request's headers (from the accept, or from
    /// the first byte of a later request); then it is closed.
    ///
    /// 10s: containerd and peers send their headers in one packet; a client that takes longer
    /// is broken or holding a connection on purpose (slowloris).
    #[arg(long, env = "SPEIL_REGISTRY_HEADER_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub(crate) registry_header_timeout: Duration,

    /// How long a keep-alive connection may stay idle between requests; then it is closed.
    ///
    /// 120s: longer than the idle timeout of containerd's registry client (30 s in containerd
    /// 2.4) and of the mirror's own pool of connections to peers (90 s), so a client drops an
    /// idle connection before this node does and never sends a request on one being closed.
    #[arg(long, env = "SPEIL_REGISTRY_IDLE_TIMEOUT", default_value = "120s", value_parser = positive_duration)]
    pub(crate) registry_idle_timeout: Duration,
}

impl BoundsArgs {
    /// The registry server's bounds.
    pub(crate) fn bounds(&self) -> registry::Bounds {
        registry::Bounds {
            max_connections: self.registry_max_connections as usize,
            max_requests: self.registry_max_requests as usize,
            header_timeout: self.registry_header_timeout,
            idle_timeout: self.registry_idle_timeout,
        }
    }
}
