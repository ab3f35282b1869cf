//! What the mirror's parts share: the configuration, why a peer failed a request, and the
//! state every request reads ([`Inner`]: the router, the HTTP client, the peers' quarantine and
//! load), with the two things every part does with it: note a success, record a failure. The
//! parts (`race.rs`, `fetch.rs`, `transfer.rs`) import from here, and `mod.rs` from them, so
//! imports point one way.

use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use p2p::{PeerId, Provider};

use super::claims::{Claims, InFlight};
use super::load::Load;
use super::peers::Peers;
use super::request::PeerRequest;
use crate::metrics::Metrics;

/// The response header that says where content came from: `local` (this node's store) or
/// `peer <peer id>`. The debug page's measure action reads it.
pub const SOURCE_HEADER: &str = "x-speil-source";
/// How long a peer may take to send response headers.
pub(super) const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long fetching a manifest or answering a HEAD may take in all, across every peer tried.
pub(super) const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a blob transfer may go without a byte before the peer counts as failed.
pub(super) const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How the mirror behaves; the binary fills it from `--mirror-*` flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// The port peers' registries listen on (the same as this node's in a DaemonSet).
    pub peer_port: u16,
    /// How long connecting to one peer address may take.
    pub connect_timeout: Duration,
    /// How long to wait for the first provider before answering 404.
    pub resolve_timeout: Duration,
    /// Most peers tried for one request (and for resuming one blob).
    pub resolve_retries: usize,
    /// How long a peer that failed stays out of every request.
    pub quarantine: Duration,
    /// Whether tags are resolved through peers (`registry/repository:tag` keys).
    pub resolve_tags: bool,
    /// The credentials peers' registries require (`--basic-auth-file`; the same on every node).
    pub basic_auth: Option<oci::BasicAuth>,
    /// Requests forwarded to peers at once (`--mirror-max-transfers`); one more is answered 503,
    /// and containerd goes upstream.
    pub max_transfers: usize,
    /// Sharing downloads under way (see `claims.rs`); `None` sends containerd upstream on
    /// every miss.
    pub in_flight: Option<InFlight>,
}

/// Why one peer did not serve a request, as a metrics label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No address of the peer accepted a connection in time.
    Connect,
    /// Headers or body did not arrive in time.
    Timeout,
    /// The peer answered with an unexpected status (404 for content it advertised, 5xx).
    Status,
    /// The answer's headers did not fit the request (digest, length, range).
    BadResponse,
    /// The bytes did not match their digest.
    DigestMismatch,
    /// The body broke off.
    Body,
}

impl Failure {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Status => "status",
            Failure::BadResponse => "bad_response",
            Failure::DigestMismatch => "digest_mismatch",
            Failure::Body => "body",
        }
    }
}

pub(crate) struct Inner {
    pub(super) router: p2p::Router,
    /// A slot per request forwarded to peers, held until its response body is done.
    pub(super) transfers: std::sync::Arc<tokio::sync::Semaphore>,
    pub(super) client: Client<HttpConnector, Empty<Bytes>>,
    /// The `Authorization` header sent to peers, made once from `config.basic_auth`.
    pub(super) authorization: Option<HeaderValue>,
    pub(super) config: Config,
    pub(super) peers: Peers,
    pub(super) load: Load,
    pub(super) metrics: Metrics,
    /// This node's store: whether its containerd is downloading what it asks for.
    pub(super) store: std::sync::Arc<dyn store::ContentStore>,
    pub(super) claims: Claims,
}

/// The [`SOURCE_HEADER`] of content from `peer`.
pub(super) fn source_header(peer: &PeerId) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(SOURCE_HEADER),
        HeaderValue::try_from(format!("peer {peer}")).expect("a peer id is a valid header value"),
    )
}

impl Inner {
    /// Notes a completed small response from `provider` and marks where it came from.
    pub(super) fn succeeded(
        &self,
        mut response: Response,
        provider: &Provider,
        request: &PeerRequest,
    ) -> Response {
        self.metrics
            .mirror_succeeded(&provider.peer, &request.reference);
        let (name, value) = source_header(&provider.peer);
        response.headers_mut().insert(name, value);
        response
    }

    /// Records a failed peer: counted, quarantined, and (for corrupt content) a WARN line.
    pub(crate) fn failed(&self, provider: &Provider, failure: Failure) {
        self.metrics.peer_failure(failure.as_str());
        self.peers.quarantine(provider.peer);
        if failure == Failure::DigestMismatch {
            tracing::warn!(
                peer = %provider.peer,
                addrs = ?provider.addrs,
                quarantine = ?self.config.quarantine,
                "a peer served content that does not match its digest; quarantined"
            );
        } else {
            tracing::debug!(peer = %provider.peer, reason = failure.as_str(), "peer failed; quarantined");
        }
    }
}
