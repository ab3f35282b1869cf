//! `speil run`: wires a store, the registry and the metrics endpoint together, serves until a
//! signal, then drains in-flight responses within the shutdown timeout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use prometheus_client::registry::Registry as MetricsRegistry;
use store::{ContentStore, OciDir};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{BootstrapKind, P2pArgs, RunArgs, bad_value};

/// Runs a node until SIGTERM or SIGINT. `announce` is printed to stderr once the node has
/// started (the demo's "pull it with" text), never before a refusal.
pub(crate) fn main(args: RunArgs, announce: Option<String>) -> anyhow::Result<()> {
    crate::logging::init(&args.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(serve(args, announce));
    // Everything was drained within --shutdown-timeout; what is left (a blocking read of a
    // client that went away) must not keep the process alive after "speil stopped".
    runtime.shutdown_timeout(Duration::from_millis(100));
    result
}

async fn serve(args: RunArgs, announce: Option<String>) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    crate::shutdown::on_signal(shutdown.clone()).context("installing signal handlers")?;

    // Everything that can be refused is checked before anything starts.
    let mut p2p_config = p2p_config(&args.p2p).map_err(bad_value)?;
    // A provider that stopped answering is left out of lookups as long as the mirror would
    // leave out a peer that failed a request.
    p2p_config.peer_down_for = args.mirror.mirror_peer_quarantine;
    let filters = registry::Filters::new(
        args.mirror.mirrored_registries.clone(),
        &args.mirror.registry_filters,
    )
    .map_err(|e| bad_value(anyhow::Error::from(e)))?;
    let registry_listener = bind("--registry-addr", args.registry_addr).await?;
    let metrics_listener = bind("--metrics-addr", args.metrics_addr).await?;
    let registry_addr = registry_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let started_unix = timing::unix_now_secs();
    let (store, store_kind, store_location, containerd_side): (
        Arc<dyn ContentStore>,
        &'static str,
        String,
        Option<crate::admin::ContainerdSide>,
    ) = match &args.oci_dir {
        Some(dir) => {
            let store = OciDir::open(
                dir.clone(),
                args.store_poll_interval,
                shutdown.child_token(),
            )
            .await
            .map_err(|e| bad_value(anyhow::anyhow!("--oci-dir: {e}")))?;
            (Arc::new(store), "oci-dir", dir.display().to_string(), None)
        }
        None => {
            let c = &args.containerd;
            let store = containerd::Containerd::start(
                containerd::Config {
                    socket: c.containerd_sock.clone(),
                    namespace: c.containerd_namespace.clone(),
                    content_path: c.containerd_content_path.clone(),
                    reconcile_interval: c.store_reconcile_interval,
                },
                shutdown.child_token(),
            )
            .with_context(|| format!("--containerd-sock {}", c.containerd_sock.display()))?;
            let side = crate::admin::ContainerdSide {
                client: store.clone(),
                config: c.containerd_config.clone(),
                registry_config_path: c.containerd_registry_config_path.clone(),
            };
            (
                Arc::new(store),
                "containerd",
                format!(
                    "{} namespace {}",
                    c.containerd_sock.display(),
                    c.containerd_namespace
                ),
                Some(side),
            )
        }
    };

    let mut metrics = MetricsRegistry::default();
    crate::metrics::register_build_info(&mut metrics);
    let registry_metrics = registry::Metrics::register(&mut metrics);
    let p2p_metrics = p2p::Metrics::register(&mut metrics);
    let tasks = TaskTracker::new();

    let key =
        p2p::load_identity(p2p_config.data_dir.as_deref()).with_context(|| {
            match &p2p_config.data_dir {
                Some(d) => format!("--data-dir {}", d.display()),
                None => "creating a peer identity".to_owned(),
            }
        })?;
    let router = p2p::Router::start(
        p2p_config,
        key,
        p2p_metrics.clone(),
        &tasks,
        shutdown.child_token(),
    )
    .await
    .map_err(|e| bad_value(anyhow::anyhow!("starting the P2P router: {e}")))?;
    let advertise_filter: Arc<dyn crate::advertise::Filter> = Arc::new(filters.clone());
    let p2p_metrics_status = p2p_metrics.clone();
    tasks.spawn(crate::advertise::run(
        store.clone(),
        router.clone(),
        p2p_metrics,
        advertise_filter,
        shutdown.child_token(),
    ));

    let mirror = registry::Mirror::new(
        router.clone(),
        registry::mirror::Config {
            peer_port: args.mirror.mirror_peer_port.unwrap_or(registry_addr.port()),
            connect_timeout: args.mirror.mirror_connect_timeout,
            resolve_timeout: args.mirror.mirror_resolve_timeout,
            resolve_retries: usize::from(args.mirror.mirror_resolve_retries),
            quarantine: args.mirror.mirror_peer_quarantine,
            resolve_tags: args.mirror.resolve_tags,
        },
        registry_metrics.clone(),
    );
    let readiness = {
        let router = router.clone();
        Arc::new(move || router.ready().map_err(|e| e.to_string()))
    };
    let http = registry::Registry::new(store.clone(), registry_metrics.clone(), readiness)
        .with_mirror(mirror)
        .with_filters(filters)
        .with_peer_id(&router.peer_id())
        .router();
    tasks.spawn(registry::serve(
        registry_listener,
        http,
        shutdown.child_token(),
    ));
    let containerd_client = containerd_side.as_ref().map(|side| side.client.clone());
    let admin = crate::admin::router(crate::admin::Admin {
        metrics,
        router: router.clone(),
        p2p_metrics: p2p_metrics_status,
        registry_metrics,
        store: store.clone(),
        store_kind,
        store_location: store_location.clone(),
        containerd: containerd_side,
        registry_addr,
        metrics_addr,
        started_unix,
        debug_web: args.debug_web,
        measuring: tokio::sync::Semaphore::new(1),
    });
    tasks.spawn(registry::serve(
        metrics_listener,
        admin,
        shutdown.child_token(),
    ));
    if let Some(client) = &containerd_client {
        // Logged once containerd has answered: the findings depend on its version.
        tasks.spawn(report_findings(
            client.clone(),
            args.containerd.clone(),
            shutdown.child_token(),
        ));
    }
    tasks.close();
    // The endpoints answer already. A store that is listing right now (containerd answers
    // within milliseconds) is waited for briefly, so the line says what is served.
    let listed = match &containerd_client {
        Some(client) => client.wait_settled(Duration::from_secs(5)).await,
        None => true,
    };
    let images = match store.images().await {
        Ok(i) if listed => i.len().to_string(),
        Ok(_) => "not listed yet".to_owned(),
        Err(e) => format!("none: {e}"),
    };
    tracing::info!(
        registry = %registry_addr,
        metrics = %metrics_addr,
        router = %router.status().listen_addrs.join(","),
        peer_id = %router.peer_id(),
        bootstrap = args.p2p.bootstrap_kind.as_str(),
        store = %format!("{store_kind} {store_location}"),
        %images,
        version = env!("CARGO_PKG_VERSION"),
        "speil started"
    );
    if let Some(text) = announce {
        eprintln!("{text}");
    }

    shutdown.cancelled().await;
    if tokio::time::timeout(args.shutdown_timeout, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            timeout = %humantime::format_duration(args.shutdown_timeout),
            "in-flight responses did not finish before the shutdown timeout; closing them"
        );
    }
    tracing::info!("speil stopped");
    Ok(())
}

