//! One connection: hyper's HTTP/1 connection driven together with the connection's timeouts
//! and the server's shutdown, and the service that admits each request within the request
//! limit (or rejects it) before the router sees it.

use std::convert::Infallible;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use axum::http::{HeaderValue, Request, header};
use axum::response::{IntoResponse as _, Response};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

use super::Shared;
use super::watch::{Timeout, Watch, Watched};
use crate::error::{ApiError, Limit};
use crate::held::hold;
use crate::metrics::Metrics;

/// Request headers larger than this are refused (431): a registry request's headers are a
/// few hundred bytes, and the limit caps the buffer each connection may make the node hold.
const MAX_HEADER_BYTES: usize = 64 * 1024;

/// How a connection was let in: within the connection limit, or over it (then one request is
/// answered, 503 or a probe, and the connection is closed). The slot, of the connection limit
/// or of the rejections, is held as long as the connection.
pub(super) struct Admission {
    pub(super) over: bool,
    pub(super) _slot: OwnedSemaphorePermit,
}

/// How a connection ended.
enum End {
    /// The client closed it, an error broke it, or it was drained at shutdown.
    Closed,
    /// A timeout closed it.
    TimedOut(Timeout),
}

/// Serves one connection until it closes, times out, or is drained at shutdown.
pub(super) async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    admission: Admission,
    shutdown: CancellationToken,
) {
    let over = admission.over;
    let watch = Watch::new(shared.bounds.header_timeout, shared.bounds.idle_timeout);
    let io = TokioIo::new(Watched::new(stream, watch.clone()));
    let service = Service {
        shared: shared.clone(),
        watch: watch.clone(),
        over,
    };
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(!over)
        // Ours, in `watch.rs`: hyper's would also close idle connections after it.
        .header_read_timeout(None)
        .max_header_size(MAX_HEADER_BYTES);
    let open = (!over)
        .then_some(shared.metrics.as_ref())
        .flatten()
        .map(Metrics::connection_opened);
    let end = drive(builder.serve_connection(io, service), &watch, &shutdown).await;
    if let End::TimedOut(why) = end {
        tracing::debug!(reason = why.as_str(), "closed a connection");
        if let Some(m) = &shared.metrics {
            m.timed_out(why.as_str());
        }
    }
    drop(open);
    drop(admission);
}

/// Polls the connection, closing it when its deadline passes and draining it (finish the
/// response under way, then close) once `shutdown` is cancelled. The deadline is read after
/// every poll of the connection: reads, requests and finished responses, which move it, all
/// happen inside that poll, so the timer never runs on a stale deadline.
async fn drive(
    conn: http1::Connection<TokioIo<Watched<TcpStream>>, Service>,
    watch: &Watch,
    shutdown: &CancellationToken,
) -> End {
    let mut conn = pin!(conn);
    let mut cancelled = pin!(shutdown.cancelled());
    let mut draining = false;
    let mut timer = pin!(tokio::time::sleep_until(tokio::time::Instant::now()));
    let mut armed: Option<Instant> = None;
    std::future::poll_fn(|cx| {
        loop {
            if let Poll::Ready(result) = conn.as_mut().poll(cx) {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "a registry connection failed");
                }
                return Poll::Ready(End::Closed);
            }
            if !draining && cancelled.as_mut().poll(cx).is_ready() {
                draining = true;
                conn.as_mut().graceful_shutdown();
                continue;
            }
            break;
        }
        let Some((deadline, why)) = watch.deadline() else {
            return Poll::Pending;
        };
        if armed != Some(deadline) {
            timer.as_mut().reset(deadline.into());
            armed = Some(deadline);
        }
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(End::TimedOut(why)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The service hyper calls with each request of one connection.
struct Service {
    shared: Arc<Shared>,
    watch: Watch,
    /// The connection is over the connection limit.
    over: bool,
}

impl hyper::service::Service<Request<Incoming>> for Service {
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let answering = self.watch.answering();
        let open = self.shared.open_paths.contains(&req.uri().path());
        let slot = if open {
            None
        } else if self.over {
            return Box::pin(std::future::ready(Ok(
                self.reject(Limit::Connections, answering)
            )));
        } else {
            match self.shared.requests.clone().try_acquire_owned() {
                Ok(slot) => Some(slot),
                Err(_) => {
                    return Box::pin(std::future::ready(Ok(
                        self.reject(Limit::Requests, answering)
                    )));
                }
            }
        };
        let router = self.shared.router.clone();
        Box::pin(async move {
            let response = match router.oneshot(req).await {
                Ok(r) => r,
                Err(never) => match never {},
            };
            Ok(hold(response, (slot, answering)))
        })
    }
}

impl Service {
    /// The answer over `limit`, counted.
    fn reject(&self, limit: Limit, answering: super::watch::Answering) -> Response {
        // A connection over the limit was counted when it was accepted.
        if let (Some(m), false) = (&self.shared.metrics, limit == Limit::Connections) {
            m.rejected(limit);
        }
        let mut response = ApiError::Busy(limit).into_response();
        if self.over {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        hold(response, answering)
    }
}
