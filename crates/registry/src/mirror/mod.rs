//! Mirroring from peers: on a local miss, find the nodes that provide the content in the DHT and
//! proxy the request to one of them, hedging against slow peers, quarantining bad ones, resuming
//! a blob from another peer when one fails mid-way, and verifying every byte against its digest.
//!
//! A request Speil sends to a peer carries `X-Speil-Mirrored: true`; a node answers such a
//! request from its own store only, so a request never travels more than one hop.

mod claims;
mod fetch;
mod load;
mod peers;
mod race;
mod request;
mod shared;
mod transfer;
mod verify;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oci::{DistributionPath, Kind, Reference};
use p2p::Provider;
use tokio::sync::mpsc;

use crate::error::{ApiError, Limit};
use crate::metrics::Metrics;
pub use claims::InFlight;
use peers::Peers;
pub use request::MIRRORED_HEADER;
use request::PeerRequest;
pub use shared::{Config, SOURCE_HEADER};
use shared::{Failure, HEADER_TIMEOUT, Inner, SMALL_REQUEST_TIMEOUT};

/// The mirror, shared by all requests. Cheap to clone.
#[derive(Clone)]
pub struct Mirror {
    inner: Arc<Inner>,
}

impl Mirror {
    /// A mirror looking up providers through `router`, for a node whose store is `store`.
    pub fn new(
        router: p2p::Router,
        store: Arc<dyn store::ContentStore>,
        config: Config,
        metrics: Metrics,
    ) -> Mirror {
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
                transfers: Arc::new(tokio::sync::Semaphore::new(config.max_transfers)),
                client,
                authorization,
                config,
                peers,
                load: load::Load::default(),
                metrics,
                store,
                claims: claims::Claims::default(),
            }),
        }
    }

    /// Until `shutdown`: withdraws the claims of downloads under way that are gone or
    /// stalled (see `claims.rs`). Spawned once per node.
    pub async fn sweep_claims(&self, shutdown: tokio_util::sync::CancellationToken) {
        self.inner.sweep_claims(shutdown).await;
    }

    /// Serves `path` from a peer: `Err(ApiError::Unknown)` when no peer has it in time,
    /// `Err(ApiError::Busy)` when as many requests as the configuration allows are forwarded
    /// already (counted until their bodies are done).
    pub(crate) async fn serve(
        &self,
        path: &DistributionPath,
        head: bool,
        headers: &HeaderMap,
    ) -> Result<Response, ApiError> {
        let Ok(slot) = self.inner.transfers.clone().try_acquire_owned() else {
            self.inner.metrics.rejected(Limit::MirrorTransfers);
            return Err(ApiError::Busy(Limit::MirrorTransfers));
        };
        let response = self.forward(path, head, headers).await?;
        Ok(crate::held::hold(response, slot))
    }

    /// [`Mirror::serve`] within a transfer slot.
    async fn forward(
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
        let mut ready = race::first_usable(
            &inner.peers,
            &inner.load,
            &mut found,
            inner.config.resolve_timeout,
        )
        .await;
        inner.metrics.resolved(started.elapsed());
        if ready.is_none()
            && let (Reference::Digest(digest), Kind::Blob, false) =
                (&path.reference, path.kind, head)
            && let Some(downloading) = inner.in_flight_sources(digest).await
        {
            found = downloading;
            let wait = inner.config.resolve_timeout;
            ready = race::first_usable(&inner.peers, &inner.load, &mut found, wait).await;
        }
        let Some(ready) = ready else {
            tracing::debug!(%key, "no peer provides this");
            return Err(unknown());
        };

        let request = PeerRequest::new(path, head, headers);
        match (path.kind, head) {
            (_, true) => self
                .small(ready, found, request, |i, p, r| i.head(p, r))
                .await
                .ok_or_else(unknown),
            (Kind::Manifest, false) => self
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

    /// A HEAD answer or a manifest (`ask`) from the first peer that gives a good one within
    /// [`SMALL_REQUEST_TIMEOUT`].
    async fn small<F, Fut>(
        &self,
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
            self.inner.race(ready, &mut found, |p| {
                ask(self.inner.clone(), p, request.clone())
            }),
        )
        .await
        .ok()??;
        Some(self.inner.succeeded(won.value, &won.provider, &request))
    }
}
