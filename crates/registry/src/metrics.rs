//! The registry's metrics: requests by handler, method and status, their durations, and bytes
//! served; and the registry's [`Activity`] since start, which `/status` shows.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    handler: &'static str,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BytesLabels {
    source: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MirrorLabels {
    registry: String,
    cache: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

/// Distinct `registry` label values kept; requests for further registries count as `other`, so
/// clients cannot grow the series without bound.
const MAX_REGISTRY_LABELS: usize = 64;

/// Metrics of the HTTP registry.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    bytes: Family<BytesLabels, Counter>,
    mirror_requests: Family<MirrorLabels, Counter>,
    registries: Arc<Mutex<HashSet<String>>>,
    last_success: Gauge<f64, AtomicU64>,
    resolve: Histogram,
    peer_failures: Family<ReasonLabels, Counter>,
    rejected: Family<ReasonLabels, Counter>,
    closed: Family<ReasonLabels, Counter>,
    connections: Gauge,
    activity: Arc<Mutex<Activity>>,
    /// Downloads shared while under way.
    pub(crate) in_flight: crate::in_flight::InFlightMetrics,
}

/// An open connection, counted in the open connections gauge until dropped.
pub(crate) struct OpenConnection(Gauge);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Where a manifest or blob request was answered from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// This node's own store.
    Local,
    /// Another node, through the mirror.
    Peer,
    /// Nowhere: answered 404 (containerd then goes to the registry itself).
    NotFound,
}

/// What the registry has answered since the node started, as `/status` and `speil status` show
/// it: whether containerd asks this node at all, and whether peers serve it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Activity {
    /// Manifest and blob requests from clients (containerd) answered from this node's store.
    pub served_local: u64,
    /// Requests from clients answered with content from a peer.
    pub served_from_peers: u64,
    /// Requests from clients answered 404.
    pub not_found: u64,
    /// Requests from other Speil nodes (answered from the store or 404).
    pub requests_from_peers: u64,
    /// When a client (not a peer) last asked for a manifest or blob, in Unix seconds.
    pub last_client_request_unix: Option<u64>,
    /// The last request served from a peer.
    pub last_mirror: Option<LastMirror>,
    /// Requests from peers served from a download under way on this node.
    #[serde(default)]
    pub in_flight_served: u64,
    /// Downloads under way this node advertises now.
    #[serde(default)]
    pub in_flight_advertised: u64,
}

/// The last content served from a peer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastMirror {
    /// When its transfer finished, in Unix seconds.
    pub unix: u64,
    /// The peer that served it.
    pub peer: String,
    /// What was asked for: `registry/repository:tag` or `registry/repository@digest`.
    pub reference: String,
}

