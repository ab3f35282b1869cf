//! Mirroring from peers: on a local miss, find the nodes that provide the content in the DHT and
//! proxy the request to one of them, hedging against slow peers, quarantining bad ones, resuming
//! a blob from another peer when one fails mid-way, and verifying every byte against its digest.
//!
//! A request Speil sends to a peer carries `X-Speil-Mirrored: true`; a node answers such a
//! request from its own store only, so a request never travels more than one hop.

mod fetch;
mod load;
mod peers;
mod race;
mod request;
mod transfer;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oci::{DistributionPath, Kind, Reference};
use p2p::{PeerId, Provider};
use tokio::sync::mpsc;

use crate::error::ApiError;
use crate::metrics::Metrics;
use peers::Peers;
use request::PeerRequest;

/// The header that marks a request as sent by another Speil node.
pub const MIRRORED_HEADER: &str = "x-speil-mirrored";
/// The response header that says where content came from: `local` (this node's store) or
/// `peer <peer id>`. The debug page's measure action reads it.
pub const SOURCE_HEADER: &str = "x-speil-source";
/// How long a peer may take to send response headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
/// How long fetching a manifest or answering a HEAD may take in all, across every peer tried.
const SMALL_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a blob transfer may go without a byte before the peer counts as failed.
const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

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

/// The mirror, shared by all requests.
pub struct Mirror {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    router: p2p::Router,
    client: Client<HttpConnector, Empty<Bytes>>,
    /// The `Authorization` header sent to peers, made once from `config.basic_auth`.
    authorization: Option<HeaderValue>,
    config: Config,
    peers: Peers,
    load: load::Load,
    metrics: Metrics,
}

impl Mirror {
    /// A mirror looking up providers through `router`.
    pub fn new(router: p2p::Router, config: Config, metrics: Metrics) -> Mirror {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        let peers = Peers::new(config.quarantine);
        let authorization = config
            .basic_auth
            .as_ref()
            .and_then(|a| HeaderValue::try_from(a.header_value()).ok())
            .map(|mut v| {
                v.set_sensitive(true);
                v
            });
        Mirror {
            inner: Arc::new(Inner {
                router,
                client,
                authorization,
                config,
                peers,
                load: load::Load::default(),
                metrics,
            }),
        }
    }

    /// Serves `path` from a peer: `Err(ApiError::Unknown)` when no peer has it in time.
    pub(crate) async fn serve(
        &self,
        path: &DistributionPath,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let unknown = || ApiError::Unknown {
            kind: path.kind,
            reference: path.reference.to_string(),
        };
        let inner = &self.inner;
        let key = match &path.reference {
            Reference::Digest(d) => d.to_string(),
            Reference::Tag(_) if inner.config.resolve_tags => path.full_reference(),
            Reference::Tag(_) => return Err(unknown()),
        };

        let started = Instant::now();
        let mut found = inner.router.lookup(&key).await;
        let ready = race::first_usable(
            &inner.peers,
            &inner.load,
            &mut found,
            inner.config.resolve_timeout,
        )
        .await;
        inner.metrics.resolved(started.elapsed());
        let Some(ready) = ready else {
            tracing::debug!(%key, "no peer provides this");
            return Err(unknown());
        };

        let request = PeerRequest::new(path, head, headers);
        match (path.kind, head) {
            (_, true) => inner
                .small(ready, found, request, |i, p, r| i.head(p, r))
                .await
                .ok_or_else(unknown),
            (Kind::Manifest, false) => inner
                .small(ready, found, request, |i, p, r| i.manifest(p, r))
                .await
                .ok_or_else(unknown),
            (Kind::Blob, false) => self.blob(ready, found, request).await.ok_or_else(unknown)?,
        }
    }

    /// A blob from the first peer whose headers pass, streamed on by `transfer.rs`.
    async fn blob(
        &self,
        ready: race::Ready,
        mut found: mpsc::Receiver<Provider>,
        request: PeerRequest,
    ) -> Option<Result<Response, ApiError>> {
        let inner = &self.inner;
        let won = tokio::time::timeout(
            HEADER_TIMEOUT + inner.config.connect_timeout,
            inner.race(ready, &mut found, |p| {
                inner.clone().blob_headers(p, request.clone())
            }),
        )
        .await
        .ok()??;
        if let Some(Ok(size)) = fetch::unsatisfiable(won.value.status, &won.value.headers) {
            return Some(Err(ApiError::RangeNotSatisfiable { size }));
        }
        Some(transfer::respond(inner.clone(), request, won, found))
    }
}

/// The [`SOURCE_HEADER`] of content from `peer`.
fn source_header(peer: &PeerId) -> (HeaderName, HeaderValue) {
    (
        HeaderName::from_static(SOURCE_HEADER),
        HeaderValue::try_from(format!("peer {peer}")).expect("a peer id is a valid header value"),
    )
}

impl Inner {
    /// A HEAD answer or a manifest (`ask`) from the first peer that gives a good one within
    /// [`SMALL_REQUEST_TIMEOUT`].
    async fn small<F, Fut>(
        self: &Arc<Self>,
        ready: race::Ready,
        mut found: mpsc::Receiver<Provider>,
        request: PeerRequest,
        ask: F,
    ) -> Option<Response>
    where
        F: Fn(Arc<Inner>, Provider, PeerRequest) -> Fut,
        Fut: Future<Output = Result<Response, Failure>> + Send + 'static,
    {
        let won = tokio::time::timeout(
            SMALL_REQUEST_TIMEOUT,
            self.race(ready, &mut found, |p| ask(self.clone(), p, request.clone())),
        )
        .await
        .ok()??;
        Some(self.succeeded(won.value, &won.provider, &request))
    }

    /// Notes a completed small response from `provider` and marks where it came from.
    fn succeeded(
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
