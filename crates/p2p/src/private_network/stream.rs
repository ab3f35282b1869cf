//! The private network's connection upgrade: libp2p's pnet handshake within a time limit, and a
//! stream that checks the first bytes the other node sends, so that a key mismatch fails with
//! an error that says so ([`Failure`]) instead of as a broken negotiation further up.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use futures::{AsyncRead, AsyncWrite};
use libp2p::pnet::{PnetConfig, PnetOutput, PreSharedKey};

/// How long the nonce exchange may take. A node with the key answers at once (both sides send
/// their nonce first); a node without one waits for a protocol header that never comes, so
/// this bounds that wait, below the bootstrap round's time, so the round can say why.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(3);

/// What every libp2p node sends first after pnet: multistream-select's header, length-prefixed.
const HEADER: &[u8] = b"\x13/multistream/1.0.0\n";

/// How a connection failed at the private network layer. Each says what to check: these are
/// the reasons bootstrap rounds and log lines show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Failure {
    /// The other node's bytes do not decrypt with this node's key.
    #[error("private network key mismatch (a different --p2p-psk-file, or none)")]
    KeyMismatch,
    /// The other node exchanged nonces, then closed the connection without answering: it could
    /// not read what this node sent.
    #[error(
        "handshake failed: the node closed the connection right after the private network handshake (a different --p2p-psk-file?)"
    )]
    ClosedAfterHandshake,
    /// The other node did not complete the nonce exchange.
    #[error("no private network handshake (does the node run without --p2p-psk-file?)")]
    NoHandshake,
}

impl Failure {
    /// Whether this is certainly or most likely another key, rather than a node without one.
    pub(crate) fn what_to_check(self) -> &'static str {
        match self {
            Failure::KeyMismatch | Failure::ClosedAfterHandshake => {
                "is --p2p-psk-file the same key on every node?"
            }
            Failure::NoHandshake => {
                "does it run without --p2p-psk-file? every node needs the same key"
            }
        }
    }

    fn into_io(self) -> io::Error {
        let kind = match self {
            Failure::KeyMismatch => io::ErrorKind::InvalidData,
            Failure::ClosedAfterHandshake | Failure::NoHandshake => {
                io::ErrorKind::ConnectionAborted
            }
        };
        io::Error::new(kind, Reported(self))
    }
}

/// A [`Failure`] as the transport's I/O error carries it: its source is the failure itself.
/// Several of libp2p's wrappers (`io::Error`, `Either`, noise's I/O error) return their inner
/// error's *source* rather than the inner error, so the failure is one level further down,
/// where their skip lands on it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Reported(#[source] Failure);

/// The [`Failure`] somewhere in `error`'s chain, if any (see [`Reported`] for why it is found
/// whichever wrappers libp2p put around it).
pub(crate) fn failure_of(error: &(dyn std::error::Error + 'static)) -> Option<Failure> {
    let mut e = error;
    loop {
        if let Some(f) = e.downcast_ref::<Failure>() {
            return Some(*f);
        }
        e = e.source()?;
    }
}

/// Upgrades a raw connection with libp2p's pnet handshake under `key`.
pub(crate) async fn handshake<S>(key: PreSharedKey, socket: S) -> io::Result<Checked<PnetOutput<S>>>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, PnetConfig::new(key).handshake(socket)).await {
        Ok(Ok(output)) => Ok(Checked {
            inner: output,
            seen: 0,
        }),
        Ok(Err(_)) | Err(_) => Err(Failure::NoHandshake.into_io()),
    }
}

/// A pnet stream whose first bytes from the other node are checked against [`HEADER`].
pub(crate) struct Checked<S> {
    inner: S,
    /// How many bytes of [`HEADER`] have been received and matched.
    seen: usize,
}

