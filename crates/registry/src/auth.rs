//! Enforced registry access (`speil run --basic-auth-file`): every request except the health
//! endpoints must carry the cluster's credentials, or gets 401 with `WWW-Authenticate` and an
//! OCI error body, as the distribution spec has a registry ask for them. The 401 still names
//! the node (`X-Speil-Peer-Id`), which is no secret (the DHT publishes it), so a node can tell
//! that containerd's host files lead to itself without holding the credentials.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse as _, Response};

use crate::Registry;
use crate::error::ApiError;
use crate::handlers::PEER_ID_HEADER;

/// The paths answered without credentials, and over the port's limits: the kubelet's probes.
pub const OPEN_PATHS: [&str; 2] = ["/readyz", "/livez"];

/// Lets a request through when the registry needs no credentials, the path is a health
/// endpoint, or the request carries the credentials; answers 401 otherwise.
pub(crate) async fn require(
    State(state): State<Arc<Registry>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(auth) = &state.basic_auth else {
        return next.run(req).await;
    };
    let presented = req.headers().get(header::AUTHORIZATION);
    if OPEN_PATHS.contains(&req.uri().path())
        || presented.is_some_and(|v| auth.accepts(v.as_bytes()))
    {
        return next.run(req).await;
    }
    tracing::debug!(
        path = req.uri().path(),
        credentials = if presented.is_some() { "wrong" } else { "none" },
        "refused a request without the registry's credentials"
    );
    let mut response = ApiError::Unauthorized.into_response();
    if let Some(id) = &state.peer_id {
        response
            .headers_mut()
            .insert(HeaderName::from_static(PEER_ID_HEADER), id.clone());
    }
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(r#"Basic realm="speil""#),
    );
    response
}
