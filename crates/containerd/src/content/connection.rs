//! Keeping the snapshot current: list, follow containerd's image events, reconcile, and
//! reconnect with backoff whenever containerd goes away: one WARN line per outage, one ERROR
//! line when it lasts minutes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use containerd_api::containerd::services::events::v1::SubscribeRequest;
use containerd_api::containerd::services::events::v1::events_client::EventsClient;
use containerd_api::containerd::types::Envelope;
use store::Error;
use timing::Backoff;
use tokio_util::sync::CancellationToken;

use super::shared::{Inner, Reach, grpc_error};

/// Image events arriving within this window lead to one listing.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Reconnect delays: exponential with jitter between these.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// containerd unreachable for longer than this is one ERROR line.
const ERROR_AFTER: Duration = Duration::from_secs(120);

/// Keeps the snapshot current: list, follow events, reconcile, and reconnect with backoff
/// whenever containerd goes away.
pub(super) async fn run(
    inner: Arc<Inner>,
    reach: tokio::sync::watch::Sender<Reach>,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
    let mut down_since: Option<Instant> = None;
    let mut error_logged = false;
    loop {
        if shutdown.is_cancelled() {
            return;
        }
        let result = match inner.refresh().await {
            Ok(()) => {
                reach.send_replace(Reach::Listed);
                if down_since.take().is_some() {
                    tracing::info!(socket = %inner.config.socket.display(), "containerd reachable again");
                }
                backoff.reset();
                error_logged = false;
                follow(&inner, &shutdown).await
            }
            Err(e) => Err(e),
        };
        if shutdown.is_cancelled() {
            return;
        }
        let Err(e) = result else { continue };
        let never_listed = *reach.borrow() == Reach::Connecting;
        reach.send_replace(Reach::Down(e.to_string()));
        match down_since {
            None if never_listed => {
                down_since = Some(Instant::now());
                tracing::warn!(
                    error = %e,
                    socket = %inner.config.socket.display(),
                    "containerd does not answer: nothing of its is served or advertised until it does; start containerd (or check --containerd-sock), or serve an OCI directory with --oci-dir; retrying"
                );
            }
            None => {
                down_since = Some(Instant::now());
                tracing::warn!(error = %e, "containerd unreachable; serving what was last listed and retrying");
            }
            Some(since) if since.elapsed() > ERROR_AFTER && !error_logged => {
                error_logged = true;
                tracing::error!(
                    error = %e,
                    for_secs = since.elapsed().as_secs(),
                    socket = %inner.config.socket.display(),
                    "containerd has been unreachable for minutes; check that it runs and that --containerd-sock is its socket"
                );
            }
            Some(_) => tracing::debug!(error = %e, "containerd still unreachable"),
        }
        tokio::select! {
            () = tokio::time::sleep(backoff.next_delay()) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

type EventStream = tonic::Streaming<Envelope>;

async fn subscribe(inner: &Inner) -> Result<EventStream, Error> {
    let ns = &inner.config.namespace;
    let filters = vec![
        format!("namespace==\"{ns}\",topic~=\"/images/\""),
        format!("namespace==\"{ns}\",topic==\"/content/delete\""),
    ];
    let response = EventsClient::new(inner.channel.clone())
        .subscribe(SubscribeRequest { filters })
        .await
        .map_err(|s| grpc_error(&inner.config.socket, s))?;
    Ok(response.into_inner())
}

/// Lists again shortly after image events and every reconcile interval, until the event stream
/// breaks (containerd restarted) or shutdown.
///
/// containerd sends the event stream's headers only with its first event, so the subscription is
/// awaited beside everything else rather than before the listing; one more listing a second
/// after subscribing catches events that came between the first listing and the subscription.
async fn follow(inner: &Inner, shutdown: &CancellationToken) -> Result<(), Error> {
    let subscription = subscribe(inner);
    tokio::pin!(subscription);
    let mut stream: Option<EventStream> = None;
    let catch_up = tokio::time::sleep(Duration::from_secs(1));
    tokio::pin!(catch_up);
    let mut caught_up = false;
    let mut dirty = false;
    let mut reconcile = tokio::time::interval(inner.config.reconcile_interval);
    reconcile.reset();
    let debounce = tokio::time::sleep(DEBOUNCE);
    tokio::pin!(debounce);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            subscribed = &mut subscription, if stream.is_none() => stream = Some(subscribed?),
            message = next_event(&mut stream), if stream.is_some() => match message {
                Ok(Some(envelope)) => {
                    tracing::debug!(topic = %envelope.topic, "containerd event");
                    if !dirty {
                        dirty = true;
                        debounce.as_mut().reset(tokio::time::Instant::now() + DEBOUNCE);
                    }
                }
                Ok(None) => return Err(grpc_error(&inner.config.socket, tonic::Status::unavailable("event stream ended"))),
                Err(s) => return Err(grpc_error(&inner.config.socket, s)),
            },
            () = &mut catch_up, if !caught_up => {
                caught_up = true;
                inner.refresh().await?;
            }
            () = &mut debounce, if dirty => {
                dirty = false;
                inner.refresh().await?;
            }
            _ = reconcile.tick() => {
                tracing::debug!("reconciling with containerd");
                inner.refresh().await?;
            }
        }
    }
}

async fn next_event(stream: &mut Option<EventStream>) -> Result<Option<Envelope>, tonic::Status> {
    match stream.as_mut() {
        Some(s) => s.message().await,
        None => std::future::pending().await,
    }
}
