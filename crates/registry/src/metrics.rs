//! The registry's metrics: requests by handler, method and status, their durations, and bytes
//! served.

use std::collections::HashSet;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
        Metrics {
            requests,
            durations,
            bytes,
            mirror_requests,
            registries: Arc::default(),
            last_success,
            resolve,
            peer_failures,
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

    pub(crate) fn mirror_succeeded(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_success.set(now);
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

    /// The counter of bytes served from `source`, to count a body as it streams.
    pub(crate) fn bytes_counter(&self, source: &'static str) -> Counter {
        self.bytes.get_or_create(&BytesLabels { source }).clone()
    }
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
