//! Mirroring from peers: on a local miss, find the nodes that provide the content in the DHT and
//! proxy the request to one of them, hedging against slow peers, quarantining bad ones, resuming
//! a blob from another peer when one fails mid-way, and verifying every byte against its digest.
//!
//! A request Speil sends to a peer carries `X-Speil-Mirrored: true`; a node answers such a
//! request from its own store only, so a request never travels more than one hop.

mod load;
mod peers;
mod race;
mod transfer;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oci::{Digest, DistributionPath, Kind, Reference};
use p2p::{PeerId, Provider};

use crate::error::ApiError;
use crate::metrics::Metrics;
use peers::{Peers, registry_addrs};

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
    config: Config,
    peers: Peers,
    load: load::Load,
    metrics: Metrics,
}

/// What one request to one peer must be.
#[derive(Clone)]
pub(crate) struct PeerRequest {
    method: Method,
    /// `/v2/<repository>/<kind>/<reference>?ns=<registry>`.
    path_and_query: String,
    /// The full reference asked for, `registry/repository:tag` or `registry/repository@digest`.
    reference: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    kind: Kind,
    /// The digest the answer must have, when the reference is a digest.
    digest: Option<Digest>,
    /// Whether a `Range` was asked for (the answer must then be 206).
    ranged: bool,
}

