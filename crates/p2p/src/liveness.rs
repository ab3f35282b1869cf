//! Which peers are alive. A peer that stopped answering pings, refused a dial or broke its
//! connection is "down" for a while, and lookups leave it out while it is not connected: a
//! stale provider record of a dead or hung node must not cost every pull a dial. The swarm task
//! feeds this from its events; nothing here touches the network.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// Most peers remembered as down; the oldest are forgotten first.
const DOWN_MAX: usize = 10_000;

/// The last peer whose connection this node lost, leaving it with none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Lost {
    pub(crate) peer: PeerId,
    /// When, in seconds since the Unix epoch.
    pub(crate) unix: u64,
}

/// Down peers and the last peer lost.
pub(crate) struct Liveness {
    down_for: Duration,
    down: HashMap<PeerId, Instant>,
    last_lost: Option<Lost>,
}

impl Liveness {
    /// Peers that fail stay down for `down_for` unless they connect again.
    pub(crate) fn new(down_for: Duration) -> Self {
        Liveness {
            down_for,
            down: HashMap::new(),
            last_lost: None,
        }
    }

    /// `peer` did not answer: a failed ping or dial, or a connection that broke.
    pub(crate) fn failed(&mut self, peer: PeerId) {
        let now = Instant::now();
        if self.down.len() >= DOWN_MAX && !self.down.contains_key(&peer) {
            self.down
                .retain(|_, at| now.duration_since(*at) < self.down_for);
            if self.down.len() >= DOWN_MAX
                && let Some(oldest) = self.down.iter().min_by_key(|(_, at)| **at).map(|(p, _)| *p)
            {
                self.down.remove(&oldest);
            }
        }
        self.down.insert(peer, now);
    }

    /// `peer` has a connection again.
    pub(crate) fn connected(&mut self, peer: PeerId) {
        self.down.remove(&peer);
    }

    /// The last connection to `peer` closed; `remaining` peers are still connected.
    pub(crate) fn disconnected(&mut self, peer: PeerId, remaining: usize, unix: u64) {
        if remaining == 0 {
            self.last_lost = Some(Lost { peer, unix });
        }
    }

    /// Whether `peer`, not connected now, failed within the down period.
    pub(crate) fn is_down(&self, peer: &PeerId) -> bool {
        self.down
            .get(peer)
            .is_some_and(|at| at.elapsed() < self.down_for)
    }

    /// The peer whose loss last left this node without connections.
    pub(crate) fn last_lost(&self) -> Option<Lost> {
        self.last_lost
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_peer_is_down_until_it_connects_or_the_period_ends() {
        let mut l = Liveness::new(Duration::from_millis(40));
        let p = PeerId::random();
        assert!(!l.is_down(&p));
        l.failed(p);
        assert!(l.is_down(&p));
        l.connected(p);
        assert!(!l.is_down(&p));
        l.failed(p);
        std::thread::sleep(Duration::from_millis(50));
        assert!(!l.is_down(&p));
    }

    #[test]
    fn the_last_peer_lost_is_the_one_that_left_the_node_alone() {
        let mut l = Liveness::new(Duration::from_secs(1));
        let (a, b) = (PeerId::random(), PeerId::random());
        l.disconnected(a, 1, 10);
        assert_eq!(l.last_lost(), None);
        l.disconnected(b, 0, 20);
        assert_eq!(l.last_lost(), Some(Lost { peer: b, unix: 20 }));
    }

    #[test]
    fn the_down_set_is_bounded_and_forgets_the_oldest() {
        let mut l = Liveness::new(Duration::from_secs(60));
        let first = PeerId::random();
        l.failed(first);
        for _ in 0..DOWN_MAX {
            l.failed(PeerId::random());
        }
        assert_eq!(l.down.len(), DOWN_MAX);
        assert!(!l.is_down(&first));
    }
}
