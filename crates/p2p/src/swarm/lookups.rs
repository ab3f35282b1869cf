//! Provider lookups: concurrent lookups of one key share one DHT query, providers reach every
//! caller as they are found, a provider whose address is not yet known is held back until it is
//! (the swarm task dials it by peer id to learn one), and a non-empty result is reused for a few
//! seconds. Bounded whatever peers answer: lookups of different keys at once, providers handed
//! out per lookup, providers dialed per lookup (`Limits`). The swarm task starts the queries and feeds in what they and the connections report;
//! this part decides who gets what and when a lookup is over.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::{Duration, Instant};

use libp2p::kad::{QueryId, RecordKey};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::mpsc;

use super::address_book::AddressBook;
use crate::config::{Limit, Limits};
use crate::messages::Provider;
use crate::metrics::Metrics;

/// How long a non-empty lookup result is reused for the same key.
const LOOKUP_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most lookup results cached at once.
const LOOKUP_CACHE_MAX: usize = 4096;

/// One running lookup.
struct Lookup {
    key: RecordKey,
    subscribers: Vec<mpsc::Sender<Provider>>,
    found: Vec<Provider>,
    seen: HashSet<PeerId>,
    /// Providers found without a known address, being dialed to learn one.
    waiting: HashSet<PeerId>,
    /// How many providers were dialed to learn an address.
    dialed: usize,
    /// A limit left a provider out: more answers would only be ignored.
    enough: bool,
    /// The DHT query is over; the lookup ends once nobody is waited for.
    finished: bool,
}

/// Running lookups by query id `Q` (Kademlia's, or plain numbers in tests), and recent results.
pub(super) struct Lookups<Q = QueryId> {
    running: HashMap<Q, Lookup>,
    by_key: HashMap<RecordKey, Q>,
    cache: HashMap<RecordKey, (Instant, Vec<Provider>)>,
    limits: Limits,
    metrics: Option<Metrics>,
}

impl<Q: Hash + Eq + Copy> Lookups<Q> {
    /// No lookups yet; what `limits` leaves out is counted in `metrics`.
    pub(super) fn new(limits: Limits, metrics: Option<Metrics>) -> Self {
        Lookups {
            running: HashMap::new(),
            by_key: HashMap::new(),
            cache: HashMap::new(),
            limits,
            metrics,
        }
    }

    /// Whether another lookup may start, under `--p2p-max-lookups`; counts a refusal.
    pub(super) fn may_start(&self) -> bool {
        let room = self.running.len() < self.limits.max_lookups;
        if !room {
            self.limited(Limit::LOOKUPS, 1);
        }
        room
    }

    fn limited(&self, limit: &'static str, n: usize) {
        if n > 0
            && let Some(m) = &self.metrics
        {
            m.limit_reached(limit, n);
        }
    }

    /// Answers `reply` from a recent result, or joins it to the running lookup of `key`. Hands
    /// `reply` back when neither exists: the caller starts a query and calls
    /// [`start`](Self::start).
    pub(super) fn join(
        &mut self,
        key: &RecordKey,
        reply: mpsc::Sender<Provider>,
    ) -> Option<mpsc::Sender<Provider>> {
        if let Some((_, providers)) = self.cache.get(key) {
            for p in providers {
                let _ = reply.try_send(p.clone());
            }
            return None;
        }
        if let Some(l) = self.by_key.get(key).and_then(|id| self.running.get_mut(id)) {
            for p in &l.found {
                let _ = reply.try_send(p.clone());
            }
            l.subscribers.push(reply);
            return None;
        }
        Some(reply)
    }

    /// Query `id` looks up `key` for `reply`.
    pub(super) fn start(&mut self, id: Q, key: RecordKey, reply: mpsc::Sender<Provider>) {
        self.by_key.insert(key.clone(), id);
        self.running.insert(
            id,
            Lookup {
                key,
                subscribers: vec![reply],
                found: Vec::new(),
                seen: HashSet::new(),
                waiting: HashSet::new(),
                dialed: 0,
                enough: false,
                finished: false,
            },
        );
    }

