//! Metrics of the P2P router: bootstrap candidates and rounds, self dials, the bootstrap state,
//! peer counts and what is advertised. libp2p's own metrics are registered beside them.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::bootstrap::state::State;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirLabels {
    dir: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RegistryLabels {
    registry: String,
}

/// What a node advertises, summed over registries, as `/status` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Advertised {
    /// Image tags (`registry/repository:tag` keys).
    pub image_tags: usize,
    /// Image manifest or index digests.
    pub image_digests: usize,
    /// Every content digest (manifests, configs, layers).
    pub content_digests: usize,
}

/// Metrics of the P2P router.
#[derive(Clone)]
pub struct Metrics {
    candidates: Family<OutcomeLabels, Counter>,
    self_dials: Counter,
    state: Family<StateLabels, Gauge>,
    rounds: Family<ResultLabels, Counter>,
    connected: Gauge,
    routing: Gauge,
    rtt: Histogram,
    advertised_tags: Family<RegistryLabels, Gauge>,
    advertised_images: Family<RegistryLabels, Gauge>,
    advertised_contents: Family<RegistryLabels, Gauge>,
    advertised: std::sync::Arc<std::sync::Mutex<Advertised>>,
    identify: Family<DirLabels, Counter>,
    refused: Family<ReasonLabels, Counter>,
    limited: Family<LimitLabels, Counter>,
    pub(crate) libp2p: std::sync::Arc<libp2p::metrics::Metrics>,
}

/// Registers `metric` as `name` in `registry` and returns it.
fn register<M: Clone + prometheus_client::registry::Metric>(
    registry: &mut Registry,
    name: &str,
    help: &str,
    metric: M,
) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    /// Registers the router's metrics, and libp2p's under `libp2p_`, in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let candidates = register(
            registry,
            "speil_bootstrap_candidates",
            "Bootstrap candidates by outcome: self (dropped before dialing), dialed, connected, \
             failed, self_dial (a dial that reached this node)",
            Family::default(),
        );
        let self_dials = register(
            registry,
            "speil_p2p_self_dials",
            "Connections that reached this node itself; stays 0 when self filtering works",
            Counter::default(),
        );
        let state = Family::<StateLabels, Gauge>::default();
        for s in State::ALL {
            state
                .get_or_create(&StateLabels { state: s.as_str() })
                .set(i64::from(s == State::Starting));
        }
        let state = register(
            registry,
            "speil_bootstrap_state",
            "1 for the node's current bootstrap state, 0 for the others",
            state,
        );
        let rounds = register(
            registry,
            "speil_bootstrap_rounds",
            "Bootstrap rounds by result: connected, no_other_nodes, all_failed, discovery_failed",
            Family::default(),
        );
        let (connected, routing, rtt) = register_peers(registry);
        let (advertised_tags, advertised_images, advertised_contents) =
            register_advertised(registry);
        let identify = Family::<DirLabels, Counter>::default();
        for dir in ["inbound", "outbound"] {
            let _ = identify.get_or_create(&DirLabels { dir });
        }
        let identify = register(
            registry,
            "libp2p_identify_identify",
            "Identify exchanges as go-libp2p counts them: inbound when a peer asked this node, \
             outbound when this node asked a peer and got its answer",
            identify,
        );
        let (refused, limited) = register_bounds(registry);
        let libp2p = std::sync::Arc::new(libp2p::metrics::Metrics::new(registry));
        Metrics {
            candidates,
            self_dials,
            state,
            rounds,
            connected,
            routing,
            rtt,
            advertised_tags,
            advertised_images,
            advertised_contents,
            advertised: std::sync::Arc::default(),
            identify,
            refused,
            limited,
            libp2p,
        }
    }

    pub(crate) fn candidate(&self, outcome: &'static str) {
        self.candidates
            .get_or_create(&OutcomeLabels { outcome })
            .inc();
    }

    pub(crate) fn candidates(&self, outcome: &'static str, n: usize) {
        self.candidates
            .get_or_create(&OutcomeLabels { outcome })
            .inc_by(n as u64);
    }

    pub(crate) fn self_dial(&self) {
        self.self_dials.inc();
    }

    pub(crate) fn set_state(&self, current: State) {
        for s in State::ALL {
            self.state
                .get_or_create(&StateLabels { state: s.as_str() })
                .set(i64::from(s == current));
        }
    }

    pub(crate) fn round(&self, result: &'static str) {
        self.rounds.get_or_create(&ResultLabels { result }).inc();
    }

    /// Counts an identify exchange: `inbound` when a peer asked, `outbound` when this node did.
    pub(crate) fn identify(&self, dir: &'static str) {
        self.identify.get_or_create(&DirLabels { dir }).inc();
    }

    /// What this node advertises now, summed over registries.
    pub fn advertised(&self) -> Advertised {
        *self
            .advertised
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sets what this node advertises: `totals` over every registry (as `/status` shows it),
    /// and the gauges of each registry in `by_registry`. Registries left out drop to zero
    /// rather than keep their last value.
    pub fn set_advertised(&self, totals: Advertised, by_registry: &BTreeMap<String, Advertised>) {
        for family in [
            &self.advertised_tags,
            &self.advertised_images,
            &self.advertised_contents,
        ] {
            family.clear();
        }
        *self
            .advertised
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = totals;
        for (registry, a) in by_registry {
            let labels = RegistryLabels {
                registry: registry.clone(),
            };
            // A registry none of whose tags is advertised has no tag gauge at all.
            if a.image_tags > 0 {
                self.advertised_tags
                    .get_or_create(&labels)
                    .set(a.image_tags as i64);
            }
            self.advertised_images
                .get_or_create(&labels)
                .set(a.image_digests as i64);
            self.advertised_contents
                .get_or_create(&labels)
                .set(a.content_digests as i64);
        }
    }

    /// Counts a peer address the address guard refused, by reason.
    pub(crate) fn address_refused(&self, reason: &'static str) {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts `n` things a bound left out (see [`Limit`](crate::config::Limit)).
    pub(crate) fn limit_reached(&self, limit: &'static str, n: usize) {
        self.limited
            .get_or_create(&LimitLabels { limit })
            .inc_by(n as u64);
    }

    pub(crate) fn rtt(&self, rtt: std::time::Duration) {
        self.rtt.observe(rtt.as_secs_f64());
    }

    pub(crate) fn peers(&self, connected: usize, routing: usize) {
        self.connected.set(connected as i64);
        self.routing.set(routing as i64);
    }
}

/// Registers the peer gauges: connected, in the routing table, and ping round trips.
fn register_peers(registry: &mut Registry) -> (Gauge, Gauge, Histogram) {
    let connected = register(
        registry,
        "speil_p2p_connected_peers",
        "Peers with an open connection",
        Gauge::default(),
    );
    let routing = register(
        registry,
        "speil_p2p_routing_table_peers",
        "Peers in the Kademlia routing table",
        Gauge::default(),
    );
    // 100 µs (loopback) to about 3 s (a peer about to time out).
    let rtt = register(
        registry,
        "speil_p2p_peer_rtt_seconds",
        "Round-trip times of the pings sent to connected peers",
        Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
            0.0001, 2.5, 12,
        )),
    );
    (connected, routing, rtt)
}

