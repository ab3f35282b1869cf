//! HTTP bootstrap: a node serves its peer id and addresses as JSON at `/id`
//! (`--http-bootstrap-addr`); others read candidates from such a URL (`--http-bootstrap-url`).

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::source::DiscoveryError;
use crate::messages::Candidate;

/// The largest `/id` document read.
const MAX_DOCUMENT: usize = 64 * 1024;
/// How long a bootstrap URL may take to answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// The `/id` document: who this node is and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdDocument {
    /// The peer id.
    pub id: PeerId,
    /// The router's addresses, without `/p2p/`.
    pub addrs: Vec<Multiaddr>,
}

/// Serves `/id` on `listener` until `shutdown`, from the addresses `doc` holds at each request.
pub(crate) async fn serve(
    listener: TcpListener,
    doc: watch::Receiver<IdDocument>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let doc = Arc::new(doc);
    let router = axum::Router::new().route(
        "/id",
        get(move || {
            let doc = doc.clone();
            async move { Json(doc.borrow().clone()) }
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Reads candidates from a `/id` URL.
pub(crate) async fn candidates(url: &str) -> Result<Vec<Candidate>, DiscoveryError> {
    let fail = |reason: String| DiscoveryError::Http {
        url: url.to_owned(),
        reason,
    };
    let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("not a URL: {e}")))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(TIMEOUT, client.get(uri))
        .await
        .map_err(|_| fail(format!("no answer within {TIMEOUT:?}")))?
        .map_err(|e| fail(e.to_string()))?;
    if !response.status().is_success() {
        return Err(fail(format!("answered {}", response.status())));
    }
    let body = tokio::time::timeout(
        TIMEOUT,
        Limited::new(response.into_body(), MAX_DOCUMENT).collect(),
    )
    .await
    .map_err(|_| fail("body not sent in time".into()))?
    .map_err(|e| fail(format!("reading the body: {e}")))?
    .to_bytes();
    let doc: IdDocument = serde_json::from_slice(&body)
        .map_err(|e| fail(format!("expected {{\"id\": …, \"addrs\": […]}}: {e}")))?;
    Ok(doc
        .addrs
        .into_iter()
        .map(|addr| Candidate {
            peer: Some(doc.id),
            ..Candidate::from_multiaddr(addr)
        })
        .collect())
}
