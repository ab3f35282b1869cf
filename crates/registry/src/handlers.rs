//! The handlers: API version check, health, and GET/HEAD of manifests and blobs.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt as _;
use oci::{ByteRange, Digest, DistributionPath, Kind, RangeParse, Reference};

use crate::Registry;
use crate::error::ApiError;
use crate::metrics::Outcome;
use crate::mirror::{MIRRORED_HEADER, SOURCE_HEADER};

const API_VERSION: (&str, &str) = ("docker-distribution-api-version", "registry/2.0");
/// The header of `GET /v2/` that names the answering node's peer id.
pub const PEER_ID_HEADER: &str = "x-speil-peer-id";

/// `GET /v2/`: tells clients this is a registry speaking the distribution API, and which node
/// answers (so a node can tell whether containerd's host files lead to itself).
pub(crate) async fn api_version(State(state): State<Arc<Registry>>) -> Response {
    let mut response = (
        [
            API_VERSION,
            (header::CONTENT_TYPE.as_str(), "application/json"),
        ],
        "{}",
    )
        .into_response();
    if let Some(id) = &state.peer_id {
        response
            .headers_mut()
            .insert(HeaderName::from_static(PEER_ID_HEADER), id.clone());
    }
    response
}

/// `GET /livez`: the process is up and its HTTP server answers.
pub(crate) async fn livez() -> &'static str {
    "ok\n"
}

