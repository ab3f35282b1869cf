//! A [`ContentStore`] over an OCI image-layout directory (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`), such as `skopeo copy … oci:DIR:NAME` writes.
//!
//! `index.json` is polled (a `stat` per interval) and re-read when it changes, so images added or
//! removed while Speil runs are picked up within one interval. Manifests are small and are held in
//! memory; blobs are streamed from disk.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use oci::manifest::{Descriptor, MAX_MANIFEST_SIZE};
use oci::{Digest, ImageReference, Kind};
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::{Content, ContentStore, Error, Event, Image, Listing};
use crate::{events, walk};

/// The largest `index.json` read; a layout with more images than fit is malformed for Speil.
const MAX_INDEX_SIZE: u64 = 64 * 1024 * 1024;
/// containerd's annotation holding an image's full name.
const CONTAINERD_NAME: &str = "io.containerd.image.name";
/// The OCI annotation holding a tag or, as skopeo writes it, a full reference.
const OCI_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An OCI image-layout directory served read-only.
#[derive(Clone)]
pub struct OciDir {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    listing: RwLock<Arc<Listing>>,
    events: broadcast::Sender<Event>,
    /// Where the store's tasks run (the refresh and each watch), so shutdown waits for them.
    tasks: TaskTracker,
}

/// Identity of the `index.json` last read: a change of any of these means it was rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime_ns: i128,
}

