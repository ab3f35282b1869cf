//! Speil's HTTP side: the pull half of the OCI distribution API (`/v2/…`), health endpoints,
//! and the mapping of every failure to an OCI error body, served from a [`store::ContentStore`].

mod auth;
mod error;
mod filter;
pub(crate) mod handlers;
mod held;
mod in_flight;
mod metrics;
pub mod mirror;
mod server;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use axum::routing::get;
use store::ContentStore;

pub use auth::OPEN_PATHS;
pub use error::{ApiError, Limit};
pub use filter::{FilterError, Filters};
pub use handlers::PEER_ID_HEADER;
pub use metrics::{Activity, LastMirror, Metrics};
pub use mirror::Mirror;
pub use server::{Bounds, REJECTING, Server, serve};

/// Answers whether the node is ready for traffic, and if not, why (shown by `/readyz`).
pub type Readiness = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// Everything the registry's handlers share.
pub struct Registry {
    store: Arc<dyn ContentStore>,
    metrics: Metrics,
    readiness: Readiness,
    mirror: Option<Mirror>,
    filters: Filters,
    peer_id: Option<axum::http::HeaderValue>,
    basic_auth: Option<oci::BasicAuth>,
}

impl Registry {
    /// A registry serving `store`, counting into `metrics`, ready whenever `readiness` says so.
    /// It serves local content only until [`Registry::with_mirror`] adds peers.
    pub fn new(store: Arc<dyn ContentStore>, metrics: Metrics, readiness: Readiness) -> Self {
        Registry {
            store,
            metrics,
            readiness,
            mirror: None,
            filters: Filters::default(),
            peer_id: None,
            basic_auth: None,
        }
    }

    /// Answers only requests that carry `credentials` (the health endpoints excepted).
    pub fn with_basic_auth(mut self, credentials: Option<oci::BasicAuth>) -> Self {
        self.basic_auth = credentials;
        self
    }

    /// Names this node in `GET /v2/` answers (header [`PEER_ID_HEADER`]).
    pub fn with_peer_id(mut self, peer_id: &p2p::PeerId) -> Self {
        self.peer_id = axum::http::HeaderValue::try_from(peer_id.to_string()).ok();
        self
    }

    /// Serves local misses from peers through `mirror`.
    pub fn with_mirror(mut self, mirror: Mirror) -> Self {
        self.mirror = Some(mirror);
        self
    }

    /// Limits what is served by `filters`.
    pub fn with_filters(mut self, filters: Filters) -> Self {
        self.filters = filters;
        self
    }

    /// The HTTP routes: `/v2/…`, `/readyz`, `/livez`; everything else is a 404 with an OCI body.
    pub fn router(self) -> Router {
        let state = Arc::new(self);
        Router::new()
            .route("/v2", get(handlers::api_version))
            .route("/v2/", get(handlers::api_version))
            .route("/readyz", get(handlers::readyz))
            .route("/livez", get(handlers::livez))
            .fallback(handlers::distribution)
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                auth::require,
            ))
            .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
            .with_state(state)
    }
}

/// Counts every request by handler, method and status, and times it to its response headers.
async fn observe(State(state): State<Arc<Registry>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let handler = metrics::handler_of(req.uri().path());
    let response = next.run(req).await;
    state
        .metrics
        .observe(handler, &method, response.status(), started.elapsed());
    response
}
