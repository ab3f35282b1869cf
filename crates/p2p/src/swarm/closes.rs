//! What a closed connection says about its peer. Connections close when idle (see `keep.rs`),
//! so a peer this node lost every connection to is not necessarily gone; hiding the provider
//! records of every peer whose connection idled would hide live holders, and lookups would miss
//! them. libp2p reports a close this node made for idleness as `KeepAliveTimeout`, but a close
//! the other node made looks the same whether it idled, shut down or died (the socket ends).
//! Since only a connection's dialer closes it for idleness, the direction tells them apart:
//! the other node ending a connection this node dialed is gone; ending one it dialed itself is
//! unsure, and is settled by dialing it back (the answer then comes from that dial), at most
//! once every 10 minutes per peer.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use libp2p::swarm::ConnectionError;

/// How often one peer is dialed back at most. Two nodes holding records of each other would
/// otherwise dial each other back in turn for ever, each closing the other's dial once idle;
/// and in a cluster where every node holds records of every other, every connection a query
/// opened would be followed by a dial back: at 40 nodes, once a minute kept about 36
/// connections per node where the samples need 16 (bench/p2p.sh). Once per republish interval
/// (10 minutes by default) keeps dials back to a few per cent of connection time.
const DIAL_BACK_EVERY: Duration = Duration::from_secs(600);
/// Most peers whose last dial back is remembered.
const DIAL_BACKS_MAX: usize = 10_000;

/// What the close of a peer's last connection says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verdict {
    /// This node closed it: idle, or a ping failed (which is handled where it fails), or the
    /// node is shutting down.
    ClosedHere,
    /// The other node ended a connection this node dialed: it shut down, died or gave up on
    /// this node. Its records are hidden until it is back.
    Gone,
    /// The other node ended a connection it dialed: idle there, or gone. Dial it to find out.
    Unsure,
}

/// The verdict on a connection that closed with `cause`; `dialed_here` when this node dialed it.
pub(super) fn verdict(dialed_here: bool, cause: Option<&ConnectionError>) -> Verdict {
    match cause {
        None | Some(ConnectionError::KeepAliveTimeout) => Verdict::ClosedHere,
        Some(ConnectionError::IO(_)) if dialed_here => Verdict::Gone,
        Some(ConnectionError::IO(_)) => Verdict::Unsure,
    }
}

/// When peers were last dialed back, to dial each at most once per `DIAL_BACK_EVERY`.
#[derive(Default)]
pub(super) struct DialBacks {
    last: HashMap<PeerId, Instant>,
}

impl DialBacks {
    /// Whether to dial `peer` back now; if so, it counts as dialed back.
    pub(super) fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        if self
            .last
            .get(&peer)
            .is_some_and(|at| now.duration_since(*at) < DIAL_BACK_EVERY)
        {
            return false;
        }
        if self.last.len() >= DIAL_BACKS_MAX {
            self.last
                .retain(|_, at| now.duration_since(*at) < DIAL_BACK_EVERY);
            if self.last.len() >= DIAL_BACKS_MAX {
                return false;
            }
        }
        self.last.insert(peer, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_dialed_back_at_most_once_every_10_minutes() {
        let mut d = DialBacks::default();
        let (a, b) = (PeerId::random(), PeerId::random());
        let now = Instant::now();
        assert!(d.allow(a, now));
        assert!(!d.allow(a, now + Duration::from_secs(300)));
        assert!(d.allow(b, now + Duration::from_secs(300)));
        assert!(d.allow(a, now + DIAL_BACK_EVERY));
    }

    #[test]
    fn an_idle_close_is_no_death_and_the_direction_tells_the_rest() {
        let ended = || ConnectionError::IO(std::io::Error::other("connection is closed"));
        assert_eq!(
            verdict(true, Some(&ConnectionError::KeepAliveTimeout)),
            Verdict::ClosedHere
        );
        assert_eq!(
            verdict(false, Some(&ConnectionError::KeepAliveTimeout)),
            Verdict::ClosedHere
        );
        assert_eq!(verdict(true, None), Verdict::ClosedHere);
        assert_eq!(verdict(true, Some(&ended())), Verdict::Gone);
        assert_eq!(verdict(false, Some(&ended())), Verdict::Unsure);
    }
}
