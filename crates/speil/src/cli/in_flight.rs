//! The flags of sharing blobs while they are still being downloaded: when a new image rolls out
//! to many nodes at once, one node downloads each large layer from upstream and the others
//! stream it from that node's download as it grows (docs/configuration.md, "Downloads under
//! way").

use std::time::Duration;

use clap::Args;

use super::values::{duration, positive_duration};

/// Flags of sharing downloads under way.
#[derive(Debug, Args)]
pub(crate) struct InFlightArgs {
    /// Share blobs while they download: on a miss of a large blob containerd is downloading,
    /// take it from a node that is downloading it too, and let other nodes take it from this
    /// one's download; false sends containerd upstream on every miss.
    #[arg(long, env = "SPEIL_MIRROR_IN_FLIGHT", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) mirror_in_flight: bool,

    /// Blobs smaller than this many bytes are never shared while they download.
    ///
    /// 1048576 (1 MiB): below it the claim wait costs more than a second download from
    /// upstream saves (manifests and configs are small).
    #[arg(long, env = "SPEIL_MIRROR_IN_FLIGHT_MIN_SIZE", default_value_t = 1 << 20, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) mirror_in_flight_min_size: u64,

    /// How long a node about to download a large blob that no node downloads yet waits for
    /// other nodes' claims before it decides who downloads it (the smallest peer id).
    ///
    /// 100ms: a claim reaches the nodes that keep it in a few milliseconds on a cluster
    /// network; the wait is paid once per layer, by the first nodes to pull it.
    #[arg(long, env = "SPEIL_MIRROR_IN_FLIGHT_CLAIM_WAIT", default_value = "100ms", value_parser = duration)]
    pub(crate) mirror_in_flight_claim_wait: Duration,

    /// How long a download under way may go without growing before streams served from it
    /// end (the peer's containerd then resumes upstream) and its claim is withdrawn.
    #[arg(long, env = "SPEIL_IN_FLIGHT_STALL_TIMEOUT", default_value = "10s", value_parser = positive_duration)]
    pub(crate) in_flight_stall_timeout: Duration,
}

impl InFlightArgs {
    /// The mirror's sharing of downloads under way; `None` when turned off.
    pub(crate) fn config(&self) -> Option<registry::mirror::InFlight> {
        self.mirror_in_flight.then_some(registry::mirror::InFlight {
            min_size: self.mirror_in_flight_min_size,
            claim_wait: self.mirror_in_flight_claim_wait,
            stall_timeout: self.in_flight_stall_timeout,
        })
    }
}