    /// Query `id` found `providers`. Those with an address in `book` are delivered; this node
    /// (`local`), providers seen before and providers that `is_down` are left out, and so is
    /// every provider past the lookup's limits. Returns the providers whose address must be
    /// learned: the caller dials them, then reports [`resolved`](Self::resolved) or
    /// [`unreachable`](Self::unreachable). Once a limit left a provider out, the lookup has all
    /// it will take: [`has_enough`](Self::has_enough) says so, and the caller ends the query.
    pub(super) fn found(
        &mut self,
        id: Q,
        providers: impl IntoIterator<Item = PeerId>,
        local: PeerId,
        is_down: impl Fn(&PeerId) -> bool,
        book: &AddressBook,
    ) -> Vec<PeerId> {
        let Some(l) = self.running.get_mut(&id) else {
            return Vec::new();
        };
        let limits = self.limits;
        let (mut to_dial, mut ready) = (Vec::new(), Vec::new());
        let (mut ignored, mut not_dialed) = (0, 0);
        for peer in providers {
            if l.found.len() + ready.len() + l.waiting.len() >= limits.max_providers_per_lookup {
                ignored += 1;
                continue;
            }
            if peer == local || l.seen.contains(&peer) {
                continue;
            }
            let addrs = book.addrs(&peer);
            if addrs.is_empty() && l.dialed >= limits.max_dials_per_lookup {
                // Not remembered as seen, so `seen` holds no more than the limits let in.
                not_dialed += 1;
                continue;
            }
            l.seen.insert(peer);
            if is_down(&peer) {
                tracing::debug!(%peer, "skipping a provider that stopped answering");
                continue;
            }
            match addrs {
                [] => {
                    l.dialed += 1;
                    l.waiting.insert(peer);
                    to_dial.push(peer);
                }
                addrs => ready.push(Provider {
                    peer,
                    addrs: addrs.to_vec(),
                }),
            }
        }
        for p in ready {
            l.deliver(p);
        }
        l.enough |= ignored + not_dialed > 0;
        self.limited(Limit::PROVIDERS_PER_LOOKUP, ignored);
        self.limited(Limit::DIALS_PER_LOOKUP, not_dialed);
        to_dial
    }

    /// Whether query `id`'s lookup has all it will take (a limit left a provider out).
    pub(super) fn has_enough(&self, id: Q) -> bool {
        self.running.get(&id).is_some_and(|l| l.enough)
    }

    /// `peer`, whose address was being learned, is known at `addrs` now: delivered to the
    /// lookups that wait for it (unless `addrs` is empty), which stop waiting.
    pub(super) fn resolved(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        self.stop_waiting(peer, addrs);
    }

    /// `peer`, whose address was being learned, cannot be reached: its lookups stop waiting.
    pub(super) fn unreachable(&mut self, peer: PeerId) {
        self.stop_waiting(peer, &[]);
    }

    fn stop_waiting(&mut self, peer: PeerId, addrs: &[Multiaddr]) {
        let ids: Vec<Q> = self
            .running
            .iter()
            .filter(|(_, l)| l.waiting.contains(&peer))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(l) = self.running.get_mut(&id) {
                l.waiting.remove(&peer);
                if !addrs.is_empty() {
                    l.deliver(Provider {
                        peer,
                        addrs: addrs.to_vec(),
                    });
                }
            }
            self.maybe_finish(id);
        }
    }

    /// Query `id` is over: its lookup ends once nobody is waited for.
    pub(super) fn finished(&mut self, id: Q) {
        if let Some(l) = self.running.get_mut(&id) {
            l.finished = true;
        }
        self.maybe_finish(id);
    }

    fn maybe_finish(&mut self, id: Q) {
        let done = self
            .running
            .get(&id)
            .is_some_and(|l| l.finished && l.waiting.is_empty());
        if !done {
            return;
        }
        if let Some(l) = self.running.remove(&id) {
            self.by_key.remove(&l.key);
            if !l.found.is_empty() && self.cache.len() < LOOKUP_CACHE_MAX {
                self.cache.insert(l.key, (Instant::now(), l.found));
            }
            // Dropping the subscribers closes their channels: the lookup is over.
        }
    }

    /// Forgets results older than the cache's time to live, as of `now`.
    pub(super) fn expire(&mut self, now: Instant) {
        self.cache
            .retain(|_, (at, _)| now.duration_since(*at) < LOOKUP_CACHE_TTL);
    }
}

