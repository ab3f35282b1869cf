//! The one task that owns the libp2p swarm. Everything else talks to it through `Command`s on
//! a bounded channel; it answers over oneshot or bounded channels and publishes peer counts on a
//! watch channel.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::metrics::Recorder as _;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, DialError, NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, StreamProtocol, Swarm, identify, ping};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::addr::{is_loopback, socket_addr, without_peer_id};
use crate::liveness::Liveness;
use crate::messages::{Candidate, Command, Counts, DialOutcome, PeerInfo, Provider};
use crate::metrics::Metrics;

/// The Kademlia protocol name: Speil nodes form their own DHT, apart from any other libp2p network.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/speil/kad/1.0.0");
/// The identify protocol version.
pub(crate) const IDENTIFY_PROTOCOL: &str = "/speil/id/1.0.0";
/// How long a non-empty lookup result is reused for the same key.
const LOOKUP_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most lookup results cached at once.
const LOOKUP_CACHE_MAX: usize = 4096;
/// Most peers whose addresses are remembered.
const ADDRESS_BOOK_MAX: usize = 10_000;
/// Provider records being published at once. Each is a DHT query reaching up to 20 peers; a node
/// announcing thousands of keys at once held tens of MiB of transient buffers afterwards (see
/// docs/benchmarks.md), so announcements are queued and published this many at a time.
const PROVIDES_IN_FLIGHT: usize = 8;
const TICK: Duration = Duration::from_millis(100);

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) kad: kad::Behaviour<kad::store::MemoryStore>,
    pub(crate) identify: identify::Behaviour,
    /// Keeps "connected" true: a peer that stops answering is disconnected (see `on_ping`).
    pub(crate) ping: ping::Behaviour,
}

struct Lookup {
    key: RecordKey,
    subscribers: Vec<mpsc::Sender<Provider>>,
    found: Vec<Provider>,
    seen: HashSet<PeerId>,
    /// Providers found without a known address, being dialed to learn one.
    waiting: HashSet<PeerId>,
    finished: bool,
}

pub(crate) struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    metrics: Metrics,
    counts: watch::Sender<Counts>,
    listen_addrs: watch::Sender<Vec<Multiaddr>>,
    provided: HashSet<RecordKey>,
    provide_queue: VecDeque<RecordKey>,
    providing: HashSet<QueryId>,
    lookups: HashMap<QueryId, Lookup>,
    lookup_by_key: HashMap<RecordKey, QueryId>,
    cache: HashMap<RecordKey, (Instant, Vec<Provider>)>,
    rounds: HashMap<u64, Round>,
    dials: HashMap<ConnectionId, (u64, usize)>,
    next_round: u64,
    address_book: HashMap<PeerId, Vec<Multiaddr>>,
    /// The remote address of every open connection.
    connections: HashMap<ConnectionId, Multiaddr>,
    liveness: Liveness,
    store_full_warned: bool,
}

