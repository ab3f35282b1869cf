//! What one connection is doing, for its two timeouts: waiting for a request's headers (the
//! header read timeout), answering (no timeout: a blob may take minutes), or idle between
//! requests (the idle timeout).
//!
//! hyper's own `header_read_timeout` is not used: since hyper 1.4 it starts when a keep-alive
//! connection goes idle, not when the next request's first byte arrives, so it would close
//! every idle connection after the header timeout and leave no idle timeout of its own. Here, as
//! in Go's `net/http` (`IdleTimeout`, then `ReadHeaderTimeout`) and nginx
//! (`keepalive_timeout`, then `client_header_timeout`), the idle clock runs until a byte of the
//! next request arrives, and the header clock from then; a new connection's first request is
//! on the header clock from the accept.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Why a connection was closed by its timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timeout {
    /// It did not finish a request's headers in time.
    Header,
    /// It sent nothing after its last response for too long.
    Idle,
}

impl Timeout {
    /// The metrics label.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Timeout::Header => "header_timeout",
            Timeout::Idle => "idle_timeout",
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Reading a request's headers since `since`.
    Headers,
    /// This many requests being answered (HTTP/1 answers one at a time; pipelining aside).
    Busy(u32),
    /// Idle since `since`, after a response.
    Idle,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    since: Instant,
}

/// The phase of one connection, shared by its reads, its requests and its timer (all polled by
/// the connection's own task, so the lock is never contended).
#[derive(Debug, Clone)]
pub(crate) struct Watch {
    state: Arc<Mutex<State>>,
    header: Duration,
    idle: Duration,
}

impl Watch {
    /// A new connection: on the header clock from now.
    pub(crate) fn new(header: Duration, idle: Duration) -> Watch {
        Watch {
            state: Arc::new(Mutex::new(State {
                phase: Phase::Headers,
                since: Instant::now(),
            })),
            header,
            idle,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes arrived: an idle connection starts a request.
    fn received(&self) {
        let mut s = self.state();
        if let Phase::Idle = s.phase {
            s.phase = Phase::Headers;
            s.since = Instant::now();
        }
    }

    /// A request's headers are complete; the returned guard marks the answer done when dropped.
    pub(crate) fn answering(&self) -> Answering {
        let mut s = self.state();
        s.phase = match s.phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Headers | Phase::Idle => Phase::Busy(1),
        };
        Answering(self.clone())
    }

    /// When the connection is to be closed, and why; `None` while a request is answered.
    pub(crate) fn deadline(&self) -> Option<(Instant, Timeout)> {
        let s = self.state();
        match s.phase {
            Phase::Headers => Some((s.since + self.header, Timeout::Header)),
            Phase::Idle => Some((s.since + self.idle, Timeout::Idle)),
            Phase::Busy(_) => None,
        }
    }
}

/// A request being answered; dropped with its response body (or when the client goes away).
pub(crate) struct Answering(Watch);

impl Drop for Answering {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.phase = match s.phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => {
                s.since = Instant::now();
                Phase::Idle
            }
        };
    }
}

/// A connection's socket that tells its [`Watch`] when bytes arrive.
pub(crate) struct Watched<S> {
    io: S,
    watch: Watch,
}

impl<S> Watched<S> {
    pub(crate) fn new(io: S, watch: Watch) -> Self {
        Watched { io, watch }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.watch.received();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: Duration = Duration::from_secs(2);
    const I: Duration = Duration::from_secs(60);

    #[test]
    fn the_header_clock_runs_from_the_accept_and_from_the_first_byte_after_idling() {
        let w = Watch::new(H, I);
        assert_eq!(w.deadline().unwrap().1, Timeout::Header);
        let answering = w.answering();
        assert_eq!(w.deadline(), None, "no timeout while answering");
        drop(answering);
        let (at, why) = w.deadline().unwrap();
        assert_eq!(why, Timeout::Idle);
        assert!(at > Instant::now() + H, "idle runs on its own clock");
        w.received();
        let (at, why) = w.deadline().unwrap();
        assert_eq!(why, Timeout::Header);
        assert!(at <= Instant::now() + H);
    }

    #[test]
    fn a_pipelined_second_request_keeps_the_connection_busy() {
        let w = Watch::new(H, I);
        let first = w.answering();
        let second = w.answering();
        drop(first);
        assert_eq!(w.deadline(), None);
        w.received();
        assert_eq!(w.deadline(), None, "bytes while busy change nothing");
        drop(second);
        assert_eq!(w.deadline().unwrap().1, Timeout::Idle);
    }
}