#[derive(Deserialize)]
struct IndexJson {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

impl OciDir {
    /// Opens the layout at `root` and keeps it current by checking `index.json` every
    /// `poll_interval` until `shutdown` is cancelled or the store is dropped, in a task on
    /// `tasks`.
    ///
    /// Fails when `root` is not an OCI image layout or its `index.json` is malformed.
    pub async fn open(
        root: impl Into<PathBuf>,
        poll_interval: Duration,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Result<OciDir, Error> {
        let root = root.into();
        let (stamp, listing) = {
            let root = root.clone();
            tokio::task::spawn_blocking(move || load(&root))
                .await
                .map_err(|e| Error::Io {
                    path: PathBuf::new(),
                    source: io::Error::other(e),
                })??
        };
        let (events, _) = broadcast::channel(events::BUFFER);
        let inner = Arc::new(Inner {
            root,
            listing: RwLock::new(Arc::new(listing)),
            events,
            tasks: tasks.clone(),
        });
        let refreshing = refresh(Arc::downgrade(&inner), stamp, poll_interval, shutdown);
        tasks.spawn(refreshing);
        Ok(OciDir { inner })
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn listing(&self) -> Arc<Listing> {
        self.inner
            .listing
            .read()
            .expect("listing lock poisoned")
            .clone()
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("blobs").join(digest.blob_path())
    }
}

#[async_trait]
impl ContentStore for OciDir {
    async fn resolve(&self, reference: &str) -> Result<Option<Digest>, Error> {
        Ok(self.listing().resolve(reference))
    }

    async fn open(&self, digest: &Digest, _kind: Kind) -> Result<Option<Content>, Error> {
        // Only listed manifests are classified: content outside every image is served as a blob.
        if let Some(content) = self.listing().manifest(digest) {
            return Ok(Some(content));
        }
        let path = self.blob_path(digest);
        let opened = tokio::task::spawn_blocking({
            let path = path.clone();
            move || crate::open_file(path)
        })
        .await
        .map_err(|e| Error::Io {
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        opened.map_err(|source| Error::Io { path, source })
    }

    async fn images(&self) -> Result<Vec<Image>, Error> {
        Ok(self.listing().images.clone())
    }

    fn watch(&self) -> mpsc::Receiver<Event> {
        let store = self.clone();
        events::watch(
            &self.inner.events,
            move || store.listing().images.clone(),
            &self.inner.tasks,
        )
    }
}

/// Re-reads `index.json` whenever it changes from `stamp`, publishing what changed, until
/// shutdown.
async fn refresh(
    inner: Weak<Inner>,
    mut stamp: Stamp,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut failing = false;
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        let Some(inner) = inner.upgrade() else { return };
        let index = inner.root.join("index.json");
        let now = tokio::fs::metadata(&index).await.ok().map(|m| stamp_of(&m));
        if now == Some(stamp) && !failing {
            continue;
        }
        let root = inner.root.clone();
        let loaded = match tokio::task::spawn_blocking(move || load(&root)).await {
            Ok(r) => r,
            Err(e) => Err(Error::Io {
                path: index.clone(),
                source: io::Error::other(e),
            }),
        };
        match loaded {
            Ok((next_stamp, next)) => {
                if failing {
                    tracing::info!(path = %index.display(), "image layout readable again");
                }
                failing = false;
                stamp = next_stamp;
                events::publish(&inner.listing, next, &inner.events);
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "image layout unreadable, serving what was last read");
                }
                failing = true;
            }
        }
    }
}

fn stamp_of(m: &std::fs::Metadata) -> Stamp {
    Stamp {
        ino: m.ino(),
        len: m.len(),
        mtime_ns: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
    }
}

fn malformed(path: &Path, reason: impl ToString) -> Error {
    Error::Malformed {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

/// Reads the whole layout: `index.json` (and its stamp), then every manifest reachable from it.
fn load(root: &Path) -> Result<(Stamp, Listing), Error> {
    let layout = root.join("oci-layout");
    if !layout.is_file() {
        return Err(malformed(
            root,
            "not an OCI image layout: no oci-layout file",
        ));
    }
    let index_path = root.join("index.json");
    let io_err = |source| Error::Io {
        path: index_path.clone(),
        source,
    };
    let meta = std::fs::metadata(&index_path).map_err(io_err)?;
    if meta.len() > MAX_INDEX_SIZE {
        return Err(malformed(
            &index_path,
            format!("larger than {MAX_INDEX_SIZE} bytes"),
        ));
    }
    let bytes = std::fs::read(&index_path).map_err(io_err)?;
    let index: IndexJson = serde_json::from_slice(&bytes).map_err(|e| malformed(&index_path, e))?;

    let mut listing = Listing::default();
    for desc in index.manifests {
        if !oci::media_type::is_manifest(&desc.media_type) {
            continue;
        }
        let contents = walk::contents(&desc, &mut Blobs(root), &mut listing.manifests);
        if contents.is_empty() {
            tracing::debug!(digest = %desc.digest, "image in index.json lacks its manifest");
            continue;
        }
        listing.push(image_name(&desc), desc.digest, contents);
    }
    Ok((stamp_of(&meta), listing))
}

/// The image's full reference from its annotations, when it has one with a tag.
fn image_name(desc: &Descriptor) -> Option<ImageReference> {
    let annotations = desc.annotations.as_ref()?;
    [CONTAINERD_NAME, OCI_REF_NAME]
        .iter()
        .filter_map(|k| annotations.get(*k))
        .filter_map(|v| v.parse::<ImageReference>().ok())
        .find(|r| r.tag.is_some())
}

/// The layout's blobs directory as a [`walk::Source`].
struct Blobs<'a>(&'a Path);

impl walk::Source for Blobs<'_> {
    fn manifest(&mut self, digest: &Digest) -> Option<Bytes> {
        read_manifest(&self.0.join("blobs").join(digest.blob_path()), digest)
    }

    fn exists(&mut self, digest: &Digest) -> bool {
        self.0.join("blobs").join(digest.blob_path()).is_file()
    }
}

/// A manifest's bytes, if present, not too large, and matching its digest.
fn read_manifest(path: &Path, digest: &Digest) -> Option<Bytes> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_MANIFEST_SIZE {
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    if !walk::matches(digest, &bytes) {
        tracing::warn!(path = %path.display(), "manifest does not match its digest, ignoring it");
        return None;
    }
    Some(Bytes::from(bytes))
}
