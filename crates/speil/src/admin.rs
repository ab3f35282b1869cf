//! The admin server on `--metrics-addr`: `/metrics`, `/status` (this node's P2P status as JSON)
//! and `/debug/lookup?key=…` (who provides a content key, as this node finds them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;

/// How long `/debug/lookup` waits for providers.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

struct Admin {
    metrics: Registry,
    router: p2p::Router,
}

/// The admin routes over the metrics `registry` and the P2P `router`.
pub(crate) fn router(metrics: Registry, router: p2p::Router) -> axum::Router {
    axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/status", get(status))
        .route("/debug/lookup", get(lookup))
        .with_state(Arc::new(Admin { metrics, router }))
}

async fn metrics_handler(State(admin): State<Arc<Admin>>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &admin.metrics) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn status(State(admin): State<Arc<Admin>>) -> Response {
    let status = admin.router.status();
    let peers = admin.router.peers().await;
    Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "p2p": status,
        "peers": peers,
    }))
    .into_response()
}

async fn lookup(
    State(admin): State<Arc<Admin>>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let Some(key) = params
        .get("key")
        .filter(|k| !k.is_empty() && k.len() <= 512)
    else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "expected ?key=<digest or registry/repository:tag>"})),
        )
            .into_response();
    };
    let started = Instant::now();
    let mut found = admin.router.lookup(key).await;
    let mut providers = Vec::new();
    let deadline = tokio::time::sleep(LOOKUP_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            p = found.recv() => match p {
                Some(p) => providers.push(json!({
                    "peer": p.peer.to_string(),
                    "addrs": p.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "after_ms": started.elapsed().as_secs_f64() * 1000.0,
                })),
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    Json(json!({
        "key": key,
        "providers": providers,
        "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
    }))
    .into_response()
}
