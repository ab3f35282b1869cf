//! Sharing a layer while it is still being downloaded (a creation storm: many nodes pulling a
//! new image at once, none holding it yet).
//!
//! containerd opens its download (the ingest) before it asks Speil for a blob, so on a miss a
//! node knows whether its containerd is about to download the blob, and how large it is. For a
//! large blob, instead of sending containerd upstream at once, the node
//! 1. looks up the blob's claim key ([`claim_key`]): nodes that advertise it are downloading
//!    it already; it follows them (streams from their download, see `store::follow`) and
//!    claims nothing itself;
//! 2. else claims the key, waits `claim_wait` for rivals that looked at the same moment to
//!    claim too, and looks again (each lookup runs until its DHT query is over, so it sees
//!    every claim made before it reached the claimant): of the claimants it sees, with
//!    itself, the smallest peer id goes upstream and keeps its
//!    claim until its download is gone; the others withdraw theirs and follow a claimant with
//!    a smaller id than their own.
//!
//! Waits point only at nodes that claimed before the follower looked (and never follow
//! anyone afterwards) or at smaller peer ids, so no two nodes wait on each other. A node
//! decides once per download: containerd resuming after a broken stream is sent upstream.
//! A stream from a peer whose download stalls or is abandoned ends, and containerd resumes
//! upstream.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oci::Digest;
use p2p::Provider;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::shared::Inner;

/// Most downloads decided on at once; past it, a node sends containerd upstream.
const MAX_DECISIONS: usize = 4096;
/// The longest a lookup of claims may take; it is over in milliseconds on a cluster network.
const CLAIM_LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);
/// How often claims are checked against the downloads they stand for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

/// How a node shares downloads under way; `None` in [`super::Config`] turns it off.
#[derive(Debug, Clone)]
pub struct InFlight {
    /// Blobs smaller than this are never shared while downloading (`--mirror-in-flight-min-size`).
    pub min_size: u64,
    /// How long a claimant waits for rivals' claims before it decides
    /// (`--mirror-in-flight-claim-wait`).
    pub claim_wait: Duration,
    /// How long a claimed download may go without growing before its claim is withdrawn
    /// (`--in-flight-stall-timeout`, also the limit of a stream served from it).
    pub stall_timeout: Duration,
}

/// The DHT key under which nodes advertise that they are downloading `digest`.
fn claim_key(digest: &Digest) -> String {
    format!("in-flight:{digest}")
}

/// What this node decided for one download.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Deciding now.
    Deciding,
    /// Downloading from upstream, its claim advertised.
    Upstream,
    /// Taking it from peers that download it.
    Following,
    /// Downloaded from upstream, its claim withdrawn because the download stalled.
    Withdrawn,
}

struct Decision {
    role: Role,
    written: u64,
    grew: Instant,
}

/// The downloads this node has decided on, and the claims it holds.
#[derive(Default)]
pub(super) struct Claims {
    decisions: Mutex<HashMap<Digest, Decision>>,
}

impl Claims {
    /// Starts deciding on `digest`; `false` when it was decided before (or too many are).
    fn begin(&self, digest: &Digest) -> bool {
        let mut d = self.decisions.lock().expect("claims lock poisoned");
        if d.contains_key(digest) || d.len() >= MAX_DECISIONS {
            return false;
        }
        let decision = Decision {
            role: Role::Deciding,
            written: 0,
            grew: Instant::now(),
        };
        d.insert(digest.clone(), decision);
        true
    }

    fn set(&self, digest: &Digest, role: Role) {
        if let Some(d) = self
            .decisions
            .lock()
            .expect("claims lock poisoned")
            .get_mut(digest)
        {
            d.role = role;
        }
    }

    /// How many claims this node holds (downloads it advertises).
    pub(super) fn advertised(&self) -> usize {
        let d = self.decisions.lock().expect("claims lock poisoned");
        d.values().filter(|d| d.role == Role::Upstream).count()
    }
}

