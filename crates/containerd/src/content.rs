//! A [`store::ContentStore`] over containerd: image names and events over containerd's gRPC API,
//! bytes straight from its content directory on disk (Content.Read over gRPC when the directory
//! is not readable from here).
//!
//! What the node holds is kept as a snapshot in memory, listed at start, listed again shortly
//! after each image event and every reconcile interval, and after containerd comes back from a
//! restart. A layer containerd dropped (`discard_unpacked_layers`) is not in the snapshot, so it
//! is never advertised.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use containerd_api::containerd::services::content::v1::content_client::ContentClient;
use containerd_api::containerd::services::content::v1::{InfoRequest, ReadContentRequest};
use containerd_api::containerd::services::events::v1::SubscribeRequest;
use containerd_api::containerd::services::events::v1::events_client::EventsClient;
use containerd_api::containerd::services::images::v1::ListImagesRequest;
use containerd_api::containerd::services::images::v1::images_client::ImagesClient;
use containerd_api::containerd::services::version::v1::version_client::VersionClient;
use containerd_api::containerd::types::Envelope;
use containerd_api::namespaced;
use futures::StreamExt as _;
use oci::manifest::{Descriptor, MAX_MANIFEST_SIZE, Manifest};
use oci::{Digest, ImageReference, Kind};
use store::walk;
use store::{Content, ContentStore, Error, Event, Image, Listing};
use timing::Backoff;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::{Channel, Endpoint};

/// Image events arriving within this window lead to one listing.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Reconnect delays: exponential with jitter between these.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// containerd unreachable for longer than this is one ERROR line.
const ERROR_AFTER: Duration = Duration::from_secs(120);
/// Most digests whose kind (manifest or not) is remembered outside the snapshot.
const KIND_CACHE_MAX: usize = 4096;

/// Where containerd is and how often to reconcile.
#[derive(Debug, Clone)]
pub struct Config {
    /// containerd's gRPC socket (`--containerd-sock`).
    pub socket: PathBuf,
    /// The namespace whose images are served (`--containerd-namespace`, `k8s.io` for the CRI).
    pub namespace: String,
    /// containerd's content directory (`--containerd-content-path`).
    pub content_path: PathBuf,
    /// How often everything is listed again even without events (`--store-reconcile-interval`).
    pub reconcile_interval: Duration,
}

/// The containerd content store.
#[derive(Clone)]
pub struct Containerd {
    inner: Arc<Inner>,
    reach: tokio::sync::watch::Receiver<Reach>,
}

/// Whether containerd answers, as the store last found.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reach {
    /// The first connection and listing are under way.
    Connecting,
    /// containerd answered and the snapshot is current.
    Listed,
    /// containerd does not answer; why.
    Down(String),
}

struct Inner {
    config: Config,
    /// `config.namespace` as the gRPC metadata value each request carries.
    namespace: AsciiMetadataValue,
    channel: Channel,
    snapshot: RwLock<Arc<Listing>>,
    events: broadcast::Sender<Event>,
    /// Digests outside the snapshot: their media type when a manifest, `None` when not.
    kinds: Mutex<HashMap<Digest, Option<String>>>,
}

impl Containerd {
    /// A store over the containerd at `config.socket`. It connects in the background and keeps
    /// reconnecting with backoff until `shutdown`: containerd being down or restarting is never
    /// fatal. [`Containerd::wait_listed`] waits for the first listing.
    pub fn start(config: Config, shutdown: CancellationToken) -> Result<Containerd, Error> {
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
        });
        let (reach_tx, reach) = tokio::sync::watch::channel(Reach::Connecting);
        tokio::spawn(run(inner.clone(), reach_tx, shutdown));
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

