//! How busy each peer is: the requests under way to it, how long it has gone without finishing
//! any, and when it last answered. A request starts with the provider that is making progress
//! and has the least under way, so load spreads over the providers; and a peer that has not
//! answered lately gets one request at a time while another provider is at hand, so a hung node
//! (a stopped process keeps accepting connections but never answers) is dialed once, not once
//! by every request that starts before the first one to ask it gives up on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use p2p::{PeerId, Provider};

/// A peer that answered within this long is trusted with several requests at once.
const TRUSTED_FOR: Duration = Duration::from_secs(2);
/// Most peers remembered; idle ones are forgotten first.
const PEERS_MAX: usize = 4096;

/// Stalls shorter than this rank alike, so a healthy peer that is merely in the middle of
/// answering is not ranked behind another for a millisecond's difference.
const STALL_STEP: Duration = Duration::from_millis(5);

#[derive(Debug)]
struct Busy {
    /// Requests under way.
    under_way: usize,
    /// When a request to it last started from idle or last finished.
    progress: Instant,
    /// When it last answered a request well.
    answered: Option<Instant>,
}

impl Busy {
    /// How it ranks as the first to ask, lowest first: a peer on probation (requests under way
    /// and no recent answer) last, then by time without progress, then by requests under way.
    fn rank(&self, now: Instant) -> (bool, u128, usize) {
        if self.under_way == 0 {
            return (false, 0, 0);
        }
        let trusted = self
            .answered
            .is_some_and(|t| now.duration_since(t) < TRUSTED_FOR);
        let stalled = now.duration_since(self.progress).as_millis() / STALL_STEP.as_millis();
        (!trusted, stalled, self.under_way)
    }
}

/// The requests under way to every peer. Cheap to clone; the [`Asking`] guards, which live
/// inside request futures, hold a clone.
#[derive(Clone, Default)]
pub(crate) struct Load {
    peers: Arc<Mutex<HashMap<PeerId, Busy>>>,
}

impl Load {
    /// Counts a request to `peer` as under way until the guard is dropped (answered, failed or
    /// cancelled).
    pub(crate) fn asking(&self, peer: PeerId) -> Asking {
        let mut map = self.peers.lock().expect("load lock poisoned");
        Self::start(&mut map, peer);
        Asking {
            load: self.clone(),
            peer,
        }
    }

    /// Orders `providers` best first (see `Busy::rank`) and counts a request to the first, in
    /// one step, so that requests choosing at the same moment see each other's choice. Also says
    /// whether the one chosen had requests under way already.
    pub(crate) fn choose(&self, providers: &mut [Provider]) -> Option<(Asking, bool)> {
        let mut map = self.peers.lock().expect("load lock poisoned");
        let now = Instant::now();
        providers.sort_by_key(|p| map.get(&p.peer).map(|b| b.rank(now)).unwrap_or_default());
        let first = providers.first()?.peer;
        let busy = map.get(&first).is_some_and(|b| b.under_way > 0);
        Self::start(&mut map, first);
        let asking = Asking {
            load: self.clone(),
            peer: first,
        };
        Some((asking, busy))
    }

    fn start(map: &mut HashMap<PeerId, Busy>, peer: PeerId) {
        if map.len() >= PEERS_MAX && !map.contains_key(&peer) {
            map.retain(|_, b| b.under_way > 0);
        }
        let busy = map.entry(peer).or_insert(Busy {
            under_way: 0,
            progress: Instant::now(),
            answered: None,
        });
        if busy.under_way == 0 {
            busy.progress = Instant::now();
        }
        busy.under_way += 1;
    }

    /// Requests to `peer` under way now.
    #[cfg(test)]
    fn under_way(&self, peer: &PeerId) -> usize {
        let map = self.peers.lock().expect("load lock poisoned");
        map.get(peer).map_or(0, |b| b.under_way)
    }
}

/// A request to a peer under way; see [`Load::asking`].
pub(crate) struct Asking {
    load: Load,
    peer: PeerId,
}

impl Asking {
    /// The peer answered this request well: trusted with several at once for a while.
    pub(crate) fn answered(self) {
        let mut map = self.load.peers.lock().expect("load lock poisoned");
        if let Some(b) = map.get_mut(&self.peer) {
            b.answered = Some(Instant::now());
        }
    }
}

impl Drop for Asking {
    fn drop(&mut self) {
        let mut map = self.load.peers.lock().expect("load lock poisoned");
        if let Some(b) = map.get_mut(&self.peer) {
            b.under_way -= 1;
            b.progress = Instant::now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(peer: PeerId) -> Provider {
        Provider {
            peer,
            addrs: Vec::new(),
        }
    }

    #[test]
    fn requests_are_counted_until_they_end() {
        let load = Load::default();
        let p = PeerId::random();
        let a = load.asking(p);
        let b = load.asking(p);
        assert_eq!(load.under_way(&p), 2);
        drop(a);
        assert_eq!(load.under_way(&p), 1);
        drop(b);
        assert_eq!(load.under_way(&p), 0);
    }

    #[test]
    fn the_least_busy_provider_is_chosen_and_counted_at_once() {
        let load = Load::default();
        let (busy, idle) = (PeerId::random(), PeerId::random());
        let _under_way = load.asking(busy);
        let mut both = [provider(busy), provider(idle)];
        let (first, was_busy) = load.choose(&mut both).unwrap();
        assert_eq!(both[0].peer, idle);
        assert!(!was_busy);
        // A request choosing now sees the first one's choice: a tie, kept in order.
        let mut again = [provider(idle), provider(busy)];
        let (_second, was_busy) = load.choose(&mut again).unwrap();
        assert!(was_busy);
        assert_eq!(load.under_way(&idle), 2);
        drop(first);
        assert_eq!(load.under_way(&idle), 1);
    }

    #[test]
    fn a_peer_without_progress_goes_last_even_with_less_under_way() {
        let load = Load::default();
        let (hung, working) = (PeerId::random(), PeerId::random());
        let _stuck = load.asking(hung);
        let _a = load.asking(working);
        let _b = load.asking(working);
        std::thread::sleep(STALL_STEP * 3);
        // The working peer finishes one request: progress.
        load.asking(working).answered();
        let mut both = [provider(hung), provider(working)];
        let (_c, _) = load.choose(&mut both).unwrap();
        assert_eq!(both[0].peer, working);
    }

    #[test]
    fn a_peer_on_probation_gets_one_request_while_another_is_at_hand() {
        let load = Load::default();
        let (new, other) = (PeerId::random(), PeerId::random());
        load.asking(other).answered();
        let _x: Vec<Asking> = (0..3).map(|_| load.asking(other)).collect();
        // The new peer, never heard from, is idle: it goes first, and is asked.
        let mut both = [provider(other), provider(new)];
        let (_probe, _) = load.choose(&mut both).unwrap();
        assert_eq!(both[0].peer, new);
        // With that request under way and no answer yet, the trusted peer goes first, though
        // it has more under way.
        let mut both = [provider(new), provider(other)];
        let (_next, _) = load.choose(&mut both).unwrap();
        assert_eq!(both[0].peer, other);
    }
}
