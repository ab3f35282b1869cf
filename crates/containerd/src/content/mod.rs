//! A [`store::ContentStore`] over containerd: image names and events over containerd's gRPC API,
//! bytes straight from its content directory on disk (Content.Read over gRPC when the directory
//! is not readable from here).
//!
//! What the node holds is kept as a snapshot in memory, listed at start, listed again shortly
//! after each image event and every reconcile interval, and after containerd comes back from a
//! restart. A layer containerd dropped (`discard_unpacked_layers`) is not in the snapshot, so it
//! is never advertised.
//!
//! This file holds the store and its [`ContentStore`] answers; `shared.rs` the configuration and
//! the state the parts share; `connection.rs` the loop that keeps the snapshot current and
//! reconnects, `listing.rs` the listing itself, `read.rs` opening content on disk or over
//! gRPC, and `ingest.rs` finding and opening downloads under way.

mod connection;
mod ingest;
mod listing;
mod read;
mod shared;

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use containerd_api::containerd::services::version::v1::version_client::VersionClient;
use oci::manifest::MAX_MANIFEST_SIZE;
use oci::{Digest, Kind};
use store::{Content, ContentStore, Error, Event, Image, Ingest, Listing};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Endpoint;

pub use shared::Config;
use shared::{Inner, Reach};

/// The containerd content store.
#[derive(Clone)]
pub struct Containerd {
    inner: Arc<Inner>,
    reach: tokio::sync::watch::Receiver<Reach>,
}

impl Containerd {
    /// A store over the containerd at `config.socket`. It connects in the background (a task on
    /// `tasks`) and keeps reconnecting with backoff until `shutdown`: containerd being down or
    /// restarting is never fatal. [`Containerd::wait_listed`] waits for the first listing.
    pub fn start(
        config: Config,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<Containerd, Error> {
        let socket = config.socket.clone();
        let namespace =
            AsciiMetadataValue::try_from(config.namespace.as_str()).map_err(|_| Error::Io {
                path: socket.clone(),
                source: io::Error::other(format!(
                    "containerd namespace {:?} is not a valid gRPC metadata value",
                    config.namespace
                )),
            })?;
        let channel = Endpoint::try_from("http://[::]")
            .map_err(|e| Error::Io {
                path: socket.clone(),
                source: io::Error::other(e),
            })?
            .connect_with_connector_lazy(tower::service_fn(move |_| {
                let socket = socket.clone();
                async move {
                    let stream = tokio::net::UnixStream::connect(socket).await?;
                    Ok::<_, io::Error>(hyper_util::rt::TokioIo::new(stream))
                }
            }));
        let (events, _) = broadcast::channel(store::events::BUFFER);
        let inner = Arc::new(Inner {
            config,
            namespace,
            channel,
            snapshot: RwLock::new(Arc::default()),
            events,
            kinds: Mutex::new(HashMap::new()),
            tasks: tasks.clone(),
        });
        let (reach_tx, reach) = tokio::sync::watch::channel(Reach::Connecting);
        tasks.spawn(connection::run(inner.clone(), reach_tx, shutdown));
        Ok(Containerd { inner, reach })
    }

    /// Waits up to `timeout` until the first attempt to list has either listed or found
    /// containerd down; whether containerd answered.
    pub async fn wait_settled(&self, timeout: Duration) -> bool {
        let mut reach = self.reach.clone();
        let _ = tokio::time::timeout(timeout, reach.wait_for(|r| *r != Reach::Connecting)).await;
        *self.reach.borrow() == Reach::Listed
    }

    /// Waits until containerd has been listed (forever while it does not answer).
    pub async fn wait_listed(&self) {
        let mut reach = self.reach.clone();
        let _ = reach.wait_for(|r| *r == Reach::Listed).await;
    }

    fn snapshot(&self) -> Arc<Listing> {
        self.inner
            .snapshot
            .read()
            .expect("snapshot lock poisoned")
            .clone()
    }

    /// containerd's version, such as `1.6.20~ds1` or `v2.1.0`; `None` while unreachable.
    pub async fn version(&self) -> Option<String> {
        let mut client = VersionClient::new(self.inner.channel.clone());
        let response = tokio::time::timeout(Duration::from_secs(2), client.version(()))
            .await
            .ok()?
            .ok()?;
        Some(response.into_inner().version)
    }
}

#[async_trait]
impl ContentStore for Containerd {
    async fn resolve(&self, reference: &str) -> Result<Option<Digest>, Error> {
        Ok(self.snapshot().resolve(reference))
    }

    async fn open(&self, digest: &Digest, kind: Kind) -> Result<Option<Content>, Error> {
        if let Some(content) = self.snapshot().manifest(digest) {
            return Ok(Some(content));
        }
        let Some(mut content) = self.inner.open_blob(digest).await? else {
            return Ok(None);
        };
        if kind == Kind::Blob || content.size > MAX_MANIFEST_SIZE {
            return Ok(Some(content));
        }
        // Small content outside every listed image, asked for as a manifest.
        let known = self
            .inner
            .kinds
            .lock()
            .expect("kind cache poisoned")
            .get(digest)
            .cloned();
        match known {
            Some(kind) => {
                content.media_type = kind;
                Ok(Some(content))
            }
            None => self.inner.classify(digest, content).await.map(Some),
        }
    }

    /// What was last listed; an error while containerd does not answer, so that the status
    /// says so (serving goes on from the snapshot).
    async fn images(&self) -> Result<Vec<Image>, Error> {
        if let Reach::Down(reason) = &*self.reach.borrow() {
            return Err(Error::Unavailable {
                what: format!("containerd at {}", self.inner.config.socket.display()),
                reason: reason.clone(),
            });
        }
        Ok(self.snapshot().images.clone())
    }

    fn watch(&self) -> mpsc::Receiver<Event> {
        let store = self.clone();
        store::events::watch(
            &self.inner.events,
            move || store.snapshot().images.clone(),
            &self.inner.tasks,
        )
    }

    async fn ingest(&self, digest: &Digest) -> Result<Option<Ingest>, Error> {
        self.inner.ingest(digest).await
    }

    async fn open_in_flight(&self, digest: &Digest) -> Result<Option<Content>, Error> {
        self.inner.open_in_flight(digest).await
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn a_namespace_grpc_cannot_carry_is_refused_at_start_naming_it() {
        let config = Config {
            socket: PathBuf::from("/nonexistent/containerd.sock"),
            namespace: "k8s.io\nx".into(),
            content_path: PathBuf::from("/nonexistent"),
            reconcile_interval: Duration::from_secs(60),
            in_flight_stall_timeout: Duration::from_secs(10),
        };
        let Err(e) = Containerd::start(config, &TaskTracker::new(), CancellationToken::new())
        else {
            panic!("a namespace with a newline was accepted");
        };
        assert!(e.to_string().contains(r#""k8s.io\nx""#), "{e}");
    }
}