struct Round {
    outcomes: Vec<Option<DialOutcome>>,
    reply: Option<oneshot::Sender<Vec<DialOutcome>>>,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        metrics: Metrics,
        counts: watch::Sender<Counts>,
        listen_addrs: watch::Sender<Vec<Multiaddr>>,
        liveness: Liveness,
    ) -> Self {
        EventLoop {
            swarm,
            commands,
            metrics,
            counts,
            listen_addrs,
            provided: HashSet::new(),
            provide_queue: VecDeque::new(),
            providing: HashSet::new(),
            lookups: HashMap::new(),
            lookup_by_key: HashMap::new(),
            cache: HashMap::new(),
            rounds: HashMap::new(),
            dials: HashMap::new(),
            next_round: 0,
            address_book: HashMap::new(),
            connections: HashMap::new(),
            liveness,
            store_full_warned: false,
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

    fn kad(&mut self) -> &mut kad::Behaviour<kad::store::MemoryStore> {
        &mut self.swarm.behaviour_mut().kad
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Provide(keys) => {
                for key in keys {
                    if self.provided.insert(key.clone()) {
                        self.provide_queue.push_back(key);
                    }
                }
                // At once, not at the next tick: starting to provide also puts the record in
                // this node's own store, which is what a peer's lookup asks first.
                self.publish_queued();
            }
            Command::Unprovide(keys) => {
                for key in keys {
                    if self.provided.remove(&key) {
                        self.kad().stop_providing(&key);
                    }
                }
            }
            Command::ReprovideAll => {
                self.provide_queue = self.provided.iter().cloned().collect();
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
        let now = Instant::now();
        self.cache
            .retain(|_, (at, _)| now.duration_since(*at) < LOOKUP_CACHE_TTL);
        // Rounds whose caller stopped waiting need not be kept.
        self.rounds
            .retain(|_, r| r.reply.as_ref().is_some_and(|s| !s.is_closed()));
    }

    /// Starts publishing queued keys while fewer than [`PROVIDES_IN_FLIGHT`] are under way.
    fn publish_queued(&mut self) {
        while self.providing.len() < PROVIDES_IN_FLIGHT {
            let Some(key) = self.provide_queue.pop_front() else {
                break;
            };
            if !self.provided.contains(&key) {
                continue;
            }
            match self.kad().start_providing(key) {
                Ok(id) => {
                    self.providing.insert(id);
                }
                Err(e) => {
                    if !self.store_full_warned {
                        tracing::warn!(error = %e, "cannot advertise more content: provider store full");
                        self.store_full_warned = true;
                    }
                }
            }
        }
    }

    // ---- lookups ----

    fn lookup(&mut self, key: RecordKey, reply: mpsc::Sender<Provider>) {
        if let Some((_, providers)) = self.cache.get(&key) {
            for p in providers {
                let _ = reply.try_send(p.clone());
            }
            return;
        }
        if let Some(l) = self
            .lookup_by_key
            .get(&key)
            .and_then(|id| self.lookups.get_mut(id))
        {
            for p in &l.found {
                let _ = reply.try_send(p.clone());
            }
            l.subscribers.push(reply);
            return;
        }
        let id = self.kad().get_providers(key.clone());
        self.lookup_by_key.insert(key.clone(), id);
        self.lookups.insert(
            id,
            Lookup {
                key,
                subscribers: vec![reply],
                found: Vec::new(),
                seen: HashSet::new(),
                waiting: HashSet::new(),
                finished: false,
            },
        );
    }

    fn on_providers(&mut self, id: QueryId, providers: HashSet<PeerId>) {
        let local = *self.swarm.local_peer_id();
        let mut to_dial = Vec::new();
        let mut ready = Vec::new();
        {
            let Some(l) = self.lookups.get_mut(&id) else {
                return;
            };
            for peer in providers {
                if peer == local || !l.seen.insert(peer) {
                    continue;
                }
                if !self.swarm.is_connected(&peer) && self.liveness.is_down(&peer) {
                    tracing::debug!(%peer, "skipping a provider that stopped answering");
                    continue;
                }
                match self.address_book.get(&peer) {
                    Some(addrs) if !addrs.is_empty() => {
                        ready.push(Provider {
                            peer,
                            addrs: addrs.clone(),
                        });
                    }
                    _ => {
                        l.waiting.insert(peer);
                        to_dial.push(peer);
                    }
                }
            }
        }
        for p in ready {
            self.deliver(id, p);
        }
        for peer in to_dial {
            // Kademlia hands the swarm the addresses the query learned for this peer.
            if let Err(e) = self.swarm.dial(DialOpts::peer_id(peer).build()) {
                tracing::debug!(%peer, error = %e, "cannot dial a provider to learn its address");
                self.unwait(peer);
            }
        }
    }

    fn deliver(&mut self, id: QueryId, provider: Provider) {
        if let Some(l) = self.lookups.get_mut(&id) {
            l.subscribers
                .retain(|s| s.try_send(provider.clone()).is_ok() || !s.is_closed());
            l.found.push(provider);
        }
    }

    /// A provider whose address was being learned is now known: delivered to the lookups that
    /// wait for it.
    fn resolve_waiting(&mut self, peer: PeerId) {
        self.stop_waiting(peer, true);
    }

    /// A provider whose address was being learned cannot be reached: its lookups stop waiting.
    fn unwait(&mut self, peer: PeerId) {
        self.stop_waiting(peer, false);
    }

    fn stop_waiting(&mut self, peer: PeerId, deliver: bool) {
        let addrs = match deliver {
            true => self.address_book.get(&peer).cloned().unwrap_or_default(),
            false => Vec::new(),
        };
        let ids: Vec<QueryId> = self
            .lookups
            .iter()
            .filter(|(_, l)| l.waiting.contains(&peer))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(l) = self.lookups.get_mut(&id) {
                l.waiting.remove(&peer);
            }
            if !addrs.is_empty() {
                let provider = Provider {
                    peer,
                    addrs: addrs.clone(),
                };
                self.deliver(id, provider);
            }
            self.maybe_finish(id);
        }
    }

    fn maybe_finish(&mut self, id: QueryId) {
        let done = self
            .lookups
            .get(&id)
            .is_some_and(|l| l.finished && l.waiting.is_empty());
        if !done {
            return;
        }
        if let Some(l) = self.lookups.remove(&id) {
            self.lookup_by_key.remove(&l.key);
            if !l.found.is_empty() && self.cache.len() < LOOKUP_CACHE_MAX {
                self.cache.insert(l.key, (Instant::now(), l.found));
            }
            // Dropping the subscribers closes their channels: the lookup is over.
        }
    }

    // ---- bootstrap dials ----

    fn dial_round(&mut self, candidates: Vec<Candidate>, reply: oneshot::Sender<Vec<DialOutcome>>) {
        let round_id = self.next_round;
        self.next_round += 1;
        let mut outcomes = vec![None; candidates.len()];
        for (i, c) in candidates.into_iter().enumerate() {
            if let Some(peer) = self.connected_at(&c) {
                outcomes[i] = Some(DialOutcome::Connected(peer));
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
                    self.dials.insert(connection, (round_id, i));
                }
                Err(e) => {
                    self.metrics.candidate("failed");
                    tracing::debug!(address = %c.addr, error = %e, "bootstrap dial failed");
                    outcomes[i] = Some(DialOutcome::Failed(short_dial_error(&e)));
                }
            }
        }
        let round = Round {
            outcomes,
            reply: Some(reply),
        };
        self.rounds.insert(round_id, round);
        self.maybe_answer(round_id);
    }

    /// The peer already connected at `candidate`'s address, if any.
    fn connected_at(&self, candidate: &Candidate) -> Option<PeerId> {
        let peer = candidate.peer?;
        self.swarm.is_connected(&peer).then_some(peer).or_else(|| {
            self.address_book
                .iter()
                .find(|(p, addrs)| self.swarm.is_connected(p) && addrs.contains(&candidate.addr))
                .map(|(p, _)| *p)
        })
    }

    fn on_dial_outcome(&mut self, connection: ConnectionId, outcome: DialOutcome) {
        let Some((round_id, index)) = self.dials.remove(&connection) else {
            return;
        };
        let label = match &outcome {
            DialOutcome::Connected(_) => "connected",
            DialOutcome::Failed(_) => "failed",
            DialOutcome::ItsMe => "self_dial",
        };
        self.metrics.candidate(label);
        if let Some(round) = self.rounds.get_mut(&round_id) {
            round.outcomes[index] = Some(outcome);
        }
        self.maybe_answer(round_id);
    }

    fn maybe_answer(&mut self, round_id: u64) {
        let complete = self
            .rounds
            .get(&round_id)
            .is_some_and(|r| r.outcomes.iter().all(Option::is_some));
        if !complete {
            return;
        }
        if let Some(mut round) = self.rounds.remove(&round_id) {
            let outcomes: Vec<DialOutcome> = round.outcomes.into_iter().flatten().collect();
            if outcomes
                .iter()
                .any(|o| matches!(o, DialOutcome::Connected(_)))
            {
                // Fill the routing table from the new peers.
                let _ = self.kad().bootstrap();
            }
            if let Some(reply) = round.reply.take() {
                let _ = reply.send(outcomes);
            }
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
            } => {
                self.connections
                    .insert(connection_id, endpoint.get_remote_address().clone());
                if endpoint.is_dialer() {
                    self.remember(peer_id, vec![endpoint.get_remote_address().clone()]);
                }
                tracing::debug!(peer = %peer_id, address = %endpoint.get_remote_address(), "connected");
                self.liveness.connected(peer_id);
                self.on_dial_outcome(connection_id, DialOutcome::Connected(peer_id));
                self.resolve_waiting(peer_id);
                self.publish_counts();
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let outcome = match &error {
                    DialError::LocalPeerId { address } => {
                        self.metrics.self_dial();
                        tracing::debug!(%address, "a bootstrap address leads back to this node");
                        DialOutcome::ItsMe
                    }
                    e => {
                        tracing::debug!(peer = ?peer_id, error = %e, "dial failed");
                        if let Some(peer) = peer_id {
                            self.liveness.failed(peer);
                        }
                        DialOutcome::Failed(short_dial_error(e))
                    }
                };
                self.on_dial_outcome(connection_id, outcome);
                if let Some(peer) = peer_id {
                    self.unwait(peer);
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                cause,
                ..
            } => {
                self.connections.remove(&connection_id);
                tracing::debug!(peer = %peer_id, remaining = num_established, cause = ?cause, "connection closed");
                if num_established == 0 {
                    if cause.is_some() {
                        self.liveness.failed(peer_id);
                    }
                    let remaining = self.swarm.connected_peers().count();
                    self.liveness
                        .disconnected(peer_id, remaining, timing::unix_now_secs());
                }
                self.publish_counts();
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                ..
            } => {
                tracing::debug!(address = %send_back_addr, error = %error, "incoming connection failed");
            }
            _ => {}
        }
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
                        self.finish_lookup(id);
                    }
                }
                QueryResult::GetProviders(_) => self.finish_lookup(id),
                QueryResult::StartProviding(result) => {
                    if let Err(e) = result {
                        tracing::debug!(error = %e, "publishing a provider record reached no peer");
                    }
                    if self.providing.remove(&id) {
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

    fn finish_lookup(&mut self, id: QueryId) {
        if let Some(l) = self.lookups.get_mut(&id) {
            l.finished = true;
        }
        self.maybe_finish(id);
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
        if let identify::Event::Received {
            peer_id,
            info,
            connection_id,
        } = event
        {
            // A peer listening on all interfaces lists loopback addresses too; those lead back
            // to the dialer itself unless the peer is reached over loopback (nodes on 127.0.0.N
            // of one host, as in tests).
            let via_loopback = self
                .connections
                .get(&connection_id)
                .is_some_and(is_loopback);
            let addrs: Vec<Multiaddr> = info
                .listen_addrs
                .into_iter()
                .filter(|a| socket_addr(a).is_some())
                .filter(|a| via_loopback || !is_loopback(a))
                .collect();
            tracing::debug!(peer = %peer_id, ?connection_id, ?addrs, "identified peer");
            if info.protocols.contains(&KAD_PROTOCOL) {
                for a in &addrs {
                    self.kad().add_address(&peer_id, a.clone());
                }
            }
            if !addrs.is_empty() {
                self.remember(peer_id, addrs);
            }
            self.resolve_waiting(peer_id);
            self.publish_counts();
        }
    }

    fn remember(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.address_book.len() >= ADDRESS_BOOK_MAX
            && !self.address_book.contains_key(&peer)
            && let Some(k) = self.address_book.keys().next().copied()
        {
            self.address_book.remove(&k);
        }
        let entry = self.address_book.entry(peer).or_default();
        for a in addrs {
            let a = without_peer_id(a);
            if !entry.contains(&a) {
                entry.push(a);
            }
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
                    .address_book
                    .get(&p)
                    .map(|a| a.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                connected: connected.contains(&p),
                routing: routing.contains(&p),
            })
            .collect()
    }
}

/// A one-line reason for a dial failure, for round summaries.
fn short_dial_error(e: &DialError) -> String {
    match e {
        DialError::Transport(errors) => errors
            .first()
            .map(|(_, e)| {
                let mut source: &dyn std::error::Error = e;
                while let Some(next) = source.source() {
                    source = next;
                }
                source.to_string()
            })
            .unwrap_or_else(|| "transport error".into()),
        DialError::LocalPeerId { .. } => "this node itself".into(),
        DialError::WrongPeerId { obtained, .. } => format!("answered as another peer ({obtained})"),
        DialError::NoAddresses => "no addresses".into(),
        other => other.to_string(),
    }
}