impl Lookup {
    fn deliver(&mut self, provider: Provider) {
        self.subscribers
            .retain(|s| s.try_send(provider.clone()).is_ok() || !s.is_closed());
        self.found.push(provider);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guard::AddressGuard;

    /// A book of a node on loopback, as in tests.
    fn book() -> AddressBook {
        AddressBook::new(AddressGuard::new(
            &[],
            &["127.0.0.1:5001".parse().unwrap()],
            None,
        ))
    }

    fn lookups<Q: Hash + Eq + Copy>() -> Lookups<Q> {
        Lookups::new(Limits::default(), None)
    }

    fn key(s: &str) -> RecordKey {
        RecordKey::new(&s)
    }

    fn addr(n: u8) -> Multiaddr {
        format!("/ip4/10.0.0.{n}/tcp/5001").parse().unwrap()
    }

    /// Everything `rx` holds now, and whether it is closed (the lookup is over).
    fn drain(rx: &mut mpsc::Receiver<Provider>) -> (Vec<PeerId>, bool) {
        let mut got = Vec::new();
        loop {
            match rx.try_recv() {
                Ok(p) => got.push(p.peer),
                Err(mpsc::error::TryRecvError::Empty) => return (got, false),
                Err(mpsc::error::TryRecvError::Disconnected) => return (got, true),
            }
        }
    }

    fn never_down(_: &PeerId) -> bool {
        false
    }

    #[test]
    fn concurrent_lookups_of_one_key_share_one_query() {
        let mut l = lookups::<u32>();
        let mut book = book();
        let (local, a) = (PeerId::random(), PeerId::random());
        book.remember(a, vec![addr(1)]);
        let (tx1, mut rx1) = mpsc::channel(8);
        let tx1 = l.join(&key("k"), tx1).expect("a new query");
        l.start(7, key("k"), tx1);
        assert!(l.found(7, [a, local], local, never_down, &book).is_empty());
        // A second caller gets what was found so far, then what comes.
        let (tx2, mut rx2) = mpsc::channel(8);
        assert!(l.join(&key("k"), tx2).is_none());
        assert_eq!(drain(&mut rx2), (vec![a], false));
        let b = PeerId::random();
        book.remember(b, vec![addr(2)]);
        l.found(7, [a, b], local, never_down, &book);
        l.finished(7);
        assert_eq!(drain(&mut rx1), (vec![a, b], true));
        assert_eq!(drain(&mut rx2), (vec![b], true));
    }

    #[test]
    fn a_result_is_reused_until_it_expires() {
        let mut l = lookups::<u32>();
        let mut book = book();
        let a = PeerId::random();
        book.remember(a, vec![addr(1)]);
        let (tx, _rx) = mpsc::channel(8);
        l.start(1, key("k"), tx);
        l.found(1, [a], PeerId::random(), never_down, &book);
        l.finished(1);
        let (tx, mut rx) = mpsc::channel(8);
        assert!(l.join(&key("k"), tx).is_none(), "answered from the cache");
        assert_eq!(drain(&mut rx), (vec![a], true));
        l.expire(Instant::now());
        let (tx, _rx) = mpsc::channel(8);
        assert!(l.join(&key("k"), tx).is_none(), "still fresh");
        l.expire(Instant::now() + LOOKUP_CACHE_TTL);
        let (tx, _rx) = mpsc::channel(8);
        assert!(l.join(&key("k"), tx).is_some(), "expired: a new query");
    }

    #[test]
    fn an_empty_result_is_not_cached() {
        let mut l = lookups::<u32>();
        let (tx, mut rx) = mpsc::channel(8);
        l.start(1, key("k"), tx);
        l.finished(1);
        assert_eq!(drain(&mut rx), (vec![], true));
        let (tx, _rx) = mpsc::channel(8);
        assert!(l.join(&key("k"), tx).is_some());
    }

    #[test]
    fn the_cache_is_bounded() {
        let mut l = lookups::<usize>();
        let mut book = book();
        let a = PeerId::random();
        book.remember(a, vec![addr(1)]);
        for i in 0..=LOOKUP_CACHE_MAX {
            let (tx, _rx) = mpsc::channel(1);
            l.start(i, key(&i.to_string()), tx);
            l.found(i, [a], PeerId::random(), never_down, &book);
            l.finished(i);
        }
        assert_eq!(l.cache.len(), LOOKUP_CACHE_MAX);
    }

    #[test]
    fn a_provider_without_an_address_is_waited_for() {
        let mut l = lookups::<u32>();
        let book = book();
        let (a, b) = (PeerId::random(), PeerId::random());
        let (tx, mut rx) = mpsc::channel(8);
        l.start(1, key("k"), tx);
        assert_eq!(l.found(1, [a], PeerId::random(), never_down, &book), [a]);
        assert_eq!(l.found(1, [a, b], PeerId::random(), never_down, &book), [b]);
        l.finished(1);
        assert_eq!(drain(&mut rx), (vec![], false), "still waiting for a and b");
        l.resolved(a, &[addr(1)]);
        assert_eq!(drain(&mut rx), (vec![a], false));
        l.unreachable(b);
        assert_eq!(drain(&mut rx), (vec![], true));
    }

    #[test]
    fn a_provider_resolved_without_addresses_is_not_delivered() {
        let mut l = lookups::<u32>();
        let a = PeerId::random();
        let (tx, mut rx) = mpsc::channel(8);
        l.start(1, key("k"), tx);
        l.found(1, [a], PeerId::random(), never_down, &book());
        l.finished(1);
        l.resolved(a, &[]);
        assert_eq!(drain(&mut rx), (vec![], true));
    }

    #[test]
    fn providers_that_stopped_answering_are_left_out() {
        let mut l = lookups::<u32>();
        let mut book = book();
        let (up, down) = (PeerId::random(), PeerId::random());
        book.remember(up, vec![addr(1)]);
        book.remember(down, vec![addr(2)]);
        let (tx, mut rx) = mpsc::channel(8);
        l.start(1, key("k"), tx);
        let is_down = |p: &PeerId| *p == down;
        assert!(
            l.found(1, [up, down], PeerId::random(), is_down, &book)
                .is_empty()
        );
        l.finished(1);
        assert_eq!(drain(&mut rx), (vec![up], true));
    }

    #[test]
    fn a_lookup_hands_out_and_dials_no_more_than_its_limits() {
        let limits = Limits {
            max_providers_per_lookup: 5,
            max_dials_per_lookup: 2,
            ..Limits::default()
        };
        let mut l = Lookups::<u32>::new(limits, None);
        let mut book = book();
        let known: Vec<PeerId> = (1..=4)
            .map(|i| {
                let p = PeerId::random();
                book.remember(p, vec![addr(i)]);
                p
            })
            .collect();
        let unknown: Vec<PeerId> = (0..1000).map(|_| PeerId::random()).collect();
        let (tx, mut rx) = mpsc::channel(64);
        l.start(1, key("k"), tx);
        // A peer answers with 1,000 providers of unknown address before the real ones.
        let to_dial = l.found(1, unknown.clone(), PeerId::random(), never_down, &book);
        assert_eq!(to_dial, unknown[..2]);
        assert!(l.has_enough(1), "a limit was reached: the query may end");
        assert_eq!(l.running[&1].seen.len(), 2, "the ignored ones are not kept");
        assert!(
            l.found(1, known.clone(), PeerId::random(), never_down, &book)
                .is_empty()
        );
        l.finished(1);
        l.unreachable(unknown[0]);
        l.unreachable(unknown[1]);
        assert_eq!(drain(&mut rx), (known[..3].to_vec(), true));
    }

    #[test]
    fn lookups_at_once_are_bounded() {
        let limits = Limits {
            max_lookups: 2,
            ..Limits::default()
        };
        let mut l = Lookups::<u32>::new(limits, None);
        for i in 0..2 {
            assert!(l.may_start());
            let (tx, _rx) = mpsc::channel(1);
            l.start(i, key(&i.to_string()), tx);
        }
        assert!(!l.may_start());
        l.finished(0);
        assert!(l.may_start());
    }

    #[test]
    fn reports_for_unknown_queries_are_ignored() {
        let mut l = lookups::<u32>();
        let a = PeerId::random();
        assert!(
            l.found(9, [a], PeerId::random(), never_down, &book())
                .is_empty()
        );
        l.finished(9);
        l.unreachable(a);
    }
}
