//! The accept loop of an HTTP port, with the bounds a port reachable from the whole cluster
//! network needs: at most so many open connections and requests in flight, a header read
//! timeout and an idle keep-alive timeout (`watch.rs`). `axum::serve` has none of these: a
//! client that opens connections and never finishes its headers holds a descriptor and a
//! buffer each, for ever.
//!
//! Over a limit the client gets a fast answer, never a hang in the backlog: a connection over
//! the connection limit is still accepted, its one request answered 503 with a
//! `TOOMANYREQUESTS` OCI body and `Retry-After`, and closed; a request over the request limit
//! gets the same answer on its keep-alive connection. The open paths (the kubelet's probes) are
//! answered even then: a liveness probe that failed under load would have the kubelet restart
//! the node's Speil, cutting every pull it serves. The rejections are themselves bounded
//! ([`REJECTING`]); past that, a connection is closed at once.

mod connection;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;
use connection::Admission;

/// Connections over the connection limit answered at the same time; past that, a connection
/// is closed as soon as it is accepted. Each is bounded by the header timeout and answers one
/// request, so this caps what a flood can make the node hold for its rejections.
pub const REJECTING: usize = 256;

/// The limits of one HTTP port.
#[derive(Debug, Clone)]
pub struct Bounds {
    /// Open connections, the rejected ones being answered aside.
    pub max_connections: usize,
    /// Requests being answered at once (until the last byte of the response is sent).
    pub max_requests: usize,
    /// How long a connection may take to send a request's headers: from the accept for the
    /// first request, from the first byte of the request for the next ones.
    pub header_timeout: Duration,
    /// How long a keep-alive connection may stay idle between requests.
    pub idle_timeout: Duration,
}

impl Default for Bounds {
    /// The defaults of `speil run`'s flags (see their documentation there).
    fn default() -> Self {
        Bounds {
            max_connections: 1024,
            max_requests: 256,
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Serves a router on a listener within [`Bounds`].
pub struct Server {
    bounds: Bounds,
    metrics: Option<Metrics>,
    open_paths: &'static [&'static str],
}

/// What every connection of one server shares.
struct Shared {
    router: Router,
    bounds: Bounds,
    metrics: Option<Metrics>,
    open_paths: &'static [&'static str],
    requests: Arc<Semaphore>,
}

impl Server {
    /// A server within `bounds`, counting nothing.
    pub fn new(bounds: Bounds) -> Server {
        Server {
            bounds,
            metrics: None,
            open_paths: &[],
        }
    }

    /// Counts rejections, timeouts and open connections into `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Server {
        self.metrics = Some(metrics);
        self
    }

    /// Paths answered even over the limits (cheap ones: health probes).
    pub fn with_open_paths(mut self, paths: &'static [&'static str]) -> Server {
        self.open_paths = paths;
        self
    }

    /// Serves `router` on `listener` until `shutdown` is cancelled, then stops accepting,
    /// closes idle connections and lets in-flight responses finish (the caller bounds how long
    /// it waits for that).
    pub async fn serve(
        self,
        listener: TcpListener,
        router: Router,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let shared = Arc::new(Shared {
            router,
            requests: Arc::new(Semaphore::new(self.bounds.max_requests)),
            bounds: self.bounds.clone(),
            metrics: self.metrics,
            open_paths: self.open_paths,
        });
        let connections = Arc::new(Semaphore::new(self.bounds.max_connections));
        let rejecting = Arc::new(Semaphore::new(REJECTING));
        let tasks = TaskTracker::new();
        loop {
            let stream = tokio::select! {
                () = shutdown.cancelled() => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        accept_failed(&e).await;
                        continue;
                    }
                },
            };
            // Small manifest responses must not wait for Nagle's algorithm.
            let _ = stream.set_nodelay(true);
            let admission = match connections.clone().try_acquire_owned() {
                Ok(slot) => Admission {
                    over: false,
                    _slot: slot,
                },
                Err(_) => {
                    if let Some(m) = &shared.metrics {
                        m.rejected(crate::error::Limit::Connections);
                    }
                    match rejecting.clone().try_acquire_owned() {
                        Ok(slot) => Admission {
                            over: true,
                            _slot: slot,
                        },
                        Err(_) => continue, // dropped: closed at once
                    }
                }
            };
            tasks.spawn(connection::serve(
                shared.clone(),
                stream,
                admission,
                shutdown.clone(),
            ));
        }
        tasks.close();
        tasks.wait().await;
        Ok(())
    }
}

/// A failed accept: a connection that went away before it was accepted is nothing; running out
/// of descriptors or memory is waited out briefly, so the loop does not spin while the
/// connections that hold them finish.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::debug!(error = %e, "accepting a connection failed; retrying in 50 ms");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Serves `router` on `listener` with the default [`Bounds`] until `shutdown` is cancelled
/// (the admin port, `speil cleanup --addr`); see [`Server::serve`].
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    Server::new(Bounds::default())
        .serve(listener, router, shutdown)
        .await
}
