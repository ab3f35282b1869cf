//! Where Speil's content comes from: the [`ContentStore`] trait the registry serves from and the
//! P2P layer advertises from, and [`OciDir`], a store over an OCI image-layout directory.
//!
//! A store is read-only to Speil: containerd (or whoever fills the directory) writes, Speil
//! notices through [`ContentStore::watch`] and serves.

mod content;
pub mod events;
mod file_stream;
mod growing;
pub mod layout;
mod listing;
mod oci_dir;
pub mod walk;

use std::io;
use std::path::PathBuf;
use std::pin::Pin;

use async_trait::async_trait;
use bytes::Bytes;
use futures::Stream;
use oci::{Digest, ImageReference, Kind};

pub use content::{Content, Deferred, open_file};
pub use growing::{Follow, Writer, follow};
pub use listing::Listing;
pub use oci_dir::OciDir;

/// A stream of content bytes, read in chunks, never the whole blob in memory at once.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// An image the store holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Image {
    /// Its full reference with a tag, when the store names it that way; an image known only by a
    /// bare tag has none and is served by digest only.
    pub name: Option<ImageReference>,
    /// The digest of its manifest or index.
    pub digest: Digest,
    /// Every digest the image consists of that is present in the store: the manifest or index
    /// itself, the manifests an index lists, configs and layers. Content the image references
    /// but the store lacks is left out, so it is never advertised.
    pub contents: Vec<Digest>,
}

/// A download under way into a store: containerd's ingest of a layer it is pulling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ingest {
    /// The size the content will have.
    pub total: u64,
    /// The bytes written so far.
    pub written: u64,
}

/// A change in what a store holds, as [`ContentStore::watch`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Everything the store holds now. Sent first, and again whenever events may have been lost,
    /// so a consumer can always rebuild its view from the latest listing.
    Listed(Vec<Image>),
    /// An image appeared or changed (a tag moved to another digest).
    Created(Image),
    /// An image is gone.
    Deleted(Image),
}

/// Why a store could not answer. A miss is not an error: methods answer `Ok(None)` for content
/// the store does not hold.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading the store failed.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The store's backend does not answer (containerd down or restarting).
    #[error("{what} does not answer: {reason}")]
    Unavailable {
        /// What was asked, such as `containerd at /run/containerd/containerd.sock`.
        what: String,
        /// Why not.
        reason: String,
    },
    /// The store's own metadata is malformed.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file that is malformed.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A source of images and content that Speil serves and advertises.
#[async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// The digest a full tag reference (`registry/repository:tag`) points at.
    async fn resolve(&self, reference: &str) -> Result<Option<Digest>, Error>;

    /// Opens `digest` to be served as `kind`: its size, and its bytes ready to stream; `None`
    /// when the store does not hold it. Asked for as [`Kind::Manifest`], the content's
    /// `media_type` is its manifest media type when the store knows it as a manifest, `None`
    /// otherwise (an OCI directory knows its listed manifests; containerd's store also reads
    /// small unlisted content to find out). Asked for as a blob, content is not classified: its
    /// `media_type` may be `None` even for a manifest.
    async fn open(&self, digest: &Digest, kind: Kind) -> Result<Option<Content>, Error>;

    /// Every image the store holds now.
    async fn images(&self) -> Result<Vec<Image>, Error>;

    /// Changes to the store: [`Event::Listed`] first, then changes as they happen. The stream
    /// ends when the store shuts down or the receiver is dropped.
    fn watch(&self) -> tokio::sync::mpsc::Receiver<Event>;

    /// The download of `digest` under way into the store, when there is one whose size is
    /// known; `None` otherwise, and always for a store that cannot tell.
    async fn ingest(&self, _digest: &Digest) -> Result<Option<Ingest>, Error> {
        Ok(None)
    }

    /// Opens `digest` while its download is under way, to be served to a peer as it grows
    /// (see [`follow`]); `None` when no such download exists. Never for the node's own
    /// containerd: it would wait on the very download it is asking for.
    async fn open_in_flight(&self, _digest: &Digest) -> Result<Option<Content>, Error> {
        Ok(None)
    }
}
