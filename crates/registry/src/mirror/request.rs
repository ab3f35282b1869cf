//! The request a node sends to a peer for a client's request: the same distribution path with
//! the registry in `?ns=`, the client's `Accept` and `Range`, and the mark that keeps it to one
//! hop ([`MIRRORED_HEADER`]).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use oci::{Digest, DistributionPath, Kind, Reference};

/// The header that marks a request as sent by another Speil node.
pub const MIRRORED_HEADER: &str = "x-speil-mirrored";

/// What one request to one peer must be.
#[derive(Clone)]
pub(crate) struct PeerRequest {
    pub(super) method: Method,
    /// `/v2/<repository>/<kind>/<reference>?ns=<registry>`.
    pub(super) path_and_query: String,
    /// The full reference asked for, `registry/repository:tag` or `registry/repository@digest`.
    pub(super) reference: String,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) kind: Kind,
    /// The digest the answer must have, when the reference is a digest.
    pub(super) digest: Option<Digest>,
    /// Whether a `Range` was asked for (the answer must then be 206).
    pub(super) ranged: bool,
}

impl PeerRequest {
    /// The request for `path` (a HEAD when `head`), carrying on the client's `headers` that
    /// matter to a peer.
    pub(super) fn new(path: &DistributionPath, head: bool, headers: &HeaderMap) -> PeerRequest {
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
        request
    }
}
