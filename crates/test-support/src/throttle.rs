//! A TCP proxy in front of a server that sends its answers no faster than a set rate, shared
//! by every connection like one slow link, and counts the bytes it sent: an upstream registry
//! behind a slow internet link, for tests where a download must still be under way while
//! something else happens, and that check how often the upstream was asked for it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::time::Instant;
use tokio_util::task::AbortOnDropHandle;

/// Bytes sent to clients per write: small enough that connections share the link fairly.
const SLICE: usize = 16 * 1024;

/// The proxy; it stops when dropped.
pub struct Throttle {
    addr: SocketAddr,
    sent: Arc<AtomicU64>,
    _accept: AbortOnDropHandle<()>,
}

/// The link all connections share: when it is next free.
struct Link {
    bytes_per_sec: u64,
    free_at: Mutex<Instant>,
}

impl Link {
    /// Waits until `n` more bytes may go out.
    async fn pass(&self, n: usize) {
        let cost = Duration::from_secs_f64(n as f64 / self.bytes_per_sec as f64);
        let done = {
            let mut free_at = self.free_at.lock().await;
            let start = (*free_at).max(Instant::now());
            *free_at = start + cost;
            *free_at
        };
        tokio::time::sleep_until(done).await;
    }
}

impl Throttle {
    /// A proxy on `listen` to `target`, sending `target`'s answers at `bytes_per_sec`.
    pub async fn start(listen: SocketAddr, target: SocketAddr, bytes_per_sec: u64) -> Throttle {
        let listener = TcpListener::bind(listen)
            .await
            .expect("binding the throttle");
        let addr = listener.local_addr().unwrap();
        let sent = Arc::new(AtomicU64::new(0));
        let link = Arc::new(Link {
            bytes_per_sec,
            free_at: Mutex::new(Instant::now()),
        });
        let counted = sent.clone();
        let accept = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                let (link, sent) = (link.clone(), counted.clone());
                connections.spawn(async move {
                    if let Ok(server) = TcpStream::connect(target).await {
                        relay(client, server, &link, &sent).await;
                    }
                });
            }
        });
        Throttle {
            addr,
            sent,
            _accept: AbortOnDropHandle::new(accept),
        }
    }

    /// Where clients connect.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bytes sent to clients so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// Copies requests to `server` as they come and answers to `client` through `link`, until
/// either side closes.
async fn relay(client: TcpStream, server: TcpStream, link: &Link, sent: &AtomicU64) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let requests = tokio::io::copy(&mut client_read, &mut server_write);
    let answers = async {
        let mut buf = vec![0u8; SLICE];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            link.pass(n).await;
            if client_write.write_all(&buf[..n]).await.is_err() {
                return;
            }
            sent.fetch_add(n as u64, Ordering::Relaxed);
        }
    };
    tokio::select! {
        _ = requests => {}
        () = answers => {}
    }
}
