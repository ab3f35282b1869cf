//! The swarm task's part of a bootstrap round: connecting to a sample of the candidates the
//! controller sends (finding some connected already, dialing the others `dials` picks, one
//! more for each that fails), keeping the sample's connections open (`keep`), and answering the
//! controller once every dial has an outcome (`dials` keeps the round's state).

use std::collections::HashSet;

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::DialOpts;
use tokio::sync::oneshot;

use super::EventLoop;
use super::dials::{Answer, RoundId};
use crate::messages::{Candidate, DialFailure, DialOutcome};

impl EventLoop {
    pub(super) fn dial_round(
        &mut self,
        candidates: Vec<Candidate>,
        max: usize,
        reply: oneshot::Sender<Vec<DialOutcome>>,
    ) {
        let connected: Vec<Option<PeerId>> =
            candidates.iter().map(|c| self.connected_at(c)).collect();
        for _ in connected.iter().flatten() {
            self.metrics.candidate("connected");
        }
        let round = self.dials.start(candidates, &connected, max, reply);
        self.dial_more(round);
    }

    /// Dials the candidates of `round` that `dials` asks for, then answers if it is complete.
    fn dial_more(&mut self, round: RoundId) {
        while let Some((i, c)) = self.dials.next(round) {
            let opts = match c.peer {
                Some(peer) => DialOpts::peer_id(peer)
                    .addresses(vec![c.addr.clone()])
                    .build(),
                None => DialOpts::unknown_peer_id().address(c.addr.clone()).build(),
            };
            let connection = opts.connection_id();
            self.metrics.candidate("dialed");
            match self.swarm.dial(opts) {
                Ok(()) => {
                    tracing::debug!(address = %c.addr, "dialing bootstrap candidate");
                    self.dials.dialing(connection, round, i);
                }
                Err(e) => {
                    self.metrics.candidate("failed");
                    tracing::debug!(address = %c.addr, error = %e, "bootstrap dial failed");
                    self.dials
                        .set(round, i, DialOutcome::Failed(DialFailure::from(&e)));
                }
            }
        }
        if let Some(answer) = self.dials.complete(round) {
            self.answer(answer);
        }
    }

    /// The peer already connected at `candidate`'s address, if any.
    fn connected_at(&self, candidate: &Candidate) -> Option<PeerId> {
        let peer = candidate.peer?;
        self.swarm.is_connected(&peer).then_some(peer).or_else(|| {
            self.book
                .connected_at(&candidate.addr, |p| self.swarm.is_connected(p))
        })
    }

    pub(super) fn on_dial_outcome(&mut self, connection: ConnectionId, outcome: DialOutcome) {
        let label = match &outcome {
            DialOutcome::Connected(_) | DialOutcome::AlreadyConnected(_) => "connected",
            DialOutcome::Failed(_) => "failed",
            DialOutcome::ItsMe => "self_dial",
            DialOutcome::NotDialed => return,
        };
        if let Some(round) = self.dials.ended(connection, outcome) {
            self.metrics.candidate(label);
            // A dial that failed is replaced by another candidate.
            self.dial_more(round);
        }
    }

    /// Keeps the connections of the round's sample (of the peers connected already, those kept
    /// before first, so a healthy node's sample stays the same), fills the routing table from
    /// new peers, and answers the controller. A round that only found its sample connected
    /// starts no Kademlia bootstrap: its queries would open connections to peers all over the
    /// cluster every refresh, for nothing new (Kademlia also bootstraps every 5 minutes).
    fn answer(&mut self, answer: Answer) {
        let keep = &self.swarm.behaviour().keep;
        let (mut sample, others): (Vec<PeerId>, Vec<PeerId>) =
            answer.sample().partition(|p| keep.is_kept(p));
        sample.extend(others);
        let sample: HashSet<PeerId> = sample.into_iter().take(answer.max).collect();
        if answer.connected_new() {
            let _ = self.kad().bootstrap();
        }
        self.swarm.behaviour_mut().keep.keep(sample);
        self.publish_counts();
        answer.send();
    }
}
