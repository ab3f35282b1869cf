//! The one task that owns the libp2p swarm. Everything else talks to it through
//! [`Command`]s on a bounded channel; it answers over oneshot or bounded channels and publishes
//! peer counts and listen addresses on watch channels.
//!
//! The task is a dispatcher: it turns commands and swarm events into calls on parts that each
//! own one piece of state and never touch the network themselves, and carries out what they
//! ask for (start a query, dial a peer):
//! - `lookups`: provider lookups (shared queries, the result cache, providers waited for).
//! - `dials`: bootstrap dial rounds and their outcomes; `rounds` dials them.
//! - `address_book`: where peers can be reached.
//! - `handshakes`: failed private network handshakes, logged once per address.
//! - `provide`: which keys are provided and the queue of records to publish.
//! - `records`: the provider records this node holds for itself and others, bounded.
//! - `behaviour`: the libp2p behaviour, protocol names and the swarm built from them.

mod address_book;
pub(crate) mod behaviour;
mod dials;
mod handshakes;
mod lookups;
mod provide;
mod records;
mod rounds;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use libp2p::core::ConnectedPoint;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::metrics::Recorder as _;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionError, ConnectionId, DialError, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm, identify, ping};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use self::address_book::AddressBook;
use self::behaviour::{Behaviour, BehaviourEvent, KAD_PROTOCOL};
use self::dials::Dials;
use self::handshakes::Handshakes;
use self::lookups::Lookups;
use self::provide::Provide;
use crate::config::{Config, Limit};
use crate::guard::AddressGuard;
use crate::liveness::Liveness;
use crate::messages::{Command, Counts, DialFailure, DialOutcome, PeerInfo, Provider};
use crate::metrics::Metrics;

/// How often queued publications, the lookup cache and abandoned rounds are looked after.
const TICK: Duration = Duration::from_millis(100);

