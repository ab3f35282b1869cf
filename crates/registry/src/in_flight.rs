//! The metrics of sharing downloads under way: what the mirror decided on a miss
//! (`mirror/claims.rs`), the claims this node advertises, and the requests from peers it served
//! from its own downloads as they grew, with how many of those streams ended early and why.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EndLabels {
    reason: &'static str,
}

/// Metrics of downloads shared while under way.
#[derive(Clone)]
pub(crate) struct InFlightMetrics {
    decisions: Family<DecisionLabels, Counter>,
    advertised: Gauge,
    served: Counter,
    ended: Family<EndLabels, Counter>,
}

impl InFlightMetrics {
    pub(crate) fn register(registry: &mut Registry) -> Self {
        let decisions = Family::default();
        registry.register(
            "speil_in_flight_decisions",
            "Misses of a blob this node's containerd was downloading, by what the node did: upstream (it downloads and advertises the download), joined (took it from a peer already downloading it), followed (took it from a rival claimant)",
            Clone::clone(&decisions),
        );
        let advertised = Gauge::default();
        registry.register(
            "speil_in_flight_advertised",
            "Downloads under way this node advertises to peers",
            advertised.clone(),
        );
        let served = Counter::default();
        registry.register(
            "speil_in_flight_served",
            "Requests from peers served from a download under way (bytes: speil_mirror_bytes_total{source=\"in_flight\"})",
            served.clone(),
        );
        let ended = Family::default();
        registry.register(
            "speil_in_flight_ended_early",
            "Streams of a download under way that ended before their last byte, by reason: stalled, abandoned, restarted, corrupt, error",
            Clone::clone(&ended),
        );
        InFlightMetrics {
            decisions,
            advertised,
            served,
            ended,
        }
    }

    pub(crate) fn decided(&self, decision: &'static str) {
        self.decisions
            .get_or_create(&DecisionLabels { decision })
            .inc();
    }

    pub(crate) fn set_advertised(&self, n: usize) {
        self.advertised.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    pub(crate) fn served(&self) {
        self.served.inc();
    }

    /// Counts a stream from a download under way that ended with `error`.
    pub(crate) fn ended_early(&self, error: &std::io::Error) {
        use std::io::ErrorKind;
        let reason = match error.kind() {
            ErrorKind::TimedOut => "stalled",
            ErrorKind::NotFound => "abandoned",
            ErrorKind::UnexpectedEof => "restarted",
            ErrorKind::InvalidData => "corrupt",
            _ => "error",
        };
        self.ended.get_or_create(&EndLabels { reason }).inc();
    }
}
