//! Seeing the node's own dials: TCP listeners on addresses the test names in the rogue's
//! answers (fake providers, closer peers, announced listen addresses), counting the connections
//! accepted on each. A connection accepted means the node dialed that address; it is closed at
//! once, so the node's handshake fails and nothing else happens.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libp2p::Multiaddr;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::tcp_addr;

/// Listeners counting the connections a node opens to them; they stop when dropped.
pub struct DialBack {
    addrs: Vec<SocketAddr>,
    counts: Arc<Vec<AtomicU64>>,
    token: CancellationToken,
    tasks: TaskTracker,
}

impl DialBack {
    /// Listens on each of `addrs` (port 0: a free port). Call within a tokio runtime.
    pub async fn bind(addrs: &[SocketAddr]) -> std::io::Result<DialBack> {
        let mut listeners = Vec::with_capacity(addrs.len());
        for a in addrs {
            listeners.push(TcpListener::bind(a).await?);
        }
        let addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<std::io::Result<Vec<_>>>()?;
        let counts: Arc<Vec<AtomicU64>> =
            Arc::new(addrs.iter().map(|_| AtomicU64::new(0)).collect());
        let token = CancellationToken::new();
        let tasks = TaskTracker::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let (counts, token) = (counts.clone(), token.clone());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        accepted = listener.accept() => {
                            if accepted.is_ok() {
                                counts[i].fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        }
        tasks.close();
        Ok(DialBack {
            addrs,
            counts,
            token,
            tasks,
        })
    }

    /// `n` listeners on free ports of `ip`.
    pub async fn on_ports(ip: IpAddr, n: usize) -> std::io::Result<DialBack> {
        Self::bind(&vec![SocketAddr::new(ip, 0); n]).await
    }

    /// The addresses listened on, in the order given.
    pub fn addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The same as multiaddrs, `/ip4/…/tcp/…`.
    pub fn multiaddrs(&self) -> Vec<Multiaddr> {
        self.addrs
            .iter()
            .map(|a| tcp_addr(a.ip(), a.port()))
            .collect()
    }

    /// Connections accepted so far on each address, in the order of [`DialBack::addrs`].
    pub fn dials(&self) -> Vec<u64> {
        self.counts
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect()
    }

    /// Connections accepted so far on all addresses.
    pub fn total(&self) -> u64 {
        self.dials().iter().sum()
    }

    /// How many addresses were dialed at least once.
    pub fn addresses_dialed(&self) -> usize {
        self.dials().iter().filter(|&&d| d > 0).count()
    }

    /// Stops listening and waits until every listener is closed.
    pub async fn shutdown(self) {
        self.token.cancel();
        self.tasks.wait().await;
    }
}

impl Drop for DialBack {
    fn drop(&mut self) {
        self.token.cancel();
    }
}
