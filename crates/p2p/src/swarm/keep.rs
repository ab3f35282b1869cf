//! Which connections stay open while nothing uses them. A bootstrap round connects to a small
//! random sample of the listed nodes; those connections are what makes a node `connected`, so
//! they stay open for as long as pings are answered. Every other connection (one Kademlia or a
//! lookup opened) closes once it has been idle for the swarm's idle timeout, so connections do
//! not grow back to a full mesh as queries reach every node.
//!
//! The node that dialed a connection decides when it closes: an outbound connection is kept
//! while its peer is in this node's sample, an inbound one is always kept by this side. So the
//! sampled connections of the other nodes stay open here too, and a connection that closes
//! without an error on this side was closed by its dialer. That is what lets the swarm task
//! tell an idle close from a dead peer (see `on_closed` in `mod.rs`): a peer that closes a
//! connection this node dialed is gone, since it never closes one for being idle.
//!
//! libp2p's swarm closes a connection once no handler keeps it alive and no stream is open
//! (`ConnectionHandler::connection_keep_alive`, `with_idle_connection_timeout`); Kademlia's,
//! identify's and ping's handlers never keep a connection for itself, so this handler alone
//! decides.

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::task::{Context, Poll};

use libp2p::PeerId;
use libp2p::core::transport::PortUse;
use libp2p::core::upgrade::DeniedUpgrade;
use libp2p::core::{Endpoint, Multiaddr};
use libp2p::swarm::handler::ConnectionEvent;
use libp2p::swarm::{
    ConnectionDenied, ConnectionHandler, ConnectionHandlerEvent, ConnectionId, FromSwarm,
    NetworkBehaviour, NotifyHandler, SubstreamProtocol, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};

/// The sample's peers and the outbound connections to tell when it changes.
#[derive(Default)]
pub(crate) struct Behaviour {
    /// The peers of the last bootstrap round's sample, at most `--bootstrap-max-dials`.
    kept: HashSet<PeerId>,
    /// Open outbound connections by peer (bounded by the connection limits).
    outbound: HashMap<PeerId, Vec<ConnectionId>>,
    /// Handlers to tell whether to keep their connection.
    events: VecDeque<ToSwarm<Infallible, bool>>,
}

impl Behaviour {
    /// Keeps the connections to `sample` from now on, and no longer those to the peers of the
    /// previous sample that are not in it (they close once idle).
    pub(crate) fn keep(&mut self, sample: HashSet<PeerId>) {
        for (peer, connections) in &self.outbound {
            let keep = sample.contains(peer);
            if keep != self.kept.contains(peer) {
                for c in connections {
                    self.events.push_back(ToSwarm::NotifyHandler {
                        peer_id: *peer,
                        handler: NotifyHandler::One(*c),
                        event: keep,
                    });
                }
            }
        }
        self.kept = sample;
    }

    /// The peers of the sample.
    pub(crate) fn kept(&self) -> impl Iterator<Item = &PeerId> {
        self.kept.iter()
    }

    /// Whether `peer` is in the sample.
    pub(crate) fn is_kept(&self, peer: &PeerId) -> bool {
        self.kept.contains(peer)
    }
}

impl NetworkBehaviour for Behaviour {
    type ConnectionHandler = Handler;
    type ToSwarm = Infallible;

    fn handle_established_inbound_connection(
        &mut self,
        _: ConnectionId,
        _: PeerId,
        _: &Multiaddr,
        _: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        // Its dialer decides when it closes.
        Ok(Handler { keep: true })
    }

    fn handle_established_outbound_connection(
        &mut self,
        _: ConnectionId,
        peer: PeerId,
        _: &Multiaddr,
        _: Endpoint,
        _: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        Ok(Handler {
            keep: self.kept.contains(&peer),
        })
    }

    fn on_connection_handler_event(
        &mut self,
        _: PeerId,
        _: ConnectionId,
        e: THandlerOutEvent<Self>,
    ) {
        match e {}
    }

    fn poll(&mut self, _: &mut Context<'_>) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.events.pop_front().map_or(Poll::Pending, Poll::Ready)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            FromSwarm::ConnectionEstablished(e) if e.endpoint.is_dialer() => {
                self.outbound
                    .entry(e.peer_id)
                    .or_default()
                    .push(e.connection_id);
            }
            FromSwarm::ConnectionClosed(e) if e.endpoint.is_dialer() => {
                if let Some(connections) = self.outbound.get_mut(&e.peer_id) {
                    connections.retain(|c| *c != e.connection_id);
                    if connections.is_empty() {
                        self.outbound.remove(&e.peer_id);
                    }
                }
            }
            _ => {}
        }
    }
}

/// Keeps its connection open or not, as the behaviour says; speaks no protocol.
pub(crate) struct Handler {
    keep: bool,
}

impl ConnectionHandler for Handler {
    type FromBehaviour = bool;
    type ToBehaviour = Infallible;
    type InboundProtocol = DeniedUpgrade;
    type OutboundProtocol = DeniedUpgrade;
    type InboundOpenInfo = ();
    type OutboundOpenInfo = ();

    fn listen_protocol(&self) -> SubstreamProtocol<Self::InboundProtocol> {
        SubstreamProtocol::new(DeniedUpgrade, ())
    }

    fn on_behaviour_event(&mut self, keep: bool) {
        self.keep = keep;
    }

    fn connection_keep_alive(&self) -> bool {
        self.keep
    }

    fn poll(
        &mut self,
        _: &mut Context<'_>,
    ) -> Poll<ConnectionHandlerEvent<Self::OutboundProtocol, (), Self::ToBehaviour>> {
        Poll::Pending
    }

    fn on_connection_event(
        &mut self,
        _: ConnectionEvent<Self::InboundProtocol, Self::OutboundProtocol>,
    ) {
    }
}