impl Inner {
    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.config
            .content_path
            .join("blobs")
            .join(digest.blob_path())
    }

    fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }

    fn disk_readable(&self) -> bool {
        std::fs::read_dir(self.config.content_path.join("blobs")).is_ok()
    }

    /// Opens `digest`: its file on disk, else (the content directory is not readable from here)
    /// over gRPC; `None` when containerd lacks it. The disk is read on the blocking pool.
    async fn open_blob(&self, digest: &Digest) -> Result<Option<Content>, Error> {
        let path = self.blob_path(digest);
        let blobs = self.config.content_path.join("blobs");
        let on_disk = tokio::task::spawn_blocking({
            let path = path.clone();
            move || match store::open_file(path) {
                Ok(Some(content)) => Some(Some(content)),
                // Missing, and the directory is readable: containerd does not have it.
                Ok(None) if std::fs::read_dir(blobs).is_ok() => Some(None),
                _ => None,
            }
        })
        .await
        .map_err(|e| Error::Io {
            path,
            source: io::Error::other(e),
        })?;
        match on_disk {
            Some(found) => Ok(found),
            None => self.open_grpc(digest).await,
        }
    }

    /// Opens `digest` over gRPC: its size from Content.Info now, its bytes by Content.Read when
    /// streamed.
    async fn open_grpc(&self, digest: &Digest) -> Result<Option<Content>, Error> {
        let request = namespaced(
            InfoRequest {
                digest: digest.to_string(),
            },
            &self.namespace,
        );
        let info = match self.content().info(request).await {
            Ok(r) => r.into_inner().info,
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => return Err(grpc_error(&self.config.socket, s)),
        };
        let Some(info) = info else { return Ok(None) };
        let reader = GrpcReader {
            client: self.content(),
            namespace: self.namespace.clone(),
            socket: self.config.socket.clone(),
            digest: digest.to_string(),
        };
        Ok(Some(Content::deferred(
            u64::try_from(info.size).unwrap_or(0),
            Box::new(move |offset, len| Box::pin(reader.read(offset, len))),
        )))
    }

    /// Reads small content asked for as a manifest and finds out whether it is one, once: the
    /// answer is remembered for digests outside the snapshot.
    async fn classify(&self, digest: &Digest, content: Content) -> Result<Content, Error> {
        let mut bytes = Vec::new();
        if let Some(mut stream) = content.stream(None).await? {
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(|source| Error::Io {
                    path: self.blob_path(digest),
                    source,
                })?);
            }
        }
        let kind = walk::matches(digest, &bytes)
            .then(|| Manifest::parse(&bytes).ok().map(|m| m.media_type))
            .flatten();
        let mut kinds = self.kinds.lock().expect("kind cache poisoned");
        if kinds.len() >= KIND_CACHE_MAX {
            kinds.clear();
        }
        kinds.insert(digest.clone(), kind.clone());
        Ok(Content::from_bytes(Bytes::from(bytes), kind))
    }

    /// Everything the namespace holds now.
    async fn list(&self, previous: &Listing) -> Result<Listing, Error> {
        let request = namespaced(
            ListImagesRequest {
                filters: Vec::new(),
            },
            &self.namespace,
        );
        let images = ImagesClient::new(self.channel.clone())
            .list(request)
            .await
            .map_err(|s| grpc_error(&self.config.socket, s))?
            .into_inner()
            .images;
        let mut source = Source {
            root: self.config.content_path.clone(),
            disk: self.disk_readable(),
            grpc: (
                tokio::runtime::Handle::current(),
                self.content(),
                self.namespace.clone(),
            ),
        };
        let mut manifests = previous.manifests.clone();
        let listed = tokio::task::spawn_blocking(move || {
            let mut snap = Listing::default();
            for image in images {
                // The CRI names each image a second time by its config digest (`sha256:…`);
                // that alias holds nothing the named image does not.
                if image.name.parse::<Digest>().is_ok() {
                    continue;
                }
                let Some(target) = image.target else { continue };
                let Ok(digest) = target.digest.parse::<Digest>() else {
                    continue;
                };
                let top = Descriptor {
                    media_type: target.media_type,
                    digest,
                    size: u64::try_from(target.size).unwrap_or(0),
                    annotations: None,
                };
                let contents = walk::contents(&top, &mut source, &mut manifests);
                if contents.is_empty() {
                    continue;
                }
                let name = image
                    .name
                    .parse::<ImageReference>()
                    .ok()
                    .filter(|r| r.tag.is_some());
                snap.push(name, top.digest, contents);
            }
            // Keep only the manifests of images still held.
            let held: std::collections::HashSet<&Digest> =
                snap.images.iter().flat_map(|i| i.contents.iter()).collect();
            manifests.retain(|d, _| held.contains(d));
            snap.manifests = manifests;
            snap
        })
        .await
        .map_err(|e| Error::Io {
            path: self.config.socket.clone(),
            source: io::Error::other(e),
        })?;
        Ok(listed)
    }

    /// Lists and publishes what changed.
    async fn refresh(&self) -> Result<(), Error> {
        let started = Instant::now();
        let current = self
            .snapshot
            .read()
            .expect("snapshot lock poisoned")
            .clone();
        let next = self.list(&current).await?;
        tracing::debug!(
            images = next.images.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "listed containerd's images"
        );
        store::events::publish(&self.snapshot, next, &self.events);
        Ok(())
    }
}

