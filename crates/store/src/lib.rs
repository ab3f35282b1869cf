//! Where Speil's content comes from: the [`ContentStore`] trait the registry serves from and the
//! P2P layer advertises from, and [`OciDir`], a store over an OCI image-layout directory.
//!
//! A store is read-only to Speil: containerd (or whoever fills the directory) writes, Speil
//! notices through [`ContentStore::watch`] and serves.

pub mod events;
mod file_stream;
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
use oci::{Digest, ImageReference};

pub use listing::Listing;
pub use oci_dir::OciDir;

/// Streams `len` bytes of `file` from `offset`, reading one chunk ahead on the blocking pool.
pub fn file_stream(file: std::fs::File, offset: u64, len: u64) -> io::Result<ByteStream> {
    Ok(Box::pin(file_stream::FileStream::new(file, offset, len)?))
}

/// A stream of content bytes, read in chunks, never the whole blob in memory at once.
pub type ByteStream = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;

/// What a store knows about one digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// The content's size in bytes.
    pub size: u64,
    /// The media type when the store knows it: always for manifests and indexes, which is how
    /// the registry tells a manifest from a blob.
    pub media_type: Option<String>,
}

impl Info {
    /// Whether this content is a manifest or an index.
    pub fn is_manifest(&self) -> bool {
        self.media_type
            .as_deref()
            .is_some_and(oci::media_type::is_manifest)
    }
}

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

/// Bytes of one piece of content, possibly a range of it.
pub struct Content {
    /// The size of the whole content, not just the range.
    pub size: u64,
    /// The inclusive offsets served, `(0, size - 1)` for the whole content.
    pub range: Option<(u64, u64)>,
    /// The bytes.
    pub stream: ByteStream,
}

impl Content {
    /// Content held in memory (a manifest), whole or the inclusive `range` of it; the range
    /// must lie within `bytes`.
    pub fn from_bytes(bytes: &Bytes, range: Option<(u64, u64)>) -> Content {
        let size = bytes.len() as u64;
        let slice = match (range, bytes.is_empty()) {
            (_, true) => Bytes::new(),
            (None, false) => bytes.clone(),
            (Some((first, last)), false) => {
                let last = usize::try_from(last)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - 1);
                let first = usize::try_from(first).unwrap_or(usize::MAX).min(last);
                bytes.slice(first..=last)
            }
        };
        let stream = futures::stream::once(async move { Ok(slice) });
        Content {
            size,
            range,
            stream: Box::pin(stream),
        }
    }
}

/// A source of images and content that Speil serves and advertises.
#[async_trait]
pub trait ContentStore: Send + Sync + 'static {
    /// The digest a full tag reference (`registry/repository:tag`) points at.
    async fn resolve(&self, reference: &str) -> Result<Option<Digest>, Error>;

    /// The size and, for manifests, the media type of `digest`.
    async fn describe(&self, digest: &Digest) -> Result<Option<Info>, Error>;

    /// The bytes of `digest`, or of the inclusive byte range `range` of it. The range must lie
    /// within the content (the caller resolves it against [`ContentStore::describe`]'s size).
    async fn open(
        &self,
        digest: &Digest,
        range: Option<(u64, u64)>,
    ) -> Result<Option<Content>, Error>;

    /// Every image the store holds now.
    async fn images(&self) -> Result<Vec<Image>, Error>;

    /// Changes to the store: [`Event::Listed`] first, then changes as they happen. The stream
    /// ends when the store shuts down or the receiver is dropped.
    fn watch(&self) -> tokio::sync::mpsc::Receiver<Event>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    async fn bytes_of(c: Content) -> Vec<u8> {
        c.stream.map(|b| b.unwrap().to_vec()).concat().await
    }

    #[tokio::test]
    async fn content_from_bytes_whole_and_ranged() {
        let b = Bytes::from_static(b"0123456789");
        let whole = Content::from_bytes(&b, None);
        assert_eq!(whole.size, 10);
        assert_eq!(bytes_of(whole).await, b"0123456789");
        assert_eq!(
            bytes_of(Content::from_bytes(&b, Some((2, 4)))).await,
            b"234"
        );
        assert_eq!(
            bytes_of(Content::from_bytes(&b, Some((8, 99)))).await,
            b"89"
        );
        assert!(
            bytes_of(Content::from_bytes(&Bytes::new(), None))
                .await
                .is_empty()
        );
    }
}
