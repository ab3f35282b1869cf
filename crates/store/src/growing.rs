//! Streaming a file while another process is still writing it (containerd's download of a
//! layer, served to peers before it is complete): bytes are sent as they are written, the
//! stream waits with a bounded poll when it has caught up with the writer, and it ends with an
//! error as soon as the writer is gone, has stopped for too long, or started over, so the
//! reader moves on to another source instead of hanging.
//!
//! Read from its first byte to its last, the stream hashes every byte and holds the last chunk
//! back until the digest matches: a download that would fail containerd's own check at commit
//! never reaches a peer whole.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use oci::{Digest, Hasher};

use crate::ByteStream;

/// Most bytes read at once: what the writer has written since the last read, up to this.
const CHUNK: usize = 512 * 1024;
/// How long the stream sleeps after catching up with the writer before it looks again.
const POLL: Duration = Duration::from_millis(20);

/// Where the writer of a followed file stands, as [`Follow::writer`] finds out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// Still writing: more bytes may come.
    Writing,
    /// Done: the file is complete (containerd committed it).
    Done,
    /// Gone without finishing (the download was abandoned).
    Gone,
}

/// How a file being written is followed.
#[derive(Clone)]
pub struct Follow {
    /// The size the file grows to.
    pub total: u64,
    /// The content's digest, checked when the stream covers the whole file.
    pub digest: Digest,
    /// How long the file may go without growing before the stream gives up.
    pub stall_timeout: Duration,
    /// Where the writer stands; asked only when the stream has caught up with it.
    pub writer: Arc<dyn Fn() -> Writer + Send + Sync>,
}

/// `len` bytes of `file` from `offset` as `follow` describes the file's writing.
pub fn follow(file: File, offset: u64, len: u64, follow: Follow) -> ByteStream {
    let end = offset.saturating_add(len).min(follow.total);
    let check = (offset == 0 && end == follow.total).then(|| follow.digest.hasher());
    let state = State {
        file: Arc::new(file),
        pos: offset,
        end,
        check,
        last_growth: Instant::now(),
        longest: 0,
        follow,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut s| async move {
        let item = s.next().await?;
        s.failed = item.is_err();
        Some((item, s))
    }))
}

struct State {
    file: Arc<File>,
    pos: u64,
    end: u64,
    /// The hash of everything sent so far, when the stream started at the first byte.
    check: Option<Hasher>,
    last_growth: Instant,
    /// The longest the file was seen to be: shorter later means the writer started over.
    longest: u64,
    follow: Follow,
    failed: bool,
}

/// What one look at the file found.
enum Look {
    Bytes(Bytes),
    /// Nothing new; the file's length and the writer's state.
    CaughtUp {
        len: u64,
        writer: Writer,
    },
}