impl Inner {
    /// On a miss of a blob this node's containerd is downloading: the peers to stream it from
    /// while they download it too, or `None` to send containerd upstream (see the module doc).
    pub(super) async fn in_flight_sources(
        &self,
        digest: &Digest,
    ) -> Option<mpsc::Receiver<Provider>> {
        let config = self.config.in_flight.as_ref()?;
        if self.router.status().connected_peers == 0 {
            return None; // alone: nobody to share with
        }
        let ingest = self.store.ingest(digest).await.ok()??;
        if ingest.total < config.min_size || !self.claims.begin(digest) {
            return None;
        }
        let key = claim_key(digest);
        let downloading = self.claimants(&key).await;
        if !downloading.is_empty() {
            return Some(self.follow(digest, "joined", downloading));
        }
        self.router
            .advertise_first(std::slice::from_ref(&key))
            .await;
        tokio::time::sleep(config.claim_wait).await;
        let me = self.router.peer_id();
        let mut rivals = self.claimants(&key).await;
        rivals.retain(|p| p.peer < me);
        if rivals.is_empty() {
            self.claims.set(digest, Role::Upstream);
            self.metrics.in_flight.decided("upstream");
            tracing::debug!(%digest, "downloading upstream; the download is advertised");
            return None;
        }
        self.router.withdraw(&[key]).await;
        Some(self.follow(digest, "followed", rivals))
    }

    fn follow(
        &self,
        digest: &Digest,
        how: &'static str,
        sources: Vec<Provider>,
    ) -> mpsc::Receiver<Provider> {
        self.claims.set(digest, Role::Following);
        self.metrics.in_flight.decided(how);
        tracing::debug!(%digest, sources = sources.len(), how, "taking a download under way from peers");
        let (tx, rx) = mpsc::channel(sources.len().max(1));
        for p in sources {
            let _ = tx.try_send(p);
        }
        rx
    }

    /// The nodes that advertise `key`: everything the lookup finds until its DHT query is
    /// over (within [`CLAIM_LOOKUP_TIMEOUT`]). The query asks the nodes closest to the key,
    /// and a claimant answers for itself as soon as its claim is in its own store, so a
    /// complete lookup sees every claim made before it reached the claimant; a lookup cut
    /// short by a fixed window did not, on a loaded machine, and let several nodes go upstream.
    async fn claimants(&self, key: &str) -> Vec<Provider> {
        let mut found = self.router.lookup(key).await;
        let deadline = tokio::time::Instant::now() + CLAIM_LOOKUP_TIMEOUT;
        let mut all: Vec<Provider> = Vec::new();
        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, found.recv()).await {
            if !self.peers.is_quarantined(&p.peer) && all.iter().all(|q| q.peer != p.peer) {
                all.push(p);
            }
        }
        all
    }

    /// Until `shutdown`: withdraws claims whose download is gone (committed or abandoned) or
    /// stalled, and forgets decisions on downloads that are gone.
    pub(super) async fn sweep_claims(&self, shutdown: CancellationToken) {
        let mut every = tokio::time::interval(SWEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = every.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let decided: Vec<Digest> = {
                let d = self.claims.decisions.lock().expect("claims lock poisoned");
                d.keys().cloned().collect()
            };
            for digest in decided {
                let ingest = self.store.ingest(&digest).await.ok().flatten();
                self.sweep_one(&digest, ingest.map(|i| i.written)).await;
            }
            self.metrics
                .set_in_flight_advertised(self.claims.advertised());
        }
    }

    /// Checks one decision against its download, now `written` bytes long (`None`: gone).
    async fn sweep_one(&self, digest: &Digest, written: Option<u64>) {
        let stall = self.config.in_flight.as_ref().map(|c| c.stall_timeout);
        let withdraw = {
            let mut decisions = self.claims.decisions.lock().expect("claims lock poisoned");
            let Some(d) = decisions.get_mut(digest) else {
                return;
            };
            if let Some(w) = written.filter(|w| *w != d.written) {
                d.written = w;
                d.grew = Instant::now();
            }
            let stalled = d.role == Role::Upstream && stall.is_some_and(|s| d.grew.elapsed() >= s);
            // A request dropped while deciding may have left its claim advertised.
            let claimed = matches!(d.role, Role::Upstream | Role::Deciding);
            if written.is_none() {
                decisions.remove(digest);
            } else if stalled {
                // Kept as decided, so containerd's resumption goes upstream again.
                d.role = Role::Withdrawn;
            }
            (claimed && written.is_none()) || stalled
        };
        if withdraw {
            tracing::debug!(%digest, "download gone or stalled; its claim is withdrawn");
            self.router.withdraw(&[claim_key(digest)]).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_download_is_decided_once() {
        let claims = Claims::default();
        let d = Digest::sha256_of(b"layer");
        assert!(claims.begin(&d));
        assert!(!claims.begin(&d), "containerd's resumption decides again");
        claims.set(&d, Role::Upstream);
        assert_eq!(claims.advertised(), 1);
        assert_eq!(claim_key(&d), format!("in-flight:{d}"));
    }
}
