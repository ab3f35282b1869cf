//! HTTP bootstrap: a node serves its peer id and addresses as JSON at `/id`
//! (`--http-bootstrap-addr`); others read candidates from such a URL (`--http-bootstrap-url`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

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

/// Binds `addr` (`--http-bootstrap-addr`, failing at once if it cannot) and serves `/id` there
/// on `tasks` until `shutdown`: this node's peer id `id` and the addresses `listen_addrs` holds
/// at each request.
pub(crate) async fn start(
    addr: SocketAddr,
    id: PeerId,
    listen_addrs: watch::Receiver<Vec<Multiaddr>>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("--http-bootstrap-addr {addr}: {e}")))?;
    tasks.spawn(serve(listener, id, listen_addrs, shutdown));
    Ok(())
}

/// Serves `/id` on `listener` until `shutdown`.
async fn serve(
    listener: TcpListener,
    id: PeerId,
    listen_addrs: watch::Receiver<Vec<Multiaddr>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listen_addrs = Arc::new(listen_addrs);
    let router = axum::Router::new().route(
        "/id",
        get(move || {
            let addrs = listen_addrs.borrow().clone();
            async move { Json(IdDocument { id, addrs }) }
        }),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The client that asks an HTTP bootstrap source; the controller makes one and keeps it.
pub(crate) type HttpClient = Client<HttpConnector, Empty<Bytes>>;

/// A client for [`candidates`].
pub(crate) fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// Reads candidates from a `/id` URL with `client`.
pub(crate) async fn candidates(
    client: &HttpClient,
    url: &str,
) -> Result<Vec<Candidate>, DiscoveryError> {
    let fail = |reason: String| DiscoveryError::Http {
        url: url.to_owned(),
        reason,
    };
    let uri: hyper::Uri = url.parse().map_err(|e| fail(format!("not a URL: {e}")))?;
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
    document_candidates(&body)
        .map_err(|e| fail(format!("expected {{\"id\": …, \"addrs\": […]}}: {e}")))
}

/// The candidates a `/id` document names: each address with the document's peer id. Public so
/// that the fuzz targets (`crates/fuzz`) can feed it documents without an HTTP server.
pub fn document_candidates(body: &[u8]) -> Result<Vec<Candidate>, serde_json::Error> {
    let doc: IdDocument = serde_json::from_slice(body)?;
    Ok(doc
        .addrs
        .into_iter()
        .map(|addr| Candidate {
            peer: Some(doc.id),
            ..Candidate::from_multiaddr(addr)
        })
        .collect())
}
