//! What the admin server reads from the rest of the node ([`Admin`]), and the status document
//! it makes from that: the node's own parts, and for a containerd node its version, the
//! configuration findings and the host files, each host asked whether it is this node.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use store::ContentStore;

use crate::status::{self, Doc};

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
    /// The registry's credentials (`--basic-auth-file`): the debug page's measure action pulls
    /// through the registry with them.
    pub(crate) basic_auth: Option<oci::BasicAuth>,
    /// One measurement of the debug page at a time.
    pub(crate) measuring: tokio::sync::Semaphore,
}

/// The containerd a node serves, for its part of the status.
#[derive(Clone)]
pub(crate) struct ContainerdSide {
    pub(crate) client: containerd::Containerd,
    pub(crate) config: PathBuf,
    pub(crate) registry_config_path: PathBuf,
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
                private_network: p2p.private_network,
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
