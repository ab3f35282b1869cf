//! The swarm task's part of a bootstrap round: dialing the candidates the controller sends, and
//! answering it once every dial has an outcome (`dials` keeps the round's state).

use libp2p::PeerId;
use libp2p::swarm::ConnectionId;
use libp2p::swarm::dial_opts::DialOpts;
use tokio::sync::oneshot;

use super::EventLoop;
use super::dials::RoundId;
use crate::messages::{Candidate, DialFailure, DialOutcome};

impl EventLoop {
    pub(super) fn dial_round(
        &mut self,
        candidates: Vec<Candidate>,
        reply: oneshot::Sender<Vec<DialOutcome>>,
    ) {
        let round = self.dials.start(candidates.len(), reply);
        for (i, c) in candidates.into_iter().enumerate() {
            if let Some(peer) = self.connected_at(&c) {
                self.dials.set(round, i, DialOutcome::Connected(peer));
                self.metrics.candidate("connected");
                continue;
            }
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
        self.answer_if_complete(round);
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
            DialOutcome::Connected(_) => "connected",
            DialOutcome::Failed(_) => "failed",
            DialOutcome::ItsMe => "self_dial",
        };
        if let Some(round) = self.dials.ended(connection, outcome) {
            self.metrics.candidate(label);
            self.answer_if_complete(round);
        }
    }

    fn answer_if_complete(&mut self, round: RoundId) {
        if let Some(answer) = self.dials.complete(round) {
            if answer.connected() {
                // Fill the routing table from the new peers.
                let _ = self.kad().bootstrap();
            }
            answer.send();
        }
    }
}
