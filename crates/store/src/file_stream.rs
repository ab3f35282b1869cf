//! Streaming a byte range of a file without holding it in memory, reading one chunk ahead so the
//! disk read of the next chunk overlaps the network write of this one.

use std::fs::File;
use std::future::Future as _;
use std::io::{self, Read, Seek, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::Stream;
use tokio::task::JoinHandle;

/// How much is read per chunk: large enough that the per-chunk hop to the blocking pool is
/// noise next to the copy, small enough that many concurrent transfers stay cheap (at most two
/// chunks are held per transfer).
const CHUNK: usize = 512 * 1024;

type ReadResult = (File, io::Result<Bytes>);

/// A stream of `len` bytes of `file` from its current position.
pub(crate) struct FileStream {
    remaining: u64,
    pending: Option<JoinHandle<ReadResult>>,
}

impl FileStream {
    /// Streams `len` bytes of `file` from `offset`.
    pub(crate) fn new(mut file: File, offset: u64, len: u64) -> io::Result<FileStream> {
        if offset > 0 {
            file.seek(SeekFrom::Start(offset))?;
        }
        let mut s = FileStream {
            remaining: len,
            pending: None,
        };
        s.start_read(file);
        Ok(s)
    }

    fn start_read(&mut self, mut file: File) {
        if self.remaining == 0 {
            return;
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(CHUNK);
        self.pending = Some(tokio::task::spawn_blocking(move || {
            // `read_to_end` reads into the vector's spare capacity without zeroing it first:
            // a chunk is written once, by the read, not twice.
            let mut buf = Vec::with_capacity(want);
            let read = (&mut file).take(want as u64).read_to_end(&mut buf);
            (file, read.map(|_| Bytes::from(buf)))
        }));
    }
}

impl Stream for FileStream {
    type Item = io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let Some(pending) = self.pending.as_mut() else {
            return Poll::Ready(None);
        };
        let joined = ready!(Pin::new(pending).poll(cx));
        self.pending = None;
        let (file, read) = match joined {
            Ok(r) => r,
            Err(e) => return Poll::Ready(Some(Err(io::Error::other(e)))),
        };
        match read {
            Ok(chunk) if chunk.is_empty() => {
                // The file is shorter than its description said: it shrank or was replaced.
                self.remaining = 0;
                Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "content ended before its size",
                ))))
            }
            Ok(chunk) => {
                self.remaining -= chunk.len() as u64;
                self.start_read(file);
                Poll::Ready(Some(Ok(chunk)))
            }
            Err(e) => {
                self.remaining = 0;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl Drop for FileStream {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use futures::StreamExt as _;

    use super::*;

    fn file_of(bytes: &[u8]) -> File {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(bytes).unwrap();
        f.seek(SeekFrom::Start(0)).unwrap();
        f
    }

    async fn collect(mut s: FileStream) -> (Vec<u8>, Option<io::ErrorKind>) {
        let mut out = Vec::new();
        while let Some(chunk) = s.next().await {
            match chunk {
                Ok(c) => out.extend_from_slice(&c),
                Err(e) => return (out, Some(e.kind())),
            }
        }
        (out, None)
    }

    #[tokio::test]
    async fn streams_a_range_in_chunks() {
        let bytes: Vec<u8> = (0..CHUNK * 2 + 1000).map(|i| (i % 253) as u8).collect();
        let s = FileStream::new(file_of(&bytes), 17, (CHUNK * 2) as u64).unwrap();
        let (out, err) = collect(s).await;
        assert_eq!(err, None);
        assert!(out == bytes[17..17 + CHUNK * 2]);
    }

    #[tokio::test]
    async fn a_file_shorter_than_said_is_an_error() {
        let bytes = vec![7u8; CHUNK + 10];
        let s = FileStream::new(file_of(&bytes), 0, (CHUNK + 100) as u64).unwrap();
        let (out, err) = collect(s).await;
        assert_eq!(out.len(), CHUNK + 10);
        assert_eq!(err, Some(io::ErrorKind::UnexpectedEof));
    }
}
