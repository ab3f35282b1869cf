//! Bootstrap dial rounds: the controller asks the swarm task to connect to a sample of the
//! candidates and wants one outcome per candidate, in order, once all are known. A round
//! connects to at most `max` candidates: those connected already count, the rest of the sample
//! is drawn at random from the others, and each dial that fails is replaced by another of them
//! until the sample is complete or none is left. So a round in a healthy cluster of any size
//! dials a handful of nodes, and a round where most candidates are down still tries them all.
//! The swarm task does the dialing; this part decides what to dial and tracks which
//! connection belongs to which round and slot.

use std::collections::HashMap;

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use rand::seq::SliceRandom as _;
use tokio::sync::oneshot;

use crate::messages::{Candidate, DialOutcome};

/// One round of dials, waiting for its outcomes.
struct DialRound {
    candidates: Vec<Candidate>,
    outcomes: Vec<Option<DialOutcome>>,
    /// Slots not dialed yet, in random order; the next dial takes the last.
    untried: Vec<usize>,
    /// Connections still wanted to complete the sample.
    wanted: usize,
    /// Dials under way.
    in_flight: usize,
    /// The sample's size.
    max: usize,
    reply: Option<oneshot::Sender<Vec<DialOutcome>>>,
}

/// A round whose every outcome is known, ready to answer.
pub(super) struct Answer {
    outcomes: Vec<DialOutcome>,
    /// The sample's size: more candidates may have been connected already.
    pub(super) max: usize,
    reply: Option<oneshot::Sender<Vec<DialOutcome>>>,
}

impl Answer {
    /// The peers of the round's sample: those it connected to, newly or already.
    pub(super) fn sample(&self) -> impl Iterator<Item = PeerId> + '_ {
        self.outcomes.iter().filter_map(|o| match o {
            DialOutcome::Connected(p) | DialOutcome::AlreadyConnected(p) => Some(*p),
            _ => None,
        })
    }

    /// Whether the round connected to a candidate it dialed (not one connected already).
    pub(super) fn connected_new(&self) -> bool {
        self.outcomes
            .iter()
            .any(|o| matches!(o, DialOutcome::Connected(_)))
    }

    /// Sends the outcomes to the controller.
    pub(super) fn send(self) {
        if let Some(reply) = self.reply {
            let _ = reply.send(self.outcomes);
        }
    }
}

/// Identifies a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct RoundId(u64);

/// Rounds under way and the connections they wait for.
#[derive(Default)]
pub(super) struct Dials {
    rounds: HashMap<RoundId, DialRound>,
    /// The round and slot of each dial under way.
    dials: HashMap<ConnectionId, (RoundId, usize)>,
    next_round: u64,
}

impl Dials {
    /// A round over `candidates`, answered on `reply`, that wants `max` connections; `connected`
    /// has the peer already connected at each candidate, if any (those count, beyond `max` too).
    pub(super) fn start(
        &mut self,
        candidates: Vec<Candidate>,
        connected: &[Option<PeerId>],
        max: usize,
        reply: oneshot::Sender<Vec<DialOutcome>>,
    ) -> RoundId {
        let id = RoundId(self.next_round);
        self.next_round += 1;
        let outcomes: Vec<Option<DialOutcome>> = (0..candidates.len())
            .map(|i| {
                connected
                    .get(i)
                    .copied()
                    .flatten()
                    .map(DialOutcome::AlreadyConnected)
            })
            .collect();
        let mut untried: Vec<usize> = (0..candidates.len())
            .filter(|i| outcomes[*i].is_none())
            .collect();
        untried.shuffle(&mut rand::rng());
        let already = candidates.len() - untried.len();
        let round = DialRound {
            candidates,
            outcomes,
            untried,
            wanted: max.saturating_sub(already),
            in_flight: 0,
            max,
            reply: Some(reply),
        };
        self.rounds.insert(id, round);
        id
    }

