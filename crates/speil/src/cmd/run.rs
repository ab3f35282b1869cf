//! `speil run`: wires a store, the registry and the metrics endpoint together, serves until a
//! signal, then drains in-flight responses within the shutdown timeout.

use std::sync::Arc;

use anyhow::{Context as _, bail};
use prometheus_client::registry::Registry as MetricsRegistry;
use store::{ContentStore, OciDir};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::RunArgs;

/// Runs a node until SIGTERM or SIGINT.
pub(crate) fn main(args: RunArgs) -> anyhow::Result<()> {
    crate::logging::init(&args.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = CancellationToken::new();
    crate::shutdown::on_signal(shutdown.clone()).context("installing signal handlers")?;

    let Some(dir) = &args.oci_dir else {
        bail!("no content store: pass --oci-dir DIR (an OCI image-layout directory)");
    };
    let store = OciDir::open(
        dir.clone(),
        args.store_poll_interval,
        shutdown.child_token(),
    )
    .await
    .with_context(|| format!("--oci-dir {}", dir.display()))?;
    let images = store.images().await?.len();
    let store: Arc<dyn ContentStore> = Arc::new(store);

    let mut metrics = MetricsRegistry::default();
    crate::metrics::register_build_info(&mut metrics);
    let registry_metrics = registry::Metrics::register(&mut metrics);

    let registry_listener = TcpListener::bind(args.registry_addr)
        .await
        .with_context(|| format!("--registry-addr {}", args.registry_addr))?;
    let metrics_listener = TcpListener::bind(args.metrics_addr)
        .await
        .with_context(|| format!("--metrics-addr {}", args.metrics_addr))?;

    let router = registry::Registry::new(store, registry_metrics, Arc::new(|| Ok(()))).router();
    let tasks = TaskTracker::new();
    let registry_addr = registry_listener.local_addr()?;
    let metrics_addr = metrics_listener.local_addr()?;
    tasks.spawn(registry::serve(
        registry_listener,
        router,
        shutdown.child_token(),
    ));
    tasks.spawn(registry::serve(
        metrics_listener,
        crate::metrics::router(metrics),
        shutdown.child_token(),
    ));
    tasks.close();
    tracing::info!(
        registry = %registry_addr,
        metrics = %metrics_addr,
        store = %dir.display(),
        images,
        version = env!("CARGO_PKG_VERSION"),
        "speil started"
    );

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