/// `GET /readyz`: 200 when the node should receive traffic, 503 with the reason otherwise.
pub(crate) async fn readyz(State(state): State<Arc<Registry>>) -> Response {
    match (state.readiness)() {
        Ok(()) => "ok\n".into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

/// Every other path: manifests and blobs under `/v2/`, and a 404 with an OCI body for the rest.
///
/// Local content first; on a miss, peers through the mirror, unless the request itself came
/// from a peer (one hop only), the registry is not mirrored, or a filter excludes the reference.
pub(crate) async fn distribution(
    State(state): State<Arc<Registry>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if !uri.path().starts_with("/v2/") {
        return Err(ApiError::NoRoute);
    }
    let head = match method {
        Method::GET => false,
        Method::HEAD => true,
        _ => return Err(ApiError::MethodNotAllowed),
    };
    let path = DistributionPath::parse(uri.path(), uri.query())?;
    let registry = path.registry.as_str();
    let unknown = || ApiError::Unknown {
        kind: path.kind,
        reference: path.reference.to_string(),
    };
    let from_peer = headers.get(MIRRORED_HEADER).is_some();
    if !state.filters.serves(&path.registry) {
        state.metrics.content_request(registry, false);
        state.metrics.answered(from_peer, Outcome::NotFound);
        return Err(unknown());
    }
    let local = match serve_local(&state, &path, head, &headers).await? {
        Some(response) => Some((response, "local")),
        // Only a peer is served a download under way: the node's own containerd would wait
        // on the very download it asks for.
        None if from_peer => serve_in_flight(&state, &path, head, &headers)
            .await?
            .map(|r| (r, "in-flight")),
        None => None,
    };
    if let Some((mut response, source)) = local {
        state.metrics.content_request(registry, true);
        state.metrics.answered(from_peer, Outcome::Local);
        response.headers_mut().insert(
            HeaderName::from_static(SOURCE_HEADER),
            HeaderValue::from_static(source),
        );
        return Ok(response);
    }
    let result = match &state.mirror {
        Some(mirror) if !from_peer && !state.filters.excludes(&path.full_reference()) => {
            mirror.serve(&path, head, &headers).await
        }
        _ => Err(unknown()),
    };
    state.metrics.content_request(registry, result.is_ok());
    let outcome = if result.is_ok() {
        Outcome::Peer
    } else {
        Outcome::NotFound
    };
    state.metrics.answered(from_peer, outcome);
    result
}

/// The answer from this node's own store; `None` when the store does not hold the content.
async fn serve_local(
    state: &Registry,
    path: &DistributionPath,
    head: bool,
    headers: &HeaderMap,
) -> Result<Option<Response>, ApiError> {
    let digest: Digest = match &path.reference {
        Reference::Digest(d) => d.clone(),
        Reference::Tag(_) => match state.store.resolve(&path.full_reference()).await? {
            Some(d) => d,
            None => return Ok(None),
        },
    };
    let Some(content) = state.store.open(&digest, path.kind).await? else {
        return Ok(None);
    };
    if path.kind == Kind::Manifest && !content.is_manifest() {
        // A blob asked for as a manifest: this node knows what it is; no peer would differ.
        return Err(ApiError::Unknown {
            kind: path.kind,
            reference: path.reference.to_string(),
        });
    }
    serve_content(state, path, &digest, content, head, headers, false).await
}

/// A blob a peer asks for while this node's containerd is still downloading it, served as it
/// is written (see `store::follow`); `None` when no such download is under way.
async fn serve_in_flight(
    state: &Registry,
    path: &DistributionPath,
    head: bool,
    headers: &HeaderMap,
) -> Result<Option<Response>, ApiError> {
    let (Reference::Digest(digest), Kind::Blob) = (&path.reference, path.kind) else {
        return Ok(None);
    };
    let Some(content) = state.store.open_in_flight(digest).await? else {
        return Ok(None);
    };
    state.metrics.in_flight_served();
    serve_content(state, path, digest, content, head, headers, true).await
}

/// The answer with `content` opened from this node's store, whole or the range `headers` ask
/// for; `None` when the content went away since it was opened.
async fn serve_content(
    state: &Registry,
    path: &DistributionPath,
    digest: &Digest,
    content: store::Content,
    head: bool,
    headers: &HeaderMap,
    in_flight: bool,
) -> Result<Option<Response>, ApiError> {
    let range = requested_range(path.kind, headers, content.size)?;
    let length = range.map_or(content.size, |(first, last)| last - first + 1);
    let builder = local_headers(path.kind, digest, &content, range, length);
    let body = if head {
        Body::empty()
    } else {
        let Some(stream) = content.stream(range).await? else {
            return Ok(None);
        };
        let served = state
            .metrics
            .bytes_counter(if in_flight { "in_flight" } else { "local" });
        let stream = stream.inspect_ok(move |b| {
            served.inc_by(b.len() as u64);
        });
        if in_flight {
            let metrics = state.metrics.in_flight.clone();
            Body::from_stream(stream.inspect_err(move |e| metrics.ended_early(e)))
        } else {
            Body::from_stream(stream)
        }
    };
    let mut response = builder.body(body).expect("headers built from valid values");
    if head {
        // axum drops the body of a HEAD response but must keep the length of the GET.
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    Ok(Some(response))
}

/// The inclusive byte range a blob request asks for, resolved against the content's `size`;
/// `None` for the whole content (manifests are always whole).
fn requested_range(
    kind: Kind,
    headers: &HeaderMap,
    size: u64,
) -> Result<Option<(u64, u64)>, ApiError> {
    let header = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    match (kind, header) {
        (Kind::Blob, Some(h)) => match ByteRange::parse(h) {
            RangeParse::Single(r) => r
                .resolve(size)
                .map(Some)
                .map_err(|e| ApiError::RangeNotSatisfiable { size: e.size }),
            RangeParse::Ignore => Ok(None),
        },
        _ => Ok(None),
    }
}

/// The status and headers of a local answer: `length` bytes of `content`, or of its `range`.
fn local_headers(
    kind: Kind,
    digest: &Digest,
    content: &store::Content,
    range: Option<(u64, u64)>,
    length: u64,
) -> axum::http::response::Builder {
    let content_type = match kind {
        Kind::Manifest => content.media_type.clone().unwrap_or_default(),
        Kind::Blob => oci::media_type::OCTET_STREAM.to_owned(),
    };
    let mut builder = Response::builder()
        .status(if range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, length)
        .header("docker-content-digest", digest.to_string())
        .header(header::ETAG, format!("\"{digest}\""))
        .header(API_VERSION.0, API_VERSION.1);
    if kind == Kind::Blob {
        builder = builder.header(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    if let Some((first, last)) = range {
        builder = builder.header(
            header::CONTENT_RANGE,
            format!("bytes {first}-{last}/{}", content.size),
        );
    }
    builder
}