    /// The next candidate of `round` to dial, with its slot, while dials under way are fewer
    /// than the connections still wanted. The caller reports its outcome with `dialing` and
    /// `ended`, or `set` when the dial ended at once.
    pub(super) fn next(&mut self, round: RoundId) -> Option<(usize, Candidate)> {
        let r = self.rounds.get_mut(&round)?;
        if r.in_flight >= r.wanted {
            return None;
        }
        let index = r.untried.pop()?;
        r.in_flight += 1;
        Some((index, r.candidates[index].clone()))
    }

    /// The dial in slot `index` of `round` ended at once with `outcome`.
    pub(super) fn set(&mut self, round: RoundId, index: usize, outcome: DialOutcome) {
        if let Some(r) = self.rounds.get_mut(&round) {
            r.in_flight = r.in_flight.saturating_sub(1);
            if matches!(outcome, DialOutcome::Connected(_)) {
                r.wanted = r.wanted.saturating_sub(1);
            }
            r.outcomes[index] = Some(outcome);
        }
    }

    /// The dial in slot `index` of `round` is under way as `connection`.
    pub(super) fn dialing(&mut self, connection: ConnectionId, round: RoundId, index: usize) {
        self.dials.insert(connection, (round, index));
    }

    /// `connection` ended with `outcome`. Returns the round it belonged to, if any (the
    /// connections of lookups and Kademlia belong to none).
    pub(super) fn ended(
        &mut self,
        connection: ConnectionId,
        outcome: DialOutcome,
    ) -> Option<RoundId> {
        let (round, index) = self.dials.remove(&connection)?;
        self.set(round, index, outcome);
        Some(round)
    }

    /// `round`'s answer once its sample is complete (or no candidate is left to try) and no
    /// dial is under way; the candidates never dialed are `NotDialed`. The round is then over.
    pub(super) fn complete(&mut self, round: RoundId) -> Option<Answer> {
        let complete = self
            .rounds
            .get(&round)
            .is_some_and(|r| r.in_flight == 0 && (r.wanted == 0 || r.untried.is_empty()));
        if !complete {
            return None;
        }
        let mut r = self.rounds.remove(&round)?;
        Some(Answer {
            outcomes: r
                .outcomes
                .into_iter()
                .map(|o| o.unwrap_or(DialOutcome::NotDialed))
                .collect(),
            max: r.max,
            reply: r.reply.take(),
        })
    }

