//! The bootstrap controller: runs discovery rounds, drops this node from the candidates, has the
//! swarm dial the rest, derives the bootstrap state, and logs by the log policy: one DEBUG line
//! per dial (in the swarm task), one WARN line per round in which every dial failed or discovery
//! failed (DEBUG during the first seconds of a node's life, when the other nodes of a rollout may
//! still be starting), one INFO line per state change, and one ERROR line when `isolated` or
//! `discovery_failed` has lasted longer than `--bootstrap-error-after`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use timing::{Backoff, unix_now_secs};

use super::dns::Resolver;
use super::self_filter::SelfFilter;
use super::source::{DiscoveryError, Source, SourceKind};
use super::state::{BootstrapStatus, Round, State};
use crate::config::Config;
use crate::messages::{Candidate, Command, Counts, DialFailure, DialOutcome};
use crate::metrics::Metrics;

/// Retry delays while not healthy: exponential from `BACKOFF_MIN` to `BACKOFF_MAX`, with jitter.
const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often a standalone node looks again: other nodes may have appeared (a headless service
/// lists pods only once they are ready).
const STANDALONE_REFRESH: Duration = Duration::from_secs(5);
/// How long the dials of one round may take.
const ROUND_TIMEOUT: Duration = Duration::from_secs(5);
/// Failures listed in a round summary.
const FAILURES_SHOWN: usize = 5;
/// While a node has run for less than this, a failed round is expected (nodes of a DaemonSet
/// start together, cluster DNS may lag) and logged at DEBUG; after it, at WARN.
const STARTUP_GRACE: Duration = Duration::from_secs(10);

enum Discovery {
    None,
    Dns(Box<Result<Resolver, DiscoveryError>>),
    Http(String, Box<super::http::HttpClient>),
    Static(Vec<Candidate>),
}

pub(crate) struct Controller {
    discovery: Discovery,
    kind: SourceKind,
    /// What discovery asks, for log lines.
    source: String,
    port: u16,
    filter: SelfFilter,
    listen: SocketAddr,
    advertised: Vec<SocketAddr>,
    swarm: mpsc::Sender<Command>,
    counts: watch::Receiver<Counts>,
    status: watch::Sender<BootstrapStatus>,
    metrics: Metrics,
    refresh: Duration,
    error_after: Duration,
    state: State,
    failing_since: Option<Instant>,
    error_logged: bool,
    backoff: Backoff,
    last_round: Option<Round>,
    started: Instant,
}

impl Controller {
    pub(crate) fn new(
        config: &Config,
        peer: PeerId,
        listen: SocketAddr,
        swarm: mpsc::Sender<Command>,
        counts: watch::Receiver<Counts>,
        status: watch::Sender<BootstrapStatus>,
        metrics: Metrics,
    ) -> Controller {
        let discovery = match &config.bootstrap {
            Source::None => Discovery::None,
            Source::Dns(dns) => Discovery::Dns(Box::new(Resolver::new(dns.clone()))),
            Source::Http { url } => Discovery::Http(url.clone(), Box::new(super::http::client())),
            Source::Static(addrs) => Discovery::Static(
                addrs
                    .iter()
                    .cloned()
                    .map(Candidate::from_multiaddr)
                    .collect(),
            ),
        };
        let filter = SelfFilter::new(
            peer,
            listen,
            &config.advertise,
            &SelfFilter::interface_ips(),
        );
        Controller {
            discovery,
            kind: config.bootstrap.kind(),
            source: config.bootstrap.describe(),
            port: listen.port(),
            filter,
            listen,
            advertised: config.advertise.clone(),
            swarm,
            counts,
            status,
            metrics,
            refresh: config.refresh_interval,
            error_after: config.error_after,
            state: State::Starting,
            failing_since: None,
            error_logged: false,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            last_round: None,
            started: Instant::now(),
        }
    }

    pub(crate) async fn run(mut self, shutdown: CancellationToken) {
        loop {
            // Interfaces can change (a pod's IP may come late): refresh what "self" is.
            if self.listen.ip().is_unspecified() {
                self.filter
                    .set_own(self.listen, &self.advertised, &SelfFilter::interface_ips());
            }
            let round = tokio::select! {
                r = self.round() => r,
                () = shutdown.cancelled() => return,
            };
            self.metrics.round(round.result());
            self.report_round(&round);
            self.last_round = Some(round);
            self.update_state();

            let delay = self.next_delay();
            let deadline = tokio::time::Instant::now() + delay;
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(deadline) => break,
                    () = shutdown.cancelled() => return,
                    r = self.counts.changed() => {
                        if r.is_err() {
                            return;
                        }
                        let was = self.state;
                        self.update_state();
                        // Lost every peer: look for them again now, not at the next refresh.
                        if was == State::Connected && self.state != State::Connected {
                            break;
                        }
                    }
                }
            }
        }
    }

    async fn discover(&self) -> Result<Vec<Candidate>, DiscoveryError> {
        match &self.discovery {
            Discovery::None => Ok(Vec::new()),
            Discovery::Dns(resolver) => match resolver.as_ref() {
                Ok(resolver) => resolver.candidates(self.port).await,
                Err(e) => Err(e.clone()),
            },
            Discovery::Http(url, client) => super::http::candidates(client, url).await,
            Discovery::Static(c) => Ok(c.clone()),
        }
    }

    /// One round: discover, drop self, dial the rest, summarise.
    async fn round(&mut self) -> Round {
        let mut round = Round::default();
        let candidates = match self.discover().await {
            Ok(c) => c,
            Err(e) => {
                round.discovery_error = Some(e.to_string());
                round.finished_unix = unix_now_secs();
                return round;
            }
        };
        round.candidates = candidates.len();
        let (own, others): (Vec<Candidate>, Vec<Candidate>) =
            candidates.into_iter().partition(|c| self.filter.is_self(c));
        round.self_dropped = own.len();
        self.metrics.candidates("self", own.len());
        for c in &own {
            tracing::debug!(address = %c.addr, "dropped bootstrap candidate: it is this node");
        }
        if !others.is_empty() {
            let (tx, rx) = oneshot::channel();
            let asked = self
                .swarm
                .send(Command::Dial {
                    candidates: others.clone(),
                    reply: tx,
                })
                .await
                .is_ok();
            let outcomes = if asked {
                tokio::time::timeout(ROUND_TIMEOUT, rx)
                    .await
                    .ok()
                    .and_then(Result::ok)
            } else {
                None
            };
            let outcomes = outcomes.unwrap_or_else(|| {
                vec![DialOutcome::Failed(DialFailure::NoAnswer(ROUND_TIMEOUT)); others.len()]
            });
            for (c, outcome) in others.iter().zip(outcomes) {
                match outcome {
                    DialOutcome::Connected(_) => round.connected += 1,
                    DialOutcome::Failed(reason) => {
                        round.failed += 1;
                        if round.failures.len() < FAILURES_SHOWN {
                            round.failures.push(format!("{}: {reason}", c.addr));
                        }
                    }
                    DialOutcome::ItsMe => {
                        // Reached this node after all (NAT, hairpin): never dial it again.
                        self.filter.learn(c.addr.clone());
                        round.self_dropped += 1;
                    }
                }
            }
            round.dialed = others.len();
        }
        round.finished_unix = unix_now_secs();
        round
    }

    fn report_round(&self, round: &Round) {
        let peers = self.counts.borrow().connected;
        let starting = self.started.elapsed() < STARTUP_GRACE;
        if let Some(error) = &round.discovery_error {
            if starting {
                tracing::debug!(source = self.kind.as_str(), %error, "peer discovery failed while starting; retrying");
            } else {
                tracing::warn!(
                    source = self.kind.as_str(),
                    %error,
                    peers,
                    "bootstrap round failed: peer discovery failed; retrying"
                );
            }
        } else if round.all_failed() && peers == 0 {
            if starting {
                tracing::debug!(
                    candidates = round.candidates,
                    failed = round.failed,
                    "no candidate node reachable yet; the others may still be starting"
                );
            } else {
                tracing::warn!(
                    source = self.kind.as_str(),
                    candidates = round.candidates,
                    self_dropped = round.self_dropped,
                    dialed = round.dialed,
                    failed = round.failed,
                    reasons = %round.failures.join("; "),
                    "bootstrap round failed: no candidate node could be reached; retrying"
                );
            }
        } else {
            tracing::debug!(
                source = self.kind.as_str(),
                candidates = round.candidates,
                self_dropped = round.self_dropped,
                dialed = round.dialed,
                connected = round.connected,
                failed = round.failed,
                "bootstrap round finished"
            );
        }
    }

    fn update_state(&mut self) {
        let counts = *self.counts.borrow();
        let listed = !matches!(self.discovery, Discovery::None);
        // A connection counts once identify has put the peer in the routing table: before that
        // the node cannot look anything up through it (a lookup right after "connected" would
        // find nothing), and the table alone does not count either, since it keeps dead peers.
        let live = if counts.routing > 0 {
            counts.connected
        } else {
            0
        };
        let mut next = State::from(live, self.last_round.as_ref(), listed);
        if next == State::Unlisted && self.started.elapsed() < STARTUP_GRACE {
            // The node's own record may not be in DNS yet (a pod that just got its IP).
            next = State::Starting;
        }
        if next != self.state {
            let was = self.state;
            self.state = next;
            self.metrics.set_state(next);
            self.status.send_modify(|s| {
                s.state = next;
                s.since_unix = unix_now_secs();
            });
            let r = self.last_round.clone().unwrap_or_default();
            if next == State::Unlisted {
                tracing::warn!(
                    from = was.as_str(),
                    to = next.as_str(),
                    source = self.kind.as_str(),
                    asked = %self.source,
                    "bootstrap state changed: peer discovery lists no node at all, not even this one; \
                     check the name (the headless Service's name and namespace, the cluster domain) \
                     and that the Service publishes not-ready addresses"
                );
            } else {
                tracing::info!(
                    from = was.as_str(),
                    to = next.as_str(),
                    peers = counts.connected,
                    routing_table = counts.routing,
                    last_lost = ?counts.last_lost.map(|l| l.peer.to_string()),
                    candidates = r.candidates,
                    self_dropped = r.self_dropped,
                    "bootstrap state changed"
                );
            }
            if next == State::Connected {
                // Peers that joined since may lack this node's records: publish them again.
                let _ = self.swarm.try_send(Command::ReprovideAll);
            }
            if next.is_ready() {
                self.backoff.reset();
            }
            if next.is_failing() {
                if !was.is_failing() {
                    self.failing_since = Some(Instant::now());
                    self.error_logged = false;
                }
            } else {
                self.failing_since = None;
            }
        }
        self.status
            .send_modify(|s| s.last_round.clone_from(&self.last_round));
        self.check_error();
    }

    fn check_error(&mut self) {
        let Some(since) = self.failing_since else {
            return;
        };
        if self.error_logged || since.elapsed() < self.error_after {
            return;
        }
        self.error_logged = true;
        let r = self.last_round.clone().unwrap_or_default();
        let key_failures = r.failures.iter().any(|f| f.contains("--p2p-psk-file"));
        let what_to_check = match self.state {
            State::DiscoveryFailed => match self.kind {
                SourceKind::Dns => {
                    "check --dns-bootstrap-domain, the headless service and cluster DNS"
                }
                SourceKind::Http => {
                    "check --http-bootstrap-url and that the bootstrap node serves /id"
                }
                SourceKind::None | SourceKind::Static => "check the bootstrap source",
            },
            _ if key_failures => {
                "check that every node has the same --p2p-psk-file (the private network's key)"
            }
            _ => {
                "check that other nodes run and that their --router-addr port is reachable from here"
            }
        };
        tracing::error!(
            state = self.state.as_str(),
            for_secs = since.elapsed().as_secs(),
            candidates = r.candidates,
            self_dropped = r.self_dropped,
            failed = r.failed,
            reasons = %r.failures.join("; "),
            discovery_error = r.discovery_error.as_deref().unwrap_or(""),
            "this node cannot reach any other node; {what_to_check}"
        );
    }

    fn next_delay(&mut self) -> Duration {
        match self.state {
            State::Connected => self.refresh,
            State::Standalone | State::Unlisted => self.refresh.min(STANDALONE_REFRESH),
            State::Starting | State::Isolated | State::DiscoveryFailed => self.backoff.next_delay(),
        }
    }
}
