//! Provider publication: which keys this node provides, and the queue of keys waiting to be
//! published. Each publication is a DHT query reaching up to 20 peers; a node announcing
//! thousands of keys at once held tens of MiB of transient buffers afterwards (see
//! docs/benchmarks.md), so announcements are queued and published [`PROVIDES_IN_FLIGHT`] at a
//! time. The swarm task asks for the next key, starts the query and reports its id back.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

use libp2p::kad::{QueryId, RecordKey};

/// Provider records being published at once.
const PROVIDES_IN_FLIGHT: usize = 8;

/// The provided keys and their publication queue, over query ids `Q` (Kademlia's, or plain
/// numbers in tests).
pub(super) struct Provide<Q = QueryId> {
    provided: HashSet<RecordKey>,
    queue: VecDeque<RecordKey>,
    in_flight: HashSet<Q>,
    store_full_warned: bool,
}

impl<Q: Hash + Eq> Provide<Q> {
    pub(super) fn new() -> Self {
        Provide {
            provided: HashSet::new(),
            queue: VecDeque::new(),
            in_flight: HashSet::new(),
            store_full_warned: false,
        }
    }

    /// Starts providing `keys`; those not provided yet are queued for publication.
    pub(super) fn provide(&mut self, keys: Vec<RecordKey>) {
        for key in keys {
            if self.provided.insert(key.clone()) {
                self.queue.push_back(key);
            }
        }
    }

    /// Starts providing `keys` and publishes them before every key queued: claims of
    /// downloads under way, which other nodes must see within moments, not after a
    /// republication of thousands of keys.
    pub(super) fn provide_first(&mut self, keys: Vec<RecordKey>) {
        for key in keys.into_iter().rev() {
            self.provided.insert(key.clone());
            self.queue.push_front(key);
        }
    }

    /// Stops providing `keys`; returns those that were provided, to be removed from the DHT.
    pub(super) fn unprovide(&mut self, keys: Vec<RecordKey>) -> Vec<RecordKey> {
        keys.into_iter()
            .filter(|k| self.provided.remove(k))
            .collect()
    }

    /// Queues every provided key for publication again.
    pub(super) fn reprovide_all(&mut self) {
        self.queue = self.provided.iter().cloned().collect();
    }

    /// The next key to publish, while fewer than [`PROVIDES_IN_FLIGHT`] are under way. Keys
    /// withdrawn while queued are skipped.
    pub(super) fn next(&mut self) -> Option<RecordKey> {
        if self.in_flight.len() >= PROVIDES_IN_FLIGHT {
            return None;
        }
        while let Some(key) = self.queue.pop_front() {
            if self.provided.contains(&key) {
                return Some(key);
            }
        }
        None
    }

    /// The publication of a key [`next`](Self::next) gave started as query `id`.
    pub(super) fn started(&mut self, id: Q) {
        self.in_flight.insert(id);
    }

    /// Query `id` finished; returns whether it was a publication of ours.
    pub(super) fn finished(&mut self, id: &Q) -> bool {
        self.in_flight.remove(id)
    }

    /// The provider store refused a key; returns `true` the first time only, so the caller
    /// warns once.
    pub(super) fn store_full(&mut self) -> bool {
        !std::mem::replace(&mut self.store_full_warned, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> RecordKey {
        RecordKey::new(&n.to_be_bytes())
    }

    /// Publishes what the queue allows, the query ids counting from `*next_id`.
    fn publish(p: &mut Provide<u32>, next_id: &mut u32) -> Vec<RecordKey> {
        let mut started = Vec::new();
        while let Some(k) = p.next() {
            p.started(*next_id);
            *next_id += 1;
            started.push(k);
        }
        started
    }

    #[test]
    fn publications_are_bounded_and_resume_as_queries_finish() {
        let mut p = Provide::<u32>::new();
        let mut id = 0;
        p.provide((0..20).map(key).collect());
        let first = publish(&mut p, &mut id);
        assert_eq!(first, (0..8).map(key).collect::<Vec<_>>());
        assert!(publish(&mut p, &mut id).is_empty());
        assert!(p.finished(&3));
        assert!(!p.finished(&3), "each query finishes once");
        assert!(!p.finished(&99), "not a publication");
        assert_eq!(publish(&mut p, &mut id), [key(8)]);
    }

    #[test]
    fn a_key_is_queued_once_and_withdrawn_keys_are_skipped() {
        let mut p = Provide::<u32>::new();
        let mut id = 0;
        p.provide(vec![key(1), key(2), key(1)]);
        p.provide(vec![key(2)]);
        assert_eq!(p.unprovide(vec![key(1), key(7)]), [key(1)]);
        assert_eq!(publish(&mut p, &mut id), [key(2)]);
    }

    #[test]
    fn reproviding_queues_every_provided_key_again() {
        let mut p = Provide::<u32>::new();
        let mut id = 0;
        p.provide(vec![key(1), key(2)]);
        assert_eq!(publish(&mut p, &mut id).len(), 2);
        p.finished(&0);
        p.finished(&1);
        p.reprovide_all();
        let mut again = publish(&mut p, &mut id);
        again.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        assert_eq!(again, [key(1), key(2)]);
    }

    #[test]
    fn a_claim_is_published_before_the_keys_queued() {
        let mut p = Provide::<u32>::new();
        let mut id = 0;
        p.provide((0..20).map(key).collect());
        assert_eq!(publish(&mut p, &mut id).len(), 8);
        p.provide_first(vec![key(100)]);
        p.finished(&0);
        assert_eq!(publish(&mut p, &mut id), [key(100)]);
    }

    #[test]
    fn a_full_store_is_reported_once() {
        let mut p = Provide::<u32>::new();
        assert!(p.store_full());
        assert!(!p.store_full());
    }
}
