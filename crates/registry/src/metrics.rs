//! The registry's metrics: requests by handler, method and status, their durations, and bytes
//! served.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
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

/// Metrics of the HTTP registry.
#[derive(Clone)]
pub struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RequestLabels, Histogram>,
    bytes: Family<BytesLabels, Counter>,
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
        Metrics {
            requests,
            durations,
            bytes,
        }
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
