//! `speil cleanup` restores containerd's registry host files as they were before
//! `speil configure`; `speil cleanup-wait` waits until a node's cleanup says it is done.

use std::time::Instant;

use anyhow::{Context as _, bail};
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::cli::{CleanupArgs, CleanupWaitArgs};

/// Restores the host files; with `--addr`, then answers `/healthz` until SIGTERM.
pub(crate) fn main(args: CleanupArgs) -> anyhow::Result<()> {
    containerd::hosts::cleanup(&args.containerd_registry_config_path).with_context(|| {
        format!(
            "--containerd-registry-config-path {}",
            args.containerd_registry_config_path.display()
        )
    })?;
    println!(
        "restored {}",
        args.containerd_registry_config_path.display()
    );
    let Some(addr) = args.addr else { return Ok(()) };
    runtime()?.block_on(async move {
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        crate::shutdown::on_signal(shutdown.clone(), &tasks)
            .context("installing signal handlers")?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("--addr {addr}"))
            .map_err(crate::cli::bad_value)?;
        let router = axum::Router::new().route("/healthz", get(|| async { "cleaned up\n" }));
        let served = registry::serve(listener, router, shutdown.clone()).await;
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        served.context("serving /healthz")
    })
}

/// Polls the probe endpoint until it answers 200, or gives up after the timeout.
pub(crate) fn wait(args: CleanupWaitArgs) -> anyhow::Result<()> {
    runtime()?.block_on(async move {
        let started = Instant::now();
        loop {
            match probe(&args.probe_endpoint).await {
                Ok(()) => {
                    println!("cleanup finished: {} answered", args.probe_endpoint);
                    return Ok(());
                }
                Err(why) if started.elapsed() >= args.timeout => {
                    bail!(
                        "cleanup not finished after {}: {} {why}",
                        humantime::format_duration(args.timeout),
                        args.probe_endpoint
                    );
                }
                Err(_) => tokio::time::sleep(args.probe_interval).await,
            }
        }
    })
}

async fn probe(url: &str) -> Result<(), String> {
    let response = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        crate::http_client::get(url),
    )
    .await
    .map_err(|_| "did not answer in time".to_owned())??;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}