impl Metrics {
    /// Registers the registry's metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "speil_http_requests",
            "Registry HTTP requests by handler, method and status",
            requests.clone(),
        );
        let durations = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            // 100 µs to ~6.5 s.
            Histogram::new(exponential_buckets(0.0001, 2.0, 17))
        });
        registry.register(
            "speil_http_request_duration_seconds",
            "Time from a registry request's arrival to its response headers",
            durations.clone(),
        );
        let bytes = Family::<BytesLabels, Counter>::default();
        registry.register(
            "speil_mirror_bytes",
            "Content bytes served by this node, by where they came from",
            bytes.clone(),
        );
        let mirror_requests = Family::default();
        registry.register(
            "speil_mirror_requests",
            "Manifest and blob requests by registry; cache=hit when served (locally or from a peer), miss when answered 404",
            Clone::clone(&mirror_requests),
        );
        let last_success = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "speil_mirror_last_success_timestamp_seconds",
            "When content was last served from a peer, in seconds since the Unix epoch",
            last_success.clone(),
        );
        // 100 µs to ~0.8 s.
        let resolve = Histogram::new(exponential_buckets(0.0001, 2.0, 14));
        registry.register(
            "speil_resolve_duration_seconds",
            "Time from a local miss to the first usable provider, or to giving up",
            resolve.clone(),
        );
        let peer_failures = Family::default();
        registry.register(
            "speil_mirror_peer_failures",
            "Peers that failed a mirrored request, by reason: connect, timeout, status, bad_response, digest_mismatch, body",
            Clone::clone(&peer_failures),
        );
        let (rejected, closed, connections) = register_bounds(registry);
        let in_flight = crate::in_flight::InFlightMetrics::register(registry);
        Metrics {
            in_flight,
            rejected,
            closed,
            connections,
            requests,
            durations,
            bytes,
            mirror_requests,
            registries: Arc::default(),
            last_success,
            resolve,
            peer_failures,
            activity: Arc::default(),
        }
    }

    /// What the registry has answered since start.
    pub fn activity(&self) -> Activity {
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Notes how a manifest or blob request was answered, and whether a peer sent it.
    pub(crate) fn answered(&self, from_peer: bool, outcome: Outcome) {
        let mut a = self
            .activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if from_peer {
            a.requests_from_peers += 1;
            return;
        }
        a.last_client_request_unix = Some(timing::unix_now_secs());
        match outcome {
            Outcome::Local => a.served_local += 1,
            Outcome::Peer => a.served_from_peers += 1,
            Outcome::NotFound => a.not_found += 1,
        }
    }

    /// Counts a manifest or blob request for `registry`, served (`hit`) or not.
    pub(crate) fn content_request(&self, registry: &str, hit: bool) {
        let registry = {
            let mut known = self
                .registries
                .lock()
                .expect("registry label lock poisoned");
            if known.contains(registry) || known.len() < MAX_REGISTRY_LABELS {
                known.insert(registry.to_owned());
                registry.to_owned()
            } else {
                "other".to_owned()
            }
        };
        let cache = if hit { "hit" } else { "miss" };
        self.mirror_requests
            .get_or_create(&MirrorLabels { registry, cache })
            .inc();
    }

    pub(crate) fn resolved(&self, elapsed: Duration) {
        self.resolve.observe(elapsed.as_secs_f64());
    }

    /// Notes that `peer` served `reference` completely.
    pub(crate) fn mirror_succeeded(&self, peer: &p2p::PeerId, reference: &str) {
        let now = timing::unix_now().as_secs_f64();
        self.last_success.set(now);
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last_mirror = Some(LastMirror {
            unix: now as u64,
            peer: peer.to_string(),
            reference: reference.to_owned(),
        });
    }

    /// Counts a request or connection refused over `limit`.
    pub(crate) fn rejected(&self, limit: crate::error::Limit) {
        self.rejected
            .get_or_create(&ReasonLabels {
                reason: limit.as_str(),
            })
            .inc();
    }

    /// Counts a connection closed by a timeout (`header_timeout`, `idle_timeout`).
    pub(crate) fn timed_out(&self, reason: &'static str) {
        self.closed.get_or_create(&ReasonLabels { reason }).inc();
    }

    /// Counts an open connection until the returned guard is dropped.
    pub(crate) fn connection_opened(&self) -> OpenConnection {
        self.connections.inc();
        OpenConnection(self.connections.clone())
    }

    pub(crate) fn peer_failure(&self, reason: &'static str) {
        self.peer_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub(crate) fn observe(
        &self,
        handler: &'static str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
    ) {
        let labels = RequestLabels {
            handler,
            method: method_label(method),
            status: status.as_u16(),
        };
        self.requests.get_or_create(&labels).inc();
        self.durations
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a request from a peer served from a download under way.
    pub(crate) fn in_flight_served(&self) {
        self.in_flight.served();
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .in_flight_served += 1;
    }

    /// Sets how many downloads under way this node advertises.
    pub(crate) fn set_in_flight_advertised(&self, n: usize) {
        self.in_flight.set_advertised(n);
        self.activity
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .in_flight_advertised = n as u64;
    }

    /// The counter of bytes served from `source`, to count a body as it streams.
    pub(crate) fn bytes_counter(&self, source: &'static str) -> Counter {
        self.bytes.get_or_create(&BytesLabels { source }).clone()
    }
}

/// The metrics of the registry port's bounds: rejections by limit, connections closed by a
/// timeout, open connections.
fn register_bounds(
    registry: &mut Registry,
) -> (
    Family<ReasonLabels, Counter>,
    Family<ReasonLabels, Counter>,
    Gauge,
) {
    let rejected = Family::default();
    registry.register(
        "speil_registry_rejected",
        "Requests and connections answered 503 (or closed) over a limit, by reason: requests, connections, mirror_transfers",
        Clone::clone(&rejected),
    );
    let closed = Family::default();
    registry.register(
        "speil_registry_connections_closed",
        "Registry connections closed by a timeout, by reason: header_timeout, idle_timeout",
        Clone::clone(&closed),
    );
    let connections = Gauge::default();
    registry.register(
        "speil_registry_connections",
        "Open registry connections within the connection limit",
        connections.clone(),
    );
    (rejected, closed, connections)
}

/// A bounded label for a method: anything unusual is `other`, so clients cannot grow the series.
fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        _ => "other",
    }
}

/// The handler label of a path, from a fixed set so clients cannot grow the series.
pub(crate) fn handler_of(path: &str) -> &'static str {
    match path {
        "/v2" | "/v2/" => "v2",
        "/readyz" => "readyz",
        "/livez" => "livez",
        p if p.starts_with("/v2/") => {
            let mut segments = p.rsplit('/');
            match segments.nth(1) {
                Some("manifests") => "manifests",
                Some("blobs") => "blobs",
                _ => "other",
            }
        }
        _ => "other",
    }
}
