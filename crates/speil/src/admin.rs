//! The admin server on `--metrics-addr`: `/metrics`, `/status` (the status document, see
//! [`crate::status`]), `/debug/lookup?key=…` (who provides a content key, as this node finds
//! them) and, with `--debug-web`, the debug page under `/debug/web/`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use serde_json::json;
use store::ContentStore;

use crate::status::{self, Doc};

/// How long `/debug/lookup` waits for providers.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How long asking containerd for its version, or a host file's target who it is, may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the admin server reads from the rest of the node.
pub(crate) struct Admin {
    pub(crate) metrics: Registry,
    pub(crate) router: p2p::Router,
    pub(crate) p2p_metrics: p2p::Metrics,
    pub(crate) registry_metrics: registry::Metrics,
    pub(crate) store: Arc<dyn ContentStore>,
    /// `containerd` or `oci-dir`, and where.
    pub(crate) store_kind: &'static str,
    pub(crate) store_location: String,
    pub(crate) containerd: Option<ContainerdSide>,
    pub(crate) registry_addr: SocketAddr,
    pub(crate) metrics_addr: SocketAddr,
    pub(crate) started_unix: u64,
    pub(crate) debug_web: bool,
    /// One measurement of the debug page at a time.
    pub(crate) measuring: tokio::sync::Semaphore,
}

/// The containerd a node serves, for its part of the status.
pub(crate) struct ContainerdSide {
    pub(crate) client: containerd::Containerd,
    pub(crate) config: PathBuf,
    pub(crate) registry_config_path: PathBuf,
}

/// The admin routes.
pub(crate) fn router(admin: Admin) -> axum::Router {
    let debug_web = admin.debug_web;
    let admin = Arc::new(admin);
    let mut router = axum::Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/status", get(status_handler))
        .route("/debug/lookup", get(lookup));
    if debug_web {
        router = router.merge(crate::debug_web::routes());
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

impl Admin {
    /// The status document now.
    pub(crate) async fn status(&self) -> Doc {
        let p2p = self.router.status();
        let list = self.router.peers().await;
        let (images, error) = match self.store.images().await {
            Ok(i) => (Some(i.len()), None),
            Err(e) => (None, Some(e.to_string())),
        };
        let containerd = match &self.containerd {
            Some(c) => Some(self.containerd_status(c).await),
            None => None,
        };
        Doc {
            status_version: status::STATUS_VERSION,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            node: status::Node {
                peer_id: p2p.peer_id,
                registry_addr: self.registry_addr.to_string(),
                metrics_addr: self.metrics_addr.to_string(),
                router_addrs: p2p.listen_addrs,
                started_unix: self.started_unix,
                now_unix: timing::unix_now_secs(),
            },
            bootstrap: status::Bootstrap {
                kind: p2p.bootstrap_kind.to_owned(),
                source: p2p.bootstrap_source,
                state: p2p.state,
                since_unix: p2p.state_since_unix,
                last_round: p2p.last_round,
            },
            peers: status::Peers {
                connected: p2p.connected_peers,
                routing_table: p2p.routing_table_peers,
                alone_since_unix: p2p.alone_since_unix,
                last_lost_peer: p2p.last_lost_peer,
                list,
            },
            store: status::Store {
                kind: self.store_kind.to_owned(),
                location: self.store_location.clone(),
                images,
                error,
            },
            advertised: self.p2p_metrics.advertised(),
            mirror: self.registry_metrics.activity(),
            containerd,
        }
    }

    async fn containerd_status(&self, c: &ContainerdSide) -> status::Containerd {
        let version = tokio::time::timeout(PROBE_TIMEOUT, c.client.version())
            .await
            .ok()
            .flatten();
        let findings =
            containerd::checks::check_async(&c.config, &c.registry_config_path, version.as_deref())
                .await
                .into_iter()
                .map(status::Finding::from)
                .collect();
        let files = containerd::hosts::speil_host_files_async(&c.registry_config_path).await;
        let me = self.router.peer_id().to_string();
        // Every distinct host at once, so unreachable ones cost one timeout in all.
        let urls: std::collections::BTreeSet<&String> =
            files.iter().flat_map(|f| f.hosts.iter()).collect();
        let answers = futures::future::join_all(urls.iter().map(|url| probe(url, &me))).await;
        let probes: HashMap<String, Result<(), String>> =
            urls.into_iter().cloned().zip(answers).collect();
        let host_files = files
            .into_iter()
            .map(|f| status::HostFile {
                registry: f.registry,
                hosts: f
                    .hosts
                    .into_iter()
                    .map(|url| {
                        let probe = probes.get(&url).cloned().unwrap_or(Ok(()));
                        status::Host {
                            this_node: probe.is_ok(),
                            probe: probe.err(),
                            url,
                        }
                    })
                    .collect(),
            })
            .collect();
        status::Containerd {
            version,
            config: c.config.display().to_string(),
            registry_config_path: c.registry_config_path.display().to_string(),
            host_files,
            findings,
        }
    }
}

/// Whether the registry at `url` is this node (peer id `me`): `Err` says what answered instead.
async fn probe(url: &str, me: &str) -> Result<(), String> {
    if !url.starts_with("http://") {
        return Err("is not an http:// URL, so it is not checked".into());
    }
    let target = format!("{}/v2/", url.trim_end_matches('/'));
    let response = tokio::time::timeout(PROBE_TIMEOUT, crate::http_client::get(&target))
        .await
        .map_err(|_| "does not answer within 1s".to_owned())??;
    match response
        .headers()
        .get(registry::PEER_ID_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(id) if id == me => Ok(()),
        Some(id) => Err(format!("is another Speil node ({id})")),
        None => Err(format!(
            "answers {} without a Speil peer id: not Speil",
            response.status()
        )),
    }
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