type Attempt<T> = Pin<Box<dyn Future<Output = (Provider, Result<T, Failure>)> + Send>>;

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
        Mirror {
            inner: Arc::new(Inner {
                router,
                client,
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

        let mut request = PeerRequest {
            method: if head { Method::HEAD } else { Method::GET },
            path_and_query: format!(
                "/v2/{}/{}/{}?ns={}",
                path.repository,
                path.kind.as_str(),
                path.reference,
                path.registry
            ),
            reference: path.full_reference(),
            headers: vec![(
                HeaderName::from_static(MIRRORED_HEADER),
                HeaderValue::from_static("true"),
            )],
            kind: path.kind,
            digest: match &path.reference {
                Reference::Digest(d) => Some(d.clone()),
                Reference::Tag(_) => None,
            },
            ranged: false,
        };
        if let Some(accept) = headers.get(header::ACCEPT) {
            request.headers.push((header::ACCEPT, accept.clone()));
        }
        if path.kind == Kind::Blob
            && let Some(range) = headers.get(header::RANGE)
        {
            request.headers.push((header::RANGE, range.clone()));
            request.ranged = true;
        }

        match (path.kind, head) {
            (_, true) => {
                let (response, provider, _) = tokio::time::timeout(
                    SMALL_REQUEST_TIMEOUT,
                    inner.race(ready, &mut found, |p| {
                        inner.clone().head(p, request.clone())
                    }),
                )
                .await
                .map_err(|_| unknown())?
                .ok_or_else(unknown)?;
                Ok(inner.succeeded(response, &provider, &request))
            }
            (Kind::Manifest, false) => {
                let (response, provider, _) = tokio::time::timeout(
                    SMALL_REQUEST_TIMEOUT,
                    inner.race(ready, &mut found, |p| {
                        inner.clone().manifest(p, request.clone())
                    }),
                )
                .await
                .map_err(|_| unknown())?
                .ok_or_else(unknown)?;
                Ok(inner.succeeded(response, &provider, &request))
            }
            (Kind::Blob, false) => {
                let ((status, response_headers, body), provider, rest) = tokio::time::timeout(
                    HEADER_TIMEOUT + inner.config.connect_timeout,
                    inner.race(ready, &mut found, |p| {
                        inner.clone().blob_headers(p, request.clone())
                    }),
                )
                .await
                .map_err(|_| unknown())?
                .ok_or_else(unknown)?;
                if let Some(Ok(size)) = unsatisfiable(status, &response_headers) {
                    return Err(ApiError::RangeNotSatisfiable { size });
                }
                transfer::respond(
                    inner.clone(),
                    request,
                    status,
                    response_headers,
                    body,
                    provider,
                    rest,
                    found,
                )
            }
        }
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

    /// Sends `request` to `provider`, trying each of its addresses, and returns the response
    /// headers (with body) once they arrive.
    pub(crate) async fn send(
        &self,
        provider: &Provider,
        request: &PeerRequest,
        extra: Option<(HeaderName, HeaderValue)>,
    ) -> Result<hyper::Response<Incoming>, Failure> {
        let addrs = registry_addrs(provider, self.config.peer_port);
        let mut failure = Failure::Connect;
        for addr in addrs {
            let uri = format!("http://{addr}{}", request.path_and_query);
            let mut builder = hyper::Request::builder()
                .method(request.method.clone())
                .uri(uri);
            for (k, v) in request.headers.iter().chain(extra.iter()) {
                builder = builder.header(k, v);
            }
            let Ok(req) = builder.body(Empty::new()) else {
                return Err(Failure::BadResponse);
            };
            let started = Instant::now();
            match tokio::time::timeout(HEADER_TIMEOUT, self.client.request(req)).await {
                Ok(Ok(response)) => {
                    self.peers.observe(started.elapsed());
                    return Ok(response);
                }
                Ok(Err(e)) if e.is_connect() => {
                    tracing::debug!(%addr, error = %e, "cannot connect to peer");
                    failure = Failure::Connect;
                }
                Ok(Err(e)) => {
                    tracing::debug!(%addr, error = %e, "peer request failed");
                    failure = Failure::Body;
                }
                Err(_) => failure = Failure::Timeout,
            }
        }
        Err(failure)
    }

    /// A HEAD answered by `provider`, with its headers checked.
    async fn head(
        self: Arc<Self>,
        provider: Provider,
        request: PeerRequest,
    ) -> Result<Response, Failure> {
        let response = self.send(&provider, &request, None).await?;
        let (parts, _) = response.into_parts();
        check_status(parts.status, &request)?;
        if let Some(size) = unsatisfiable(parts.status, &parts.headers) {
            size?;
            return Ok(build(parts.status, &parts.headers, Body::empty()));
        }
        check_digest(&parts.headers, request.digest.as_ref())?;
        Ok(build(parts.status, &parts.headers, Body::empty()))
    }

    /// A manifest from `provider`, verified against its digest before any byte is sent on.
    async fn manifest(
        self: Arc<Self>,
        provider: Provider,
        request: PeerRequest,
    ) -> Result<Response, Failure> {
        let response = self.send(&provider, &request, None).await?;
        let (parts, body) = response.into_parts();
        check_status(parts.status, &request)?;
        let claimed = header_digest(&parts.headers).ok_or(Failure::BadResponse)?;
        let expected = request.digest.clone().unwrap_or(claimed.clone());
        if claimed != expected {
            return Err(Failure::BadResponse);
        }
        let limit = oci::manifest::MAX_MANIFEST_SIZE as usize;
        let bytes = tokio::time::timeout(HEADER_TIMEOUT, Limited::new(body, limit).collect())
            .await
            .map_err(|_| Failure::Timeout)?
            .map_err(|_| Failure::Body)?
            .to_bytes();
        let mut hasher = expected.hasher();
        hasher.update(&bytes);
        if hasher.finish() != expected {
            return Err(Failure::DigestMismatch);
        }
        self.metrics
            .bytes_counter("peer")
            .inc_by(bytes.len() as u64);
        let mut headers = parts.headers;
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
        Ok(build(parts.status, &headers, Body::from(bytes)))
    }

    /// The response headers of a blob from `provider`, checked; the body streams later.
    async fn blob_headers(
        self: Arc<Self>,
        provider: Provider,
        request: PeerRequest,
    ) -> Result<(StatusCode, HeaderMap, Incoming), Failure> {
        let response = self.send(&provider, &request, None).await?;
        let (parts, body) = response.into_parts();
        check_status(parts.status, &request)?;
        if let Some(size) = unsatisfiable(parts.status, &parts.headers) {
            size?;
            return Ok((parts.status, parts.headers, body));
        }
        check_digest(&parts.headers, request.digest.as_ref())?;
        if parts.headers.get(header::CONTENT_LENGTH).is_none() {
            return Err(Failure::BadResponse);
        }
        Ok((parts.status, parts.headers, body))
    }
}

fn check_status(status: StatusCode, request: &PeerRequest) -> Result<(), Failure> {
    let expected = if request.ranged {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    // A range past the end is the client's mistake, answered by a peer that holds the blob:
    // passed on as the node would answer it itself (see `unsatisfiable`).
    if status == expected || (request.ranged && status == StatusCode::RANGE_NOT_SATISFIABLE) {
        Ok(())
    } else {
        Err(Failure::Status)
    }
}

/// The size a peer's 416 names in `Content-Range: bytes */<size>`; `None` when the answer is
/// not a 416 (a 416 without a size is a bad response).
fn unsatisfiable(status: StatusCode, headers: &HeaderMap) -> Option<Result<u64, Failure>> {
    (status == StatusCode::RANGE_NOT_SATISFIABLE).then(|| {
        headers
            .get(header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("bytes */"))
            .and_then(|size| size.parse().ok())
            .ok_or(Failure::BadResponse)
    })
}

fn header_digest(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// When the reference is a digest, the peer's `Docker-Content-Digest` must name it.
fn check_digest(headers: &HeaderMap, expected: Option<&Digest>) -> Result<(), Failure> {
    match (expected, header_digest(headers)) {
        (Some(want), Some(got)) if *want != got => Err(Failure::BadResponse),
        _ => Ok(()),
    }
}

/// The headers a mirrored answer passes on.
const PASSED_HEADERS: [HeaderName; 5] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::ACCEPT_RANGES,
    header::ETAG,
];

pub(crate) fn build(status: StatusCode, from: &HeaderMap, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for name in PASSED_HEADERS {
        if let Some(v) = from.get(&name) {
            headers.insert(name, v.clone());
        }
    }
    if let Some(v) = from.get("docker-content-digest") {
        headers.insert("docker-content-digest", v.clone());
    }
    headers.insert(
        "docker-distribution-api-version",
        HeaderValue::from_static("registry/2.0"),
    );
    response
}