/// Reading content for a listing, from a blocking thread: disk when readable, else gRPC.
struct Source {
    root: PathBuf,
    disk: bool,
    grpc: (
        tokio::runtime::Handle,
        ContentClient<Channel>,
        AsciiMetadataValue,
    ),
}

impl walk::Source for Source {
    fn manifest(&mut self, digest: &Digest) -> Option<Bytes> {
        let bytes = if self.disk {
            let path = self.root.join("blobs").join(digest.blob_path());
            let meta = std::fs::metadata(&path).ok()?;
            if meta.len() > MAX_MANIFEST_SIZE {
                return None;
            }
            Bytes::from(std::fs::read(&path).ok()?)
        } else {
            let (handle, client, ns) = &mut self.grpc;
            let request = namespaced(
                ReadContentRequest {
                    digest: digest.to_string(),
                    offset: 0,
                    size: 0,
                },
                ns,
            );
            handle.block_on(async {
                let mut stream = client.read(request).await.ok()?.into_inner();
                let mut out = Vec::new();
                while let Some(m) = stream.next().await {
                    out.extend_from_slice(&m.ok()?.data);
                    if out.len() as u64 > MAX_MANIFEST_SIZE {
                        return None;
                    }
                }
                Some(Bytes::from(out))
            })?
        };
        walk::matches(digest, &bytes).then_some(bytes)
    }

    fn exists(&mut self, digest: &Digest) -> bool {
        if self.disk {
            return self.root.join("blobs").join(digest.blob_path()).is_file();
        }
        let (handle, client, ns) = &mut self.grpc;
        let request = namespaced(
            InfoRequest {
                digest: digest.to_string(),
            },
            ns,
        );
        handle.block_on(client.info(request)).is_ok()
    }
}

/// Reads content over gRPC (Content.Read) once its size is known.
struct GrpcReader {
    client: ContentClient<Channel>,
    namespace: AsciiMetadataValue,
    socket: PathBuf,
    digest: String,
}

impl GrpcReader {
    /// `len` bytes from `offset`; `None` when containerd no longer has the content.
    async fn read(mut self, offset: u64, len: u64) -> Result<Option<store::ByteStream>, Error> {
        let request = namespaced(
            ReadContentRequest {
                digest: self.digest,
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                size: i64::try_from(len).unwrap_or(i64::MAX),
            },
            &self.namespace,
        );
        match self.client.read(request).await {
            Ok(r) => {
                let stream = r.into_inner().map(|m| {
                    m.map(|m| Bytes::from(m.data))
                        .map_err(|s| io::Error::other(s.to_string()))
                });
                Ok(Some(Box::pin(stream)))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(grpc_error(&self.socket, s)),
        }
    }
}

fn grpc_error(socket: &Path, status: tonic::Status) -> Error {
    Error::Io {
        path: socket.to_owned(),
        source: io::Error::other(format!("containerd: {}", status.message())),
    }
}

/// Keeps the snapshot current: list, follow events, reconcile, and reconnect with backoff
/// whenever containerd goes away.
async fn run(
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
        store::events::watch(&self.inner.events, move || store.snapshot().images.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_grpc_cannot_carry_is_refused_at_start_naming_it() {
        let config = Config {
            socket: PathBuf::from("/nonexistent/containerd.sock"),
            namespace: "k8s.io\nx".into(),
            content_path: PathBuf::from("/nonexistent"),
            reconcile_interval: Duration::from_secs(60),
        };
        let Err(e) = Containerd::start(config, CancellationToken::new()) else {
            panic!("a namespace with a newline was accepted");
        };
        assert!(e.to_string().contains(r#""k8s.io\nx""#), "{e}");
    }
}