/// Logs each known way containerd's configuration leaves the mirror unused, one WARN line each,
/// once containerd has answered (the checks depend on its version).
async fn report_findings(
    client: containerd::Containerd,
    args: crate::cli::ContainerdArgs,
    shutdown: CancellationToken,
) {
    tokio::select! {
        () = client.wait_listed() => {}
        () = shutdown.cancelled() => return,
    }
    let version = client.version().await;
    let findings = tokio::task::spawn_blocking(move || {
        containerd::checks::check(
            &args.containerd_config,
            &args.containerd_registry_config_path,
            version.as_deref(),
        )
    })
    .await
    .unwrap_or_default();
    for f in findings {
        tracing::warn!(check = f.id, fix = %f.fix, "containerd configuration: {}", f.message);
    }
}

/// Binds `addr` for `flag`; a refusal names the flag and is a bad value (exit 2).
async fn bind(flag: &str, addr: std::net::SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bad_value(anyhow::anyhow!("{flag} {addr}: {e}")))
}

/// The router's configuration from its flags, checking what clap cannot.
fn p2p_config(args: &P2pArgs) -> anyhow::Result<p2p::Config> {
    if args.provider_republish_interval >= args.provider_ttl {
        bail!(
            "--provider-republish-interval ({}) must be shorter than --provider-ttl ({}), or records expire before they are renewed",
            humantime::format_duration(args.provider_republish_interval),
            humantime::format_duration(args.provider_ttl)
        );
    }
    let missing = |flag: &str| {
        anyhow::anyhow!(
            "--bootstrap-kind {} needs {flag}",
            args.bootstrap_kind.as_str()
        )
    };
    let bootstrap = match args.bootstrap_kind {
        BootstrapKind::None => p2p::bootstrap::Source::None,
        BootstrapKind::Dns => p2p::bootstrap::Source::Dns(p2p::bootstrap::DnsSource {
            domain: args
                .dns_bootstrap_domain
                .clone()
                .ok_or_else(|| missing("--dns-bootstrap-domain"))?,
            nameserver: args.dns_bootstrap_nameserver,
        }),
        BootstrapKind::Http => p2p::bootstrap::Source::Http {
            url: args
                .http_bootstrap_url
                .clone()
                .ok_or_else(|| missing("--http-bootstrap-url"))?,
        },
        BootstrapKind::Static => {
            if args.static_bootstrap_peers.is_empty() {
                return Err(missing("--static-bootstrap-peers"));
            }
            p2p::bootstrap::Source::Static(args.static_bootstrap_peers.clone())
        }
    };
    let mut config = p2p::Config::new(args.router_addr);
    config.advertise.clone_from(&args.router_advertise_addr);
    config.data_dir.clone_from(&args.data_dir);
    config.provider_ttl = args.provider_ttl;
    config.provider_republish = args.provider_republish_interval;
    config.bootstrap = bootstrap;
    config.refresh_interval = args.bootstrap_refresh_interval;
    config.error_after = args.bootstrap_error_after;
    config.http_bootstrap_addr = args.http_bootstrap_addr;
    config.ping_interval = args.peer_ping_interval;
    config.ping_timeout = args.peer_ping_timeout;
    Ok(config)
}