impl<S> Checked<S> {
    /// `e`, or [`Failure::ClosedAfterHandshake`] when `e` is the connection closing before the
    /// other node sent a byte.
    fn closed(&self, e: io::Error) -> io::Error {
        let closed = matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::ConnectionAborted
        );
        if closed && self.seen == 0 {
            Failure::ClosedAfterHandshake.into_io()
        } else {
            e
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Checked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let n = match ready!(Pin::new(&mut this.inner).poll_read(cx, buf)) {
            Ok(n) => n,
            Err(e) => return Poll::Ready(Err(this.closed(e))),
        };
        if this.seen < HEADER.len() {
            if n == 0 && this.seen == 0 {
                return Poll::Ready(Err(Failure::ClosedAfterHandshake.into_io()));
            }
            let k = n.min(HEADER.len() - this.seen);
            if buf[..k] != HEADER[this.seen..this.seen + k] {
                return Poll::Ready(Err(Failure::KeyMismatch.into_io()));
            }
            this.seen += k;
        }
        Poll::Ready(Ok(n))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Checked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = ready!(Pin::new(&mut this.inner).poll_write(cx, buf));
        Poll::Ready(r.map_err(|e| this.closed(e)))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let r = ready!(Pin::new(&mut this.inner).poll_flush(cx));
        Poll::Ready(r.map_err(|e| this.closed(e)))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{AsyncReadExt as _, AsyncWriteExt as _};
    use libp2p::noise;

    /// An error whose source is its inner error's source, as `either::Either`'s is.
    #[derive(Debug)]
    struct Skipping(io::Error);

    impl std::fmt::Display for Skipping {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl std::error::Error for Skipping {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.source()
        }
    }

    fn key(byte: u8) -> PreSharedKey {
        PreSharedKey::new([byte; 32])
    }

    /// Two ends of an in-memory connection, after the pnet handshake under `a` and `b`.
    async fn pair(
        a: u8,
        b: u8,
    ) -> (
        impl AsyncRead + AsyncWrite + Unpin,
        impl AsyncRead + AsyncWrite + Unpin,
    ) {
        let (x, y) = tokio::io::duplex(4096);
        use tokio_util::compat::TokioAsyncReadCompatExt as _;
        let (x, y) = tokio::join!(handshake(key(a), x.compat()), handshake(key(b), y.compat()));
        (x.unwrap(), y.unwrap())
    }

    #[tokio::test]
    async fn the_same_key_passes_the_header_and_everything_after() {
        let (mut x, mut y) = pair(1, 1).await;
        x.write_all(HEADER).await.unwrap();
        x.write_all(b"/noise\n").await.unwrap();
        x.flush().await.unwrap();
        let mut got = vec![0u8; HEADER.len() + 7];
        y.read_exact(&mut got).await.unwrap();
        assert_eq!(&got[HEADER.len()..], b"/noise\n");
    }

    #[tokio::test]
    async fn another_key_is_a_mismatch_and_a_silent_close_says_so() {
        let (mut x, mut y) = pair(1, 2).await;
        x.write_all(HEADER).await.unwrap();
        x.flush().await.unwrap();
        let mut got = [0u8; 4];
        let e = y.read_exact(&mut got).await.unwrap_err();
        assert_eq!(failure_of(&e), Some(Failure::KeyMismatch));
        drop(y);
        let e = x.read_exact(&mut got).await.unwrap_err();
        assert_eq!(failure_of(&e), Some(Failure::ClosedAfterHandshake));
    }

    #[tokio::test]
    async fn a_node_without_the_key_never_completes_the_handshake() {
        // Takes HANDSHAKE_TIMEOUT (3 s) of real time.
        let (x, _silent) = tokio::io::duplex(4096);
        use tokio_util::compat::TokioAsyncReadCompatExt as _;
        let e = handshake(key(1), x.compat())
            .await
            .err()
            .expect("no handshake");
        assert_eq!(failure_of(&e), Some(Failure::NoHandshake));
        // Found through the wrapping that libp2p's upgrades add.
        let wrapped = io::Error::other(e);
        assert_eq!(failure_of(&wrapped), Some(Failure::NoHandshake));
        // Through the wrappers that return their inner error's source, not the inner error:
        // noise's transparent I/O error, and one like `Either`'s.
        let closed = Failure::ClosedAfterHandshake.into_io();
        let through_noise = noise::Error::Io(closed);
        assert_eq!(
            failure_of(&io::Error::other(through_noise)),
            Some(Failure::ClosedAfterHandshake)
        );
        let skipping = Skipping(Failure::NoHandshake.into_io());
        assert_eq!(
            failure_of(&io::Error::other(skipping)),
            Some(Failure::NoHandshake)
        );
        assert_eq!(failure_of(&io::Error::other("other")), None);
    }
}
