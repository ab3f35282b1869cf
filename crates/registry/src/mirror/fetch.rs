//! Asking one peer: sending a request to its addresses in turn, and checking what comes back
//! before anything reaches the client (status, digest headers, a manifest's bytes, a blob's
//! length). A blob's body is streamed and verified by `transfer.rs`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper::body::Incoming;
use oci::Digest;
use p2p::Provider;

use super::peers::registry_addrs;
use super::request::PeerRequest;
use super::shared::{Failure, HEADER_TIMEOUT, Inner};

/// A blob answer whose headers passed the checks; its body is still to come.
pub(super) struct BlobHead {
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) body: Incoming,
}

impl BlobHead {
    fn from_parts(parts: http::response::Parts, body: Incoming) -> BlobHead {
        BlobHead {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

impl Inner {
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
            if let Some(authorization) = &self.authorization {
                builder = builder.header(header::AUTHORIZATION, authorization);
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
    pub(super) async fn head(
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
    pub(super) async fn manifest(
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
    pub(super) async fn blob_headers(
        self: Arc<Self>,
        provider: Provider,
        request: PeerRequest,
    ) -> Result<BlobHead, Failure> {
        let response = self.send(&provider, &request, None).await?;
        let (parts, body) = response.into_parts();
        check_status(parts.status, &request)?;
        if let Some(size) = unsatisfiable(parts.status, &parts.headers) {
            size?;
            return Ok(BlobHead::from_parts(parts, body));
        }
        check_digest(&parts.headers, request.digest.as_ref())?;
        if parts.headers.get(header::CONTENT_LENGTH).is_none() {
            return Err(Failure::BadResponse);
        }
        Ok(BlobHead::from_parts(parts, body))
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
pub(super) fn unsatisfiable(
    status: StatusCode,
    headers: &HeaderMap,
) -> Option<Result<u64, Failure>> {
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

pub(super) fn build(status: StatusCode, from: &HeaderMap, body: Body) -> Response {
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