    /// Forgets rounds whose caller stopped waiting.
    pub(super) fn forget_abandoned(&mut self) {
        self.rounds
            .retain(|_, r| r.reply.as_ref().is_some_and(|s| !s.is_closed()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::DialFailure;

    fn candidates(n: u16) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate::at(([10, 0, 0, 1], 5000 + i).into()))
            .collect()
    }

    /// Starts every dial `next` allows; their slots, in the order taken.
    fn dial_all(d: &mut Dials, round: RoundId, first: u64) -> Vec<(usize, ConnectionId)> {
        let mut started = Vec::new();
        while let Some((i, _)) = d.next(round) {
            let c = ConnectionId::new_unchecked(first as usize + started.len());
            d.dialing(c, round, i);
            started.push((i, c));
        }
        started
    }

    #[test]
    fn a_round_dials_a_sample_and_answers_in_order_once_it_is_complete() {
        let mut d = Dials::default();
        let (tx, mut rx) = oneshot::channel();
        let round = d.start(candidates(10), &[], 3, tx);
        let first = dial_all(&mut d, round, 0);
        assert_eq!(first.len(), 3, "three dials at once, no more");
        let peers: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
        for ((_, c), p) in first.iter().zip(&peers) {
            assert!(d.complete(round).is_none());
            assert_eq!(d.ended(*c, DialOutcome::Connected(*p)), Some(round));
        }
        assert!(d.next(round).is_none());
        let answer = d.complete(round).expect("complete");
        let sample: Vec<PeerId> = answer.sample().collect();
        assert_eq!(sample.len(), 3);
        assert!(answer.connected_new());
        answer.send();
        let outcomes = rx.try_recv().unwrap();
        assert_eq!(outcomes.len(), 10);
        for (i, c) in &first {
            assert!(
                matches!(outcomes[*i], DialOutcome::Connected(_)),
                "slot {i}"
            );
            let _ = c;
        }
        let not_dialed = outcomes.iter().filter(|o| **o == DialOutcome::NotDialed);
        assert_eq!(not_dialed.count(), 7);
        assert!(d.complete(round).is_none(), "answered once");
    }

    #[test]
    fn each_failed_dial_is_replaced_until_none_is_left() {
        let mut d = Dials::default();
        let (tx, mut rx) = oneshot::channel();
        let round = d.start(candidates(5), &[], 2, tx);
        let mut started = dial_all(&mut d, round, 0);
        let mut n = 100;
        let mut failed = 0;
        while let Some((_, c)) = started.pop() {
            let outcome = if failed < 3 {
                failed += 1;
                DialOutcome::Failed(DialFailure::NoAddresses)
            } else {
                DialOutcome::ItsMe
            };
            d.ended(c, outcome);
            started.extend(dial_all(&mut d, round, n));
            n += 10;
        }
        let answer = d.complete(round).expect("every candidate tried");
        assert_eq!(answer.sample().count(), 0);
        answer.send();
        assert!(
            !rx.try_recv().unwrap().contains(&DialOutcome::NotDialed),
            "all five dialed"
        );
    }

    #[test]
    fn connected_candidates_count_and_a_full_sample_dials_nothing() {
        let mut d = Dials::default();
        let (tx, _rx) = oneshot::channel();
        let (a, b) = (PeerId::random(), PeerId::random());
        let round = d.start(candidates(4), &[Some(a), None, Some(b)], 2, tx);
        assert!(d.next(round).is_none());
        let answer = d.complete(round).expect("nothing to dial");
        assert_eq!(answer.sample().collect::<Vec<_>>(), [a, b]);
        assert!(
            !answer.connected_new(),
            "nothing new: no Kademlia bootstrap"
        );

        let (tx, _rx) = oneshot::channel();
        let round = d.start(candidates(4), &[None, Some(a)], 2, tx);
        let (i, _) = d.next(round).expect("one more wanted");
        assert_ne!(i, 1, "the connected one is not dialed");
        assert!(d.next(round).is_none());
        d.set(round, i, DialOutcome::Connected(b));
        assert_eq!(d.complete(round).expect("complete").sample().count(), 2);
    }

    #[test]
    fn an_empty_round_answers_at_once_and_rounds_are_distinct() {
        let mut d = Dials::default();
        let (tx, _rx) = oneshot::channel();
        let first = d.start(Vec::new(), &[], 8, tx);
        let (tx, _rx2) = oneshot::channel();
        assert_ne!(first, d.start(candidates(1), &[], 8, tx));
        let answer = d.complete(first).expect("nothing to wait for");
        assert_eq!(answer.sample().count(), 0);
    }

    #[test]
    fn connections_of_no_round_are_ignored() {
        let mut d = Dials::default();
        let c = ConnectionId::new_unchecked(1);
        assert_eq!(d.ended(c, DialOutcome::ItsMe), None);
    }

    #[test]
    fn rounds_whose_caller_left_are_forgotten() {
        let mut d = Dials::default();
        let (tx, rx) = oneshot::channel();
        let left = d.start(candidates(1), &[], 1, tx);
        let (tx, _rx) = oneshot::channel();
        let waiting = d.start(candidates(1), &[], 1, tx);
        drop(rx);
        d.forget_abandoned();
        assert!(d.next(left).is_none());
        let (i, _) = d.next(waiting).unwrap();
        d.set(waiting, i, DialOutcome::ItsMe);
        assert!(d.complete(left).is_none());
        assert!(d.complete(waiting).is_some());
    }
}
