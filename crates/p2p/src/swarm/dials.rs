//! Bootstrap dial rounds: the controller asks the swarm task to dial a list of candidates and
//! wants one outcome per candidate, in order, once all are known. A round collects the outcomes
//! of its dials (some known at once, some when the connection opens or fails) and answers when
//! the last one arrives. The swarm task does the dialing; this part tracks which connection
//! belongs to which round and slot.

use std::collections::HashMap;

use libp2p::swarm::ConnectionId;
use tokio::sync::oneshot;

use crate::messages::DialOutcome;

/// One round of dials, waiting for its outcomes.
struct DialRound {
    outcomes: Vec<Option<DialOutcome>>,
    reply: Option<oneshot::Sender<Vec<DialOutcome>>>,
}

/// A round whose every outcome is known, ready to answer.
pub(super) struct Answer {
    outcomes: Vec<DialOutcome>,
    reply: Option<oneshot::Sender<Vec<DialOutcome>>>,
}

impl Answer {
    /// Whether any dial of the round connected.
    pub(super) fn connected(&self) -> bool {
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
    /// A round of `n` dials answered on `reply`.
    pub(super) fn start(&mut self, n: usize, reply: oneshot::Sender<Vec<DialOutcome>>) -> RoundId {
        let id = RoundId(self.next_round);
        self.next_round += 1;
        let round = DialRound {
            outcomes: vec![None; n],
            reply: Some(reply),
        };
        self.rounds.insert(id, round);
        id
    }

    /// The dial in slot `index` of `round` ended at once with `outcome`.
    pub(super) fn set(&mut self, round: RoundId, index: usize, outcome: DialOutcome) {
        if let Some(r) = self.rounds.get_mut(&round) {
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

    /// `round`'s answer once every outcome is known; the round is then over.
    pub(super) fn complete(&mut self, round: RoundId) -> Option<Answer> {
        let complete = self
            .rounds
            .get(&round)
            .is_some_and(|r| r.outcomes.iter().all(Option::is_some));
        if !complete {
            return None;
        }
        let mut r = self.rounds.remove(&round)?;
        Some(Answer {
            outcomes: r.outcomes.into_iter().flatten().collect(),
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
    use libp2p::PeerId;

    #[test]
    fn a_round_answers_in_order_once_every_dial_ended() {
        let mut d = Dials::default();
        let (tx, mut rx) = oneshot::channel();
        let round = d.start(3, tx);
        let (c0, c2) = (
            ConnectionId::new_unchecked(10),
            ConnectionId::new_unchecked(12),
        );
        let peer = PeerId::random();
        d.dialing(c0, round, 0);
        d.set(round, 1, DialOutcome::Failed(DialFailure::NoAddresses));
        d.dialing(c2, round, 2);
        assert!(d.complete(round).is_none());
        assert_eq!(d.ended(c2, DialOutcome::ItsMe), Some(round));
        assert!(d.complete(round).is_none());
        assert_eq!(d.ended(c0, DialOutcome::Connected(peer)), Some(round));
        assert_eq!(d.ended(c0, DialOutcome::ItsMe), None, "each dial ends once");
        let answer = d.complete(round).expect("complete");
        assert!(answer.connected());
        answer.send();
        assert_eq!(
            rx.try_recv().unwrap(),
            [
                DialOutcome::Connected(peer),
                DialOutcome::Failed(DialFailure::NoAddresses),
                DialOutcome::ItsMe
            ]
        );
        assert!(d.complete(round).is_none(), "answered once");
    }

    #[test]
    fn an_empty_round_answers_at_once_and_rounds_are_distinct() {
        let mut d = Dials::default();
        let (tx, _rx) = oneshot::channel();
        let first = d.start(0, tx);
        let (tx, _rx2) = oneshot::channel();
        assert_ne!(first, d.start(1, tx));
        let answer = d.complete(first).expect("nothing to wait for");
        assert!(!answer.connected());
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
        let left = d.start(1, tx);
        let (tx, _rx) = oneshot::channel();
        let waiting = d.start(1, tx);
        drop(rx);
        d.forget_abandoned();
        d.set(left, 0, DialOutcome::ItsMe);
        d.set(waiting, 0, DialOutcome::ItsMe);
        assert!(d.complete(left).is_none());
        assert!(d.complete(waiting).is_some());
    }
}
