//! One piece of content opened for serving: its size and media type known at once, its bytes
//! streamed only when asked for, so a HEAD, or a GET refused for its range or kind, costs one
//! open and never a read.

use std::fs::File;
use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use futures::future::BoxFuture;

use crate::file_stream::FileStream;
use crate::{ByteStream, Error};

/// Opens `len` bytes from `offset` of content whose size is already known, such as a read over
/// gRPC; `None` when the content went away since it was described.
pub type Deferred =
    Box<dyn FnOnce(u64, u64) -> BoxFuture<'static, Result<Option<ByteStream>, Error>> + Send>;

/// Content a store has opened: see [`crate::ContentStore::open`].
pub struct Content {
    /// The size of the whole content in bytes.
    pub size: u64,
    /// The media type when the store knows it: always for a manifest asked for as one.
    pub media_type: Option<String>,
    body: Body,
}

enum Body {
    /// Held in memory (a manifest).
    Memory(Bytes),
    /// An open file; `path` names it in errors.
    File { file: File, path: PathBuf },
    /// Opened when streamed.
    Deferred(Deferred),
}

impl Content {
    /// Content held in memory, such as a manifest.
    pub fn from_bytes(bytes: Bytes, media_type: Option<String>) -> Content {
        Content {
            size: bytes.len() as u64,
            media_type,
            body: Body::Memory(bytes),
        }
    }

    /// Content in an open file of `size` bytes at `path`.
    pub fn from_file(file: File, size: u64, path: PathBuf) -> Content {
        Content {
            size,
            media_type: None,
            body: Body::File { file, path },
        }
    }

    /// Content of `size` bytes whose bytes `open` fetches when streamed.
    pub fn deferred(size: u64, open: Deferred) -> Content {
        Content {
            size,
            media_type: None,
            body: Body::Deferred(open),
        }
    }

    /// Whether this content is a manifest or an index.
    pub fn is_manifest(&self) -> bool {
        self.media_type
            .as_deref()
            .is_some_and(oci::media_type::is_manifest)
    }

    /// The bytes, whole or the inclusive `range` of them, which must lie within the content;
    /// `None` when the content went away since it was opened. A file is read one chunk ahead on
    /// the blocking pool.
    pub async fn stream(self, range: Option<(u64, u64)>) -> Result<Option<ByteStream>, Error> {
        let (offset, len) = match range {
            Some((first, last)) => (first, last.saturating_sub(first) + 1),
            None => (0, self.size),
        };
        match self.body {
            Body::Memory(bytes) => Ok(Some(memory_stream(&bytes, range))),
            Body::File { file, path } => {
                let stream = FileStream::new(file, offset, len)
                    .map_err(|source| Error::Io { path, source })?;
                Ok(Some(Box::pin(stream)))
            }
            Body::Deferred(open) => open(offset, len).await,
        }
    }
}

/// `bytes`, whole or the inclusive `range` of them (clamped to `bytes`), as one chunk.
fn memory_stream(bytes: &Bytes, range: Option<(u64, u64)>) -> ByteStream {
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
    Box::pin(futures::stream::once(async move { Ok(slice) }))
}

/// Opens the regular file at `path` with its size; `Ok(None)` when there is none. Blocking:
/// call it on the blocking pool.
pub fn open_file(path: PathBuf) -> io::Result<Option<Content>> {
    let file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(None);
    }
    Ok(Some(Content::from_file(file, meta.len(), path)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    async fn bytes_of(c: Content, range: Option<(u64, u64)>) -> Vec<u8> {
        let stream = c.stream(range).await.unwrap().unwrap();
        stream.map(|b| b.unwrap().to_vec()).concat().await
    }

    #[tokio::test]
    async fn content_from_bytes_whole_and_ranged() {
        let b = Bytes::from_static(b"0123456789");
        let whole = Content::from_bytes(b.clone(), None);
        assert_eq!(whole.size, 10);
        assert_eq!(bytes_of(whole, None).await, b"0123456789");
        assert_eq!(
            bytes_of(Content::from_bytes(b.clone(), None), Some((2, 4))).await,
            b"234"
        );
        assert_eq!(
            bytes_of(Content::from_bytes(b.clone(), None), Some((8, 99))).await,
            b"89"
        );
        assert!(
            bytes_of(Content::from_bytes(Bytes::new(), None), None)
                .await
                .is_empty()
        );
    }
}
