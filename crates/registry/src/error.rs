//! The one place where failures become HTTP responses with OCI error bodies.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oci::{ErrorBody, ErrorCode, Kind, PathError};
use serde_json::json;

/// A limit of the registry port, over which a request is answered 503 at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Requests being answered at once.
    Requests,
    /// Open connections.
    Connections,
    /// Requests this node forwards to peers at once.
    MirrorTransfers,
}

impl Limit {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::Connections => "connections",
            Limit::MirrorTransfers => "mirror_transfers",
        }
    }
}

/// What a client over a limit is told to wait before asking again, in seconds.
const RETRY_AFTER_SECS: &str = "1";

/// Why a registry request was not answered with content.
#[derive(Debug)]
pub enum ApiError {
    /// The path is not a distribution API path.
    NoRoute,
    /// The path's name, tag or digest is malformed.
    BadPath(PathError),
    /// The content is not here.
    Unknown {
        /// Manifest or blob.
        kind: Kind,
        /// What was asked for, as the client wrote it.
        reference: String,
    },
    /// A `Range` the content cannot satisfy.
    RangeNotSatisfiable {
        /// The content's size.
        size: u64,
    },
    /// A method the pull-only registry does not support.
    MethodNotAllowed,
    /// The request lacks the registry's credentials (`--basic-auth-file`).
    Unauthorized,
    /// The node is at one of its limits: 503 with `Retry-After`, so containerd moves on to the
    /// next host (upstream) at once instead of waiting.
    Busy(Limit),
    /// The store failed; logged, and never caused by the request.
    Store(store::Error),
}

impl ApiError {
    fn parts(&self) -> (StatusCode, ErrorCode, String, serde_json::Value) {
        match self {
            ApiError::NoRoute => (
                StatusCode::NOT_FOUND,
                ErrorCode::NameUnknown,
                "not a distribution API path: Speil serves GET and HEAD of \
                 /v2/<name>/manifests/<reference> and /v2/<name>/blobs/<digest>"
                    .to_owned(),
                serde_json::Value::Null,
            ),
            ApiError::BadPath(e) => {
                let code = match e {
                    PathError::NotFound => ErrorCode::NameUnknown,
                    PathError::Digest(_) => ErrorCode::DigestInvalid,
                    PathError::Tag(_) => ErrorCode::ManifestInvalid,
                    PathError::Name(_) | PathError::TooLong => ErrorCode::NameInvalid,
                };
                let status = match e {
                    PathError::NotFound => StatusCode::NOT_FOUND,
                    _ => StatusCode::BAD_REQUEST,
                };
                (status, code, e.to_string(), serde_json::Value::Null)
            }
            ApiError::Unknown { kind, reference } => {
                let code = match kind {
                    Kind::Manifest => ErrorCode::ManifestUnknown,
                    Kind::Blob => ErrorCode::BlobUnknown,
                };
                let what = match kind {
                    Kind::Manifest => "manifest",
                    Kind::Blob => "blob",
                };
                (
                    StatusCode::NOT_FOUND,
                    code,
                    format!("{what} unknown to this node"),
                    json!({ "reference": reference }),
                )
            }
            ApiError::RangeNotSatisfiable { size } => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                ErrorCode::SizeInvalid,
                format!("range not satisfiable for content of {size} bytes"),
                json!({ "size": size }),
            ),
            ApiError::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::Unsupported,
                "Speil is a read-only mirror: only GET and HEAD are supported".to_owned(),
                serde_json::Value::Null,
            ),
            ApiError::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                ErrorCode::Unauthorized,
                "this node's registry needs credentials: containerd sends them when its host \
                 files were written by `speil configure --basic-auth-file` with the same file"
                    .to_owned(),
                serde_json::Value::Null,
            ),
            ApiError::Busy(limit) => (
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::TooManyRequests,
                match limit {
                    Limit::Requests => "this node answers as many requests as it may at once",
                    Limit::Connections => "this node has as many connections open as it may",
                    Limit::MirrorTransfers => {
                        "this node forwards as many requests to peers as it may at once"
                    }
                }
                .to_owned()
                    + "; try again later, or another host",
                json!({ "limit": limit.as_str() }),
            ),
            ApiError::Store(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Unknown,
                "the content store failed; see the node's log".to_owned(),
                serde_json::Value::Null,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Store(e) = &self {
            tracing::warn!(error = %e, "content store failed while serving a request");
        }
        let (status, code, message, detail) = self.parts();
        let body = ErrorBody::new(code, message, detail).to_json();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        match self {
            ApiError::RangeNotSatisfiable { size } => {
                let v = HeaderValue::from_str(&format!("bytes */{size}"))
                    .expect("a number is a valid header value");
                headers.insert(header::CONTENT_RANGE, v);
            }
            ApiError::MethodNotAllowed => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            ApiError::Busy(_) => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            _ => {}
        }
        response
    }
}

impl From<store::Error> for ApiError {
    fn from(e: store::Error) -> Self {
        ApiError::Store(e)
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        ApiError::BadPath(e)
    }
}
