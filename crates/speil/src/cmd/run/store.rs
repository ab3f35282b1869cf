//! The store `speil run` serves: an OCI image layout (`--oci-dir`) or containerd's content
//! store, opened from the flags, with what the status says about it; and, for containerd, the
//! configuration findings logged once containerd has answered.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use store::{ContentStore, OciDir};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::ContainerdSide;
use crate::cli::{RunArgs, bad_value};

/// An open store and how the status names it.
pub(super) struct Opened {
    pub(super) store: Arc<dyn ContentStore>,
    /// `containerd` or `oci-dir`.
    pub(super) kind: &'static str,
    /// Where: the directory, or containerd's socket and namespace.
    pub(super) location: String,
    pub(super) containerd: Option<ContainerdSide>,
}

/// Opens the store the flags name, its tasks on `tasks`; an `--oci-dir` that cannot be opened
/// is a bad value.
pub(super) async fn open(
    args: &RunArgs,
    tasks: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<Opened> {
    if let Some(dir) = &args.oci_dir {
        let store = OciDir::open(
            dir.clone(),
            args.store_poll_interval,
            tasks,
            shutdown.child_token(),
        )
        .await
        .map_err(|e| bad_value(anyhow::anyhow!("--oci-dir: {e}")))?;
        return Ok(Opened {
            store: Arc::new(store),
            kind: "oci-dir",
            location: dir.display().to_string(),
            containerd: None,
        });
    }
    let c = &args.containerd;
    let store = containerd::Containerd::start(
        containerd::Config {
            socket: c.containerd_sock.clone(),
            namespace: c.containerd_namespace.clone(),
            content_path: c.containerd_content_path.clone(),
            reconcile_interval: c.store_reconcile_interval,
            in_flight_stall_timeout: args.mirror.in_flight.in_flight_stall_timeout,
        },
        tasks,
        shutdown.child_token(),
    )
    .with_context(|| format!("--containerd-sock {}", c.containerd_sock.display()))?;
    Ok(Opened {
        store: Arc::new(store.clone()),
        kind: "containerd",
        location: format!(
            "{} namespace {}",
            c.containerd_sock.display(),
            c.containerd_namespace
        ),
        containerd: Some(ContainerdSide {
            client: store,
            config: c.containerd_config.clone(),
            registry_config_path: c.containerd_registry_config_path.clone(),
        }),
    })
}

impl Opened {
    /// How many images are served, for the start line. A containerd that is listing right now
    /// (it answers within milliseconds) is waited for briefly, so the line says what is served.
    pub(super) async fn images_now(&self) -> String {
        let listed = match &self.containerd {
            Some(side) => side.client.wait_settled(Duration::from_secs(5)).await,
            None => true,
        };
        match self.store.images().await {
            Ok(i) if listed => i.len().to_string(),
            Ok(_) => "not listed yet".to_owned(),
            Err(e) => format!("none: {e}"),
        }
    }
}

/// Logs each known way containerd's configuration leaves the mirror unused, one WARN line each,
/// once containerd has answered (the checks depend on its version).
pub(super) async fn report_findings(
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