/// The swarm task's state: the swarm, its channels, and the parts it dispatches to.
pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    metrics: Metrics,
    counts: watch::Sender<Counts>,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
    provide: Provide,
    lookups: Lookups,
    dials: Dials,
    book: AddressBook,
    liveness: Liveness,
    handshakes: Handshakes,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        metrics: Metrics,
        counts: watch::Sender<Counts>,
        listen_addrs: watch::Sender<Vec<Multiaddr>>,
        config: &Config,
        guard: AddressGuard,
    ) -> Self {
        EventLoop {
            swarm,
            commands,
            lookups: Lookups::new(config.limits, Some(metrics.clone())),
            metrics,
            counts,
            listen_addrs,
            provide: Provide::new(),
            dials: Dials::default(),
            book: AddressBook::new(guard),
            liveness: Liveness::new(config.peer_down_for),
            handshakes: Handshakes::default(),
        }
    }

    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => return,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = tick.tick() => self.on_tick(),
            }
        }
    }

    fn kad(&mut self) -> &mut kad::Behaviour<records::ProviderStore> {
        &mut self.swarm.behaviour_mut().kad
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Provide(keys) => {
                self.provide.provide(keys);
                // At once, not at the next tick: starting to provide also puts the record in
                // this node's own store, which is what a peer's lookup asks first.
                self.publish_queued();
            }
            Command::ProvideFirst(keys) => {
                self.provide.provide_first(keys);
                self.publish_queued();
            }
            Command::Unprovide(keys) => {
                for key in self.provide.unprovide(keys) {
                    self.kad().stop_providing(&key);
                }
            }
            Command::ReprovideAll => {
                self.provide.reprovide_all();
                self.publish_queued();
            }
            Command::Lookup { key, reply } => self.lookup(key, reply),
            Command::Dial { candidates, reply } => self.dial_round(candidates, reply),
            Command::Peers(reply) => {
                let _ = reply.send(self.peers());
            }
        }
    }

    fn on_tick(&mut self) {
        self.publish_queued();
        self.lookups.expire(Instant::now());
        self.dials.forget_abandoned();
    }

    /// Starts publishing the queued keys the provide queue lets through.
    fn publish_queued(&mut self) {
        while let Some(key) = self.provide.next() {
            match self.kad().start_providing(key) {
                Ok(id) => self.provide.started(id),
                Err(e) => {
                    if self.provide.store_full() {
                        tracing::warn!(error = %e, "cannot advertise more content: provider store full");
                    }
                }
            }
        }
    }

    // ---- lookups ----

    fn lookup(&mut self, key: RecordKey, reply: mpsc::Sender<Provider>) {
        if let Some(reply) = self.lookups.join(&key, reply) {
            if !self.lookups.may_start() {
                tracing::debug!("too many lookups at once; answering this one with no providers");
                return; // dropping `reply` ends the lookup empty
            }
            let id = self.kad().get_providers(key.clone());
            self.lookups.start(id, key, reply);
        }
    }

    fn on_providers(&mut self, id: QueryId, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let swarm = &self.swarm;
        let liveness = &self.liveness;
        let is_down = |p: &PeerId| !swarm.is_connected(p) && liveness.is_down(p);
        let to_dial = self
            .lookups
            .found(id, providers, local, is_down, &self.book);
        for peer in to_dial {
            // Kademlia hands the swarm the addresses the query learned for this peer.
            if let Err(e) = self.swarm.dial(DialOpts::peer_id(peer).build()) {
                tracing::debug!(%peer, error = %e, "cannot dial a provider to learn its address");
                self.lookups.unreachable(peer);
            }
        }
        if self.lookups.has_enough(id)
            && let Some(mut query) = self.kad().query_mut(&id)
        {
            // Kademlia would go on asking every peer it was told of, the providers among them
            // (a peer naming 1,000 made-up providers would have them all dialed): stop it.
            query.finish();
        }
    }

    // ---- swarm events ----

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.metrics.libp2p.record(&event);
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Kad(e)) => {
                self.metrics.libp2p.record(&e);
                self.on_kad_event(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(e)) => {
                self.metrics.libp2p.record(&e);
                self.on_identify_event(e);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.on_ping(e),
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::debug!(%address, "router listening");
                self.listen_addrs.send_modify(|a| a.push(address));
            }
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                self.listen_addrs
                    .send_modify(|a| a.retain(|x| *x != address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => self.on_connected(peer_id, connection_id, &endpoint),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => self.on_dial_error(connection_id, peer_id, &error),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => self.on_closed(peer_id, connection_id, num_established, cause.as_ref()),
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(address = %send_back_addr, error = %error, "incoming connection failed");
                self.handshakes.incoming_failed(&send_back_addr, &error);
            }
            _ => {}
        }
    }

    fn on_connected(&mut self, peer: PeerId, connection: ConnectionId, endpoint: &ConnectedPoint) {
        let remote = endpoint.get_remote_address();
        self.book.opened(connection, remote.clone());
        self.handshakes.connected(remote, endpoint.is_dialer());
        if endpoint.is_dialer() {
            self.remember(peer, vec![remote.clone()]);
        }
        tracing::debug!(%peer, address = %remote, "connected");
        self.liveness.connected(peer);
        self.kad().store_mut().peer_back(&peer);
        self.on_dial_outcome(connection, DialOutcome::Connected(peer));
        self.lookups.resolved(peer, self.book.addrs(&peer));
        self.publish_counts();
    }

    fn on_dial_error(&mut self, connection: ConnectionId, peer: Option<PeerId>, error: &DialError) {
        self.handshakes.dial_failed(error);
        let outcome = match error {
            DialError::LocalPeerId { address } => {
                self.metrics.self_dial();
                tracing::debug!(%address, "a bootstrap address leads back to this node");
                DialOutcome::ItsMe
            }
            e => {
                tracing::debug!(peer = ?peer, error = %e, "dial failed");
                if let Some(peer) = peer {
                    self.liveness.failed(peer);
                }
                DialOutcome::Failed(DialFailure::from(e))
            }
        };
        self.on_dial_outcome(connection, outcome);
        if let Some(peer) = peer {
            self.lookups.unreachable(peer);
        }
    }

    fn on_closed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remaining: u32,
        cause: Option<&ConnectionError>,
    ) {
        self.book.closed(connection);
        tracing::debug!(%peer, remaining, cause = ?cause, "connection closed");
        if remaining == 0 {
            if cause.is_some() {
                self.liveness.failed(peer);
            }
            // Its records stay, hidden from lookups until it connects again.
            self.kad().store_mut().peer_gone(peer);
            let others = self.swarm.connected_peers().count();
            self.liveness
                .disconnected(peer, others, timing::unix_now_secs());
        }
        self.publish_counts();
    }

    fn on_kad_event(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => match result {
                QueryResult::GetProviders(Ok(GetProvidersOk::FoundProviders {
                    providers, ..
                })) => {
                    self.on_providers(id, providers);
                    if step.last {
                        self.lookups.finished(id);
                    }
                }
                QueryResult::GetProviders(_) => self.lookups.finished(id),
                QueryResult::StartProviding(result) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "publishing a provider record reached no peer");
                    }
                    if self.provide.finished(&id) {
                        self.publish_queued();
                    }
                }
                QueryResult::Bootstrap(Err(e)) => {
                    tracing::debug!(error = %e, "kademlia bootstrap query failed");
                }
                _ => {}
            },
            kad::Event::RoutingUpdated {
                peer, addresses, ..
            } => {
                self.remember(peer, addresses.into_vec());
                self.publish_counts();
            }
            _ => self.publish_counts(),
        }
    }

    /// A ping answered records the round trip; a ping unanswered within the timeout (a hung or
    /// partitioned peer: its connection stays open, nothing comes back) closes the connection
    /// and drops the peer from the routing table, so "connected" stays true.
    fn on_ping(&mut self, event: ping::Event) {
        self.metrics.libp2p.record(&event);
        match event.result {
            Ok(rtt) => self.metrics.rtt(rtt),
            // A node of an older Speil without ping (a rolling upgrade): nothing to check.
            Err(ping::Failure::Unsupported) => {
                tracing::debug!(peer = %event.peer, "peer does not answer pings: an older version");
            }
            Err(e) => {
                tracing::debug!(peer = %event.peer, error = %e, "peer did not answer a ping; disconnecting");
                self.liveness.failed(event.peer);
                self.swarm.close_connection(event.connection);
                self.kad().remove_peer(&event.peer);
                self.publish_counts();
            }
        }
    }

    fn on_identify_event(&mut self, event: identify::Event) {
        match &event {
            identify::Event::Sent { .. } => self.metrics.identify("inbound"),
            identify::Event::Received { .. } => self.metrics.identify("outbound"),
            _ => {}
        }
        let identify::Event::Received {
            peer_id,
            info,
            connection_id,
        } = event
        else {
            return;
        };
        let addrs = self.book.identified(connection_id, info.listen_addrs);
        tracing::debug!(peer = %peer_id, ?connection_id, ?addrs, "identified peer");
        if info.protocols.contains(&KAD_PROTOCOL) {
            for a in &addrs {
                self.kad().add_address(&peer_id, a.clone());
            }
        }
        self.remember(peer_id, addrs);
        self.lookups.resolved(peer_id, self.book.addrs(&peer_id));
        self.publish_counts();
    }

    /// Remembers `addrs` of `peer` in the book. The old addresses it forgets are counted and
    /// removed from Kademlia's routing table too, which keeps every address it is given: a peer
    /// announcing thousands would otherwise make each update cost more than the one before.
    fn remember(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        let forgotten = self.book.remember(peer, addrs);
        if forgotten.is_empty() {
            return;
        }
        self.metrics
            .limit_reached(Limit::ADDRESSES_PER_PEER, forgotten.len());
        for a in &forgotten {
            // Never its last one: the book keeps the newest, which Kademlia has too.
            self.kad().remove_address(&peer, a);
        }
    }

    fn routing_peers(&mut self) -> usize {
        self.kad().kbuckets().map(|b| b.num_entries()).sum()
    }

    fn publish_counts(&mut self) {
        let counts = Counts {
            connected: self.swarm.connected_peers().count(),
            routing: self.routing_peers(),
            last_lost: self.liveness.last_lost(),
        };
        self.metrics.peers(counts.connected, counts.routing);
        self.counts.send_if_modified(|c| {
            let changed = *c != counts;
            *c = counts;
            changed
        });
    }

    fn peers(&mut self) -> Vec<PeerInfo> {
        let mut routing = HashSet::new();
        for bucket in self.kad().kbuckets() {
            for entry in bucket.iter() {
                routing.insert(*entry.node.key.preimage());
            }
        }
        let connected: HashSet<PeerId> = self.swarm.connected_peers().copied().collect();
        let mut all: Vec<PeerId> = routing.union(&connected).copied().collect();
        all.sort();
        all.into_iter()
            .map(|p| PeerInfo {
                id: p.to_string(),
                addrs: self
                    .book
                    .addrs(&p)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                connected: connected.contains(&p),
                routing: routing.contains(&p),
            })
            .collect()
    }
}
