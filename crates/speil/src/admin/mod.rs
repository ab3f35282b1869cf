//! The admin server on `--metrics-addr`: `/metrics`, `/status` (the status document, made in
//! `node.rs`), `/debug/lookup?key=…` (who provides a content key, as this node finds them) and,
//! with `--debug-web`, the debug page under `/debug/web/` (`debug_web.rs`).

mod debug_web;
mod node;
mod providers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::status::Doc;
pub(crate) use node::{Admin, ContainerdSide};

/// How long `/debug/lookup` waits for providers.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// The admin routes.
pub(crate) fn router(admin: Admin) -> axum::Router {
    let debug_web = admin.debug_web;
    let admin = Arc::new(admin);
    let mut router = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/status", get(status_handler))
        .route("/debug/lookup", get(lookup));
    if debug_web {
        router = router.merge(debug_web::routes());
    }
    router.with_state(admin)
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

async fn status_handler(State(admin): State<Arc<Admin>>) -> Json<Doc> {
    Json(admin.status().await)
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
    let started = std::time::Instant::now();
    let providers: Vec<_> = providers::collect(&admin.router, key, LOOKUP_TIMEOUT)
        .await
        .into_iter()
        .map(|f| {
            json!({
                "peer": f.provider.peer.to_string(),
                "addrs": f.provider.addrs.iter().map(ToString::to_string).collect::<Vec<_>>(),
                "after_ms": f.after.as_secs_f64() * 1000.0,
            })
        })
        .collect();
    Json(json!({
        "key": key,
        "providers": providers,
        "elapsed_ms": started.elapsed().as_secs_f64() * 1000.0,
    }))
    .into_response()
}