impl State {
    async fn next(&mut self) -> Option<io::Result<Bytes>> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        loop {
            match self.look().await {
                Err(e) => return Some(Err(e)),
                Ok(Look::Bytes(chunk)) => return Some(self.sent(chunk)),
                Ok(Look::CaughtUp { len, writer }) => {
                    if let Err(e) = self.still_coming(len, writer) {
                        return Some(Err(e));
                    }
                    tokio::time::sleep(POLL).await;
                }
            }
        }
    }

    /// Reads what the writer has written past the position, on the blocking pool; when there
    /// is nothing, finds out how the writer stands.
    async fn look(&self) -> io::Result<Look> {
        let file = self.file.clone();
        let (pos, want) = (
            self.pos,
            usize::try_from(self.end - self.pos)
                .unwrap_or(usize::MAX)
                .min(CHUNK),
        );
        let writer = self.follow.writer.clone();
        tokio::task::spawn_blocking(move || {
            let mut buf = BytesMut::zeroed(want);
            let n = loop {
                match file.read_at(&mut buf, pos) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            };
            if n > 0 {
                buf.truncate(n);
                return Ok(Look::Bytes(buf.freeze()));
            }
            // The writer's state first, then the length: a writer that finished in between
            // has its last bytes counted.
            let writer = writer();
            let len = file.metadata()?.len();
            Ok(Look::CaughtUp { len, writer })
        })
        .await
        .map_err(io::Error::other)?
    }

    /// Takes `chunk` as sent: the position moves, the hash covers it, and the last chunk is
    /// refused when the whole does not match the digest.
    fn sent(&mut self, chunk: Bytes) -> io::Result<Bytes> {
        self.pos += chunk.len() as u64;
        self.longest = self.longest.max(self.pos);
        self.last_growth = Instant::now();
        if let Some(hasher) = self.check.as_mut() {
            hasher.update(&chunk);
            if self.pos == self.end {
                let got = self.check.take().expect("checked above").finish();
                if got != self.follow.digest {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "the download of {} ended as {got}: not served",
                            self.follow.digest
                        ),
                    ));
                }
            }
        }
        Ok(chunk)
    }

    /// Whether more bytes can still come, with the file `len` bytes long and its writer as
    /// found; an error saying why not.
    fn still_coming(&mut self, len: u64, writer: Writer) -> io::Result<()> {
        if len < self.longest {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the download started over: its file shrank",
            ));
        }
        if len > self.longest {
            // Growing, though not yet up to a range that starts further on.
            self.longest = len;
            self.last_growth = Instant::now();
        }
        if len > self.pos {
            return Ok(()); // written between the read and the look at its length
        }
        match writer {
            Writer::Done => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the download finished shorter than its size",
            )),
            Writer::Gone => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the download was abandoned",
            )),
            Writer::Writing if self.last_growth.elapsed() >= self.follow.stall_timeout => {
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!(
                        "the download stalled: no byte for {:?}",
                        self.follow.stall_timeout
                    ),
                ))
            }
            Writer::Writing => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;
    use std::sync::Mutex;

    use futures::StreamExt as _;

    use super::*;

    struct Fixture {
        dir: tempfile::TempDir,
        writer: Arc<Mutex<Writer>>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                dir: tempfile::tempdir().unwrap(),
                writer: Arc::new(Mutex::new(Writer::Writing)),
            }
        }

        fn follow(&self, content: &[u8], stall: Duration) -> Follow {
            let writer = self.writer.clone();
            Follow {
                total: content.len() as u64,
                digest: Digest::sha256_of(content),
                stall_timeout: stall,
                writer: Arc::new(move || *writer.lock().unwrap()),
            }
        }

        fn path(&self) -> std::path::PathBuf {
            self.dir.path().join("data")
        }
    }

    async fn collect(mut stream: ByteStream) -> (Vec<u8>, Option<io::Error>) {
        let mut got = Vec::new();
        while let Some(item) = stream.next().await {
            match item {
                Ok(b) => got.extend_from_slice(&b),
                Err(e) => return (got, Some(e)),
            }
        }
        (got, None)
    }

    #[tokio::test]
    async fn bytes_are_served_as_they_are_written_and_checked_at_the_end() {
        let fx = Fixture::new();
        let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut out = File::create(fx.path()).unwrap();
        let stream = follow(
            File::open(fx.path()).unwrap(),
            0,
            content.len() as u64,
            fx.follow(&content, Duration::from_secs(10)),
        );
        let reader = tokio::spawn(collect(stream));
        for piece in content.chunks(700_000) {
            tokio::time::sleep(Duration::from_millis(30)).await;
            out.write_all(piece).unwrap();
        }
        *fx.writer.lock().unwrap() = Writer::Done;
        let (got, err) = reader.await.unwrap();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, content);
    }

    #[tokio::test]
    async fn a_range_is_answered_once_it_is_written() {
        let fx = Fixture::new();
        let content = vec![7u8; 100_000];
        let mut out = File::create(fx.path()).unwrap();
        out.write_all(&content[..10_000]).unwrap();
        let stream = follow(
            File::open(fx.path()).unwrap(),
            50_000,
            1_000,
            fx.follow(&content, Duration::from_secs(10)),
        );
        let reader = tokio::spawn(collect(stream));
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!reader.is_finished());
        out.write_all(&content[10_000..]).unwrap();
        let (got, err) = reader.await.unwrap();
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got.len(), 1_000);
    }

    #[tokio::test]
    async fn a_corrupt_download_never_sends_its_last_chunk() {
        let fx = Fixture::new();
        let content = vec![1u8; 1_500_000];
        let mut corrupt = content.clone();
        corrupt[1_499_999] = 2;
        std::fs::write(fx.path(), &corrupt).unwrap();
        let stream = follow(
            File::open(fx.path()).unwrap(),
            0,
            content.len() as u64,
            fx.follow(&content, Duration::from_secs(10)),
        );
        let (got, err) = collect(stream).await;
        assert_eq!(err.unwrap().kind(), io::ErrorKind::InvalidData);
        assert!(got.len() < content.len(), "{} bytes sent", got.len());
    }

    #[tokio::test]
    async fn a_stalled_or_abandoned_download_ends_the_stream() {
        let fx = Fixture::new();
        let content = vec![3u8; 10_000];
        std::fs::write(fx.path(), &content[..4_000]).unwrap();
        let open = || File::open(fx.path()).unwrap();
        let stalled = follow(
            open(),
            0,
            10_000,
            fx.follow(&content, Duration::from_millis(200)),
        );
        let (got, err) = collect(stalled).await;
        assert_eq!(got.len(), 4_000);
        assert_eq!(err.unwrap().kind(), io::ErrorKind::TimedOut);

        *fx.writer.lock().unwrap() = Writer::Gone;
        let gone = follow(open(), 0, 10_000, fx.follow(&content, Duration::MAX));
        assert_eq!(
            collect(gone).await.1.unwrap().kind(),
            io::ErrorKind::NotFound
        );

        *fx.writer.lock().unwrap() = Writer::Writing;
        let restarted = follow(open(), 0, 10_000, fx.follow(&content, Duration::MAX));
        let reader = tokio::spawn(collect(restarted));
        tokio::time::sleep(Duration::from_millis(60)).await;
        std::fs::write(fx.path(), &content[..1_000]).unwrap();
        let (got, err) = reader.await.unwrap();
        assert_eq!(got.len(), 4_000);
        assert_eq!(err.unwrap().kind(), io::ErrorKind::UnexpectedEof);
    }
}