/// Registers the counters of the bounds: addresses the guard refused, by reason, and what a
/// limit left out, by limit; every label from the start, at zero.
fn register_bounds(
    registry: &mut Registry,
) -> (Family<ReasonLabels, Counter>, Family<LimitLabels, Counter>) {
    let refused = Family::<ReasonLabels, Counter>::default();
    for r in crate::guard::Refusal::ALL {
        let _ = refused.get_or_create(&ReasonLabels { reason: r.as_str() });
    }
    let refused = register(
        registry,
        "speil_p2p_addresses_refused",
        "Peer addresses the address guard refused (never dialed, never handed to the mirror), \
         by reason: unspecified, multicast, broadcast, link_local, loopback, outside_peer_cidrs",
        refused,
    );
    let limited = Family::<LimitLabels, Counter>::default();
    for limit in crate::config::Limit::ALL {
        let _ = limited.get_or_create(&LimitLabels { limit });
    }
    let limited = register(
        registry,
        "speil_p2p_limit_reached",
        "What a bound of the router left out, by limit: lookups (lookups answered empty), \
         providers_per_lookup (providers ignored), dials_per_lookup (providers not dialed), \
         addresses_per_peer (addresses forgotten)",
        limited,
    );
    (refused, limited)
}

/// The gauges of what is advertised, by registry: tags, image digests, content digests.
type AdvertisedFamilies = (
    Family<RegistryLabels, Gauge>,
    Family<RegistryLabels, Gauge>,
    Family<RegistryLabels, Gauge>,
);

/// Registers the gauges of what is advertised.
fn register_advertised(registry: &mut Registry) -> AdvertisedFamilies {
    let tags = register(
        registry,
        "speil_advertised_image_tags",
        "Image tags advertised to other nodes, by registry",
        Family::default(),
    );
    let images = register(
        registry,
        "speil_advertised_image_digests",
        "Image (manifest or index) digests advertised to other nodes, by registry",
        Family::default(),
    );
    let contents = register(
        registry,
        "speil_advertised_content_digests",
        "Content digests (manifests, configs, layers) advertised to other nodes, by registry",
        Family::default(),
    );
    (tags, images, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(registry: &Registry) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, registry).unwrap();
        out
    }

    #[test]
    fn advertised_gauges_follow_the_last_totals_by_registry() {
        let mut registry = Registry::default();
        let m = Metrics::register(&mut registry);
        let counts = |image_tags, image_digests, content_digests| Advertised {
            image_tags,
            image_digests,
            content_digests,
        };
        let mut by_registry = BTreeMap::new();
        by_registry.insert("docker.io".to_owned(), counts(2, 2, 9));
        by_registry.insert("unknown".to_owned(), counts(0, 1, 3));
        m.set_advertised(counts(2, 3, 11), &by_registry);
        assert_eq!(m.advertised(), counts(2, 3, 11));
        let text = encoded(&registry);
        assert!(text.contains("speil_advertised_image_tags{registry=\"docker.io\"} 2\n"));
        assert!(!text.contains("speil_advertised_image_tags{registry=\"unknown\"}"));
        assert!(text.contains("speil_advertised_image_digests{registry=\"unknown\"} 1\n"));
        assert!(text.contains("speil_advertised_content_digests{registry=\"docker.io\"} 9\n"));
        by_registry.remove("docker.io");
        m.set_advertised(counts(0, 1, 3), &by_registry);
        assert!(!encoded(&registry).contains("docker.io"));
    }
}
