//! `speil run`: checks the flags, opens the store (`store.rs`), starts the P2P router, the
//! store's advertising, the registry and the admin server (configured in `config.rs`), serves
//! until a signal, then drains in-flight responses within the shutdown timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use prometheus_client::registry::Registry as MetricsRegistry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{RunArgs, bad_value};

mod config;
mod store;

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
    config::raise_open_files_limit();
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    crate::shutdown::on_signal(shutdown.clone(), &tasks).context("installing signal handlers")?;

    let Checked {
        p2p: p2p_config,
        basic_auth,
        filters,
        registry_listener,
        metrics_listener,
    } = check(&args).await?;
    let registry_addr = registry_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    let started_unix = timing::unix_now_secs();
    let opened = store::open(&args, &tasks, &shutdown).await?;

    let mut metrics = MetricsRegistry::default();
    crate::metrics::register_build_info(&mut metrics);
    let registry_metrics = registry::Metrics::register(&mut metrics);
    let p2p_metrics = p2p::Metrics::register(&mut metrics);
    let router = start_router(p2p_config, p2p_metrics.clone(), &tasks, &shutdown).await?;
    tasks.spawn(crate::advertise::run(
        opened.store.clone(),
        router.clone(),
        p2p_metrics.clone(),
        Arc::new(filters.clone()),
        shutdown.child_token(),
    ));

    let http = registry_app(
        &opened,
        &router,
        registry_metrics.clone(),
        filters,
        config::mirror_config(&args.mirror, registry_addr.port(), basic_auth.clone()),
        &tasks,
        &shutdown,
    );
    tasks.spawn(
        registry::Server::new(args.bounds.bounds())
            .with_metrics(registry_metrics.clone())
            .with_open_paths(&registry::OPEN_PATHS)
            .serve(registry_listener, http, shutdown.child_token()),
    );
    let admin = crate::admin::router(crate::admin::Admin {
        metrics,
        router: router.clone(),
        p2p_metrics,
        registry_metrics,
        store: opened.store.clone(),
        store_kind: opened.kind,
        store_location: opened.location.clone(),
        containerd: opened.containerd.clone(),
        registry_addr,
        metrics_addr,
        started_unix,
        debug_web: args.debug_web,
        basic_auth,
        measuring: tokio::sync::Semaphore::new(1),
    });
    tasks.spawn(registry::serve(
        metrics_listener,
        admin,
        shutdown.child_token(),
    ));
    if let Some(side) = &opened.containerd {
        // Logged once containerd has answered: the findings depend on its version.
        tasks.spawn(store::report_findings(
            side.client.clone(),
            args.containerd.clone(),
            shutdown.child_token(),
        ));
    }
    tasks.close();

    // The endpoints answer already.
    log_started(&args, &opened, &router, registry_addr, metrics_addr).await;
    if let Some(text) = announce {
        eprintln!("{text}");
    }
    drain(&shutdown, &tasks, args.shutdown_timeout).await;
    Ok(())
}

/// What `speil run` checks before anything starts: everything that can be refused.
struct Checked {
    p2p: p2p::Config,
    basic_auth: Option<oci::BasicAuth>,
    filters: registry::Filters,
    registry_listener: TcpListener,
    metrics_listener: TcpListener,
}

async fn check(args: &RunArgs) -> anyhow::Result<Checked> {
    let mut p2p = config::p2p_config(&args.p2p).map_err(bad_value)?;
    // A provider that stopped answering is left out of lookups as long as the mirror would
    // leave out a peer that failed a request.
    p2p.peer_down_for = args.mirror.mirror_peer_quarantine;
    p2p.private_network = crate::cli::p2p_psk(args.p2p.p2p_psk_file.as_deref())?;
    let filters = registry::Filters::new(
        args.mirror.mirrored_registries.clone(),
        &args.mirror.registry_filters,
    )
    .map_err(|e| bad_value(anyhow::Error::from(e)))?;
    Ok(Checked {
        p2p,
        basic_auth: crate::cli::basic_auth(args.basic_auth_file.as_deref())?,
        filters,
        registry_listener: bind("--registry-addr", args.registry_addr).await?,
        metrics_listener: bind("--metrics-addr", args.metrics_addr).await?,
    })
}

/// The registry's routes: the store, with the mirror behind it, ready when the router is, and
/// closed to requests without the credentials when the mirror's configuration has them. The
/// mirror's sweep of claims runs on `tasks` until `shutdown`.
fn registry_app(
    opened: &store::Opened,
    router: &p2p::Router,
    metrics: registry::Metrics,
    filters: registry::Filters,
    mirror: registry::mirror::Config,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> axum::Router {
    let basic_auth = mirror.basic_auth.clone();
    let mirror = registry::Mirror::new(
        router.clone(),
        opened.store.clone(),
        mirror,
        metrics.clone(),
    );
    tasks.spawn({
        let (mirror, shutdown) = (mirror.clone(), shutdown.child_token());
        async move { mirror.sweep_claims(shutdown).await }
    });
    let readiness = {
        let router = router.clone();
        Arc::new(move || router.ready().map_err(|e| e.to_string()))
    };
    registry::Registry::new(opened.store.clone(), metrics, readiness)
        .with_mirror(mirror)
        .with_filters(filters)
        .with_peer_id(&router.peer_id())
        .with_basic_auth(basic_auth)
        .router()
}

/// The one INFO line that says the node serves, and what.
async fn log_started(
    args: &RunArgs,
    opened: &store::Opened,
    router: &p2p::Router,
    registry: SocketAddr,
    metrics: SocketAddr,
) {
    tracing::info!(
        %registry,
        %metrics,
        router = %router.status().listen_addrs.join(","),
        peer_id = %router.peer_id(),
        bootstrap = args.p2p.bootstrap_kind.as_str(),
        store = %format!("{} {}", opened.kind, opened.location),
        images = %opened.images_now().await,
        version = env!("CARGO_PKG_VERSION"),
        "speil started"
    );
}

/// Starts the P2P router with this node's identity (kept in `--data-dir` when given).
async fn start_router(
    config: p2p::Config,
    metrics: p2p::Metrics,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<p2p::Router> {
    let key =
        p2p::load_identity(config.data_dir.as_deref()).with_context(|| match &config.data_dir {
            Some(d) => format!("--data-dir {}", d.display()),
            None => "creating a peer identity".to_owned(),
        })?;
    p2p::Router::start(config, key, metrics, tasks, shutdown.child_token())
        .await
        .map_err(|e| bad_value(anyhow::anyhow!("starting the P2P router: {e}")))
}

/// Waits for the shutdown signal, then for every task to finish within `timeout`.
async fn drain(shutdown: &CancellationToken, tasks: &TaskTracker, timeout: Duration) {
    shutdown.cancelled().await;
    if tokio::time::timeout(timeout, tasks.wait()).await.is_err() {
        tracing::warn!(
            timeout = %humantime::format_duration(timeout),
            "in-flight responses did not finish before the shutdown timeout; closing them"
        );
    }
    tracing::info!("speil stopped");
}

/// Binds `addr` for `flag`; a refusal names the flag and is a bad value (exit 2).
async fn bind(flag: &str, addr: SocketAddr) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|e| bad_value(anyhow::anyhow!("{flag} {addr}: {e}")))
}
