//! The handle the rest of Speil holds: advertise and withdraw content keys, look up who provides
//! a key, and read the node's P2P status. Starting the router spawns the swarm task, the
//! bootstrap controller and, when configured, the HTTP bootstrap endpoint.

use std::net::SocketAddr;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::kad::RecordKey;
use libp2p::{Multiaddr, PeerId, Swarm};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::addr::{socket_addr, tcp_multiaddr};
use crate::bootstrap::controller::Controller;
use crate::bootstrap::source::SourceKind;
use crate::bootstrap::state::{BootstrapStatus, NotReady, Round, State};
use crate::config::Config;
use crate::guard::AddressGuard;
use crate::key::dht_key;
use crate::messages::{Command, Counts, PeerInfo, Provider};
use crate::metrics::Metrics;
use crate::swarm::EventLoop;
use crate::swarm::behaviour::{self, Behaviour};

/// Commands that may wait for the swarm task before callers feel back-pressure.
const COMMAND_BUFFER: usize = 1024;
/// Providers a lookup may have found before its reader takes them.
const LOOKUP_BUFFER: usize = 32;

/// This node's P2P status, for readiness, `/status` and `speil status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The peer id.
    pub peer_id: String,
    /// The addresses the router listens on.
    pub listen_addrs: Vec<String>,
    /// The bootstrap source kind: none, dns, http or static.
    pub bootstrap_kind: &'static str,
    /// What the source asks, such as `speil.speil.svc.cluster.local (nameserver: system
    /// resolver)`.
    pub bootstrap_source: String,
    /// The bootstrap state.
    pub state: State,
    /// When the state was entered, in seconds since the Unix epoch.
    pub state_since_unix: u64,
    /// The last bootstrap round, once one has finished.
    pub last_round: Option<Round>,
    /// Peers with an open connection.
    pub connected_peers: usize,
    /// Peers in the routing table.
    pub routing_table_peers: usize,
    /// While no peer is connected, since when (the loss of the last one), in seconds since the
    /// Unix epoch; `None` while connected or when no peer was ever connected.
    pub alone_since_unix: Option<u64>,
    /// The peer whose loss last left this node without connections.
    pub last_lost_peer: Option<String>,
    /// Whether the node runs a private network (`--p2p-psk-file`); never the key.
    pub private_network: bool,
}

/// The P2P router's handle. Cheap to clone.
#[derive(Clone)]
pub struct Router {
    commands: mpsc::Sender<Command>,
    peer_id: PeerId,
    bootstrap_kind: SourceKind,
    bootstrap_source: String,
    bootstrap: watch::Receiver<BootstrapStatus>,
    counts: watch::Receiver<Counts>,
    listen_addrs: watch::Receiver<Vec<Multiaddr>>,
    private_network: bool,
}

impl Router {
    /// Starts the router with identity `key`: binds `config.listen` (and
    /// `config.http_bootstrap_addr`, when set), failing at once if it cannot, then runs until
    /// `shutdown`, its tasks tracked by `tasks`.
    pub async fn start(
        config: Config,
        key: Keypair,
        metrics: Metrics,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> std::io::Result<Router> {
        let peer_id = key.public().to_peer_id();
        let own: Vec<SocketAddr> = std::iter::once(config.listen)
            .chain(config.advertise.iter().copied())
            .collect();
        let guard = AddressGuard::new(&config.peer_cidrs, &own, Some(metrics.clone()));
        let (swarm, listen_addrs, bound) = listen(key, &config, guard.clone(), tasks).await?;
        let (commands_tx, commands_rx) = mpsc::channel(COMMAND_BUFFER);
        let (counts_tx, counts_rx) = watch::channel(Counts::default());
        let (listen_tx, listen_rx) = watch::channel(listen_addrs);
        let (bootstrap_tx, bootstrap_rx) = watch::channel(BootstrapStatus {
            state: State::Starting,
            since_unix: timing::unix_now_secs(),
            last_round: None,
        });

        let event_loop = EventLoop::new(
            swarm,
            commands_rx,
            metrics.clone(),
            counts_tx,
            listen_tx,
            &config,
            guard,
        );
        tasks.spawn(event_loop.run(shutdown.child_token()));

        if let Some(addr) = config.http_bootstrap_addr {
            let addrs = listen_rx.clone();
            crate::bootstrap::http::start(addr, peer_id, addrs, tasks, shutdown.child_token())
                .await?;
        }

        let controller = Controller::new(
            &config,
            peer_id,
            bound,
            commands_tx.clone(),
            counts_rx.clone(),
            bootstrap_tx,
            metrics,
        );
        tasks.spawn(controller.run(shutdown.child_token()));

        Ok(Router {
            commands: commands_tx,
            peer_id,
            bootstrap_kind: config.bootstrap.kind(),
            bootstrap_source: config.bootstrap.describe(),
            bootstrap: bootstrap_rx,
            counts: counts_rx,
            listen_addrs: listen_rx,
            private_network: config.private_network.is_some(),
        })
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// Advertises `content_keys` (digests, tag references) until they are withdrawn; records
    /// are republished before they expire.
    pub async fn advertise(&self, content_keys: &[String]) {
        let keys: Vec<RecordKey> = content_keys.iter().map(|k| dht_key(k)).collect();
        let _ = self.commands.send(Command::Provide(keys)).await;
    }

    /// As [`Router::advertise`], published before every key waiting to be: for keys other
    /// nodes must see within moments (claims of downloads under way).
    pub async fn advertise_first(&self, content_keys: &[String]) {
        let keys: Vec<RecordKey> = content_keys.iter().map(|k| dht_key(k)).collect();
        let _ = self.commands.send(Command::ProvideFirst(keys)).await;
    }

    /// Stops advertising `content_keys`.
    pub async fn withdraw(&self, content_keys: &[String]) {
        let keys: Vec<RecordKey> = content_keys.iter().map(|k| dht_key(k)).collect();
        let _ = self.commands.send(Command::Unprovide(keys)).await;
    }

    /// The other nodes that provide `content_key`, as they are found; the channel closes when
    /// the lookup is over. Never yields this node. Concurrent lookups of one key share one DHT
    /// query, and results are reused for a few seconds.
    pub async fn lookup(&self, content_key: &str) -> mpsc::Receiver<Provider> {
        let (tx, rx) = mpsc::channel(LOOKUP_BUFFER);
        let _ = self
            .commands
            .send(Command::Lookup {
                key: dht_key(content_key),
                reply: tx,
            })
            .await;
        rx
    }

    /// The node's P2P status now.
    pub fn status(&self) -> Status {
        let b = self.bootstrap.borrow().clone();
        let c = *self.counts.borrow();
        Status {
            peer_id: self.peer_id.to_string(),
            listen_addrs: self
                .listen_addrs
                .borrow()
                .iter()
                .map(ToString::to_string)
                .collect(),
            bootstrap_kind: self.bootstrap_kind.as_str(),
            bootstrap_source: self.bootstrap_source.clone(),
            state: b.state,
            state_since_unix: b.since_unix,
            last_round: b.last_round,
            connected_peers: c.connected,
            routing_table_peers: c.routing,
            alone_since_unix: c.last_lost.filter(|_| c.connected == 0).map(|l| l.unix),
            last_lost_peer: c.last_lost.map(|l| l.peer.to_string()),
            private_network: self.private_network,
        }
    }

    /// The peers this node knows, connected or in the routing table.
    pub async fn peers(&self) -> Vec<PeerInfo> {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Peers(tx)).await.is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Whether the node should receive traffic: its state is `connected` or `standalone`.
    pub fn ready(&self) -> Result<(), NotReady> {
        self.bootstrap.borrow().state.ready()
    }
}

/// Builds the swarm (its connection tasks on `tasks`) and has it listen on `config.listen`. Returns it with its first listen
/// addresses and the socket address it bound (the port chosen when `config.listen` asked for
/// port 0).
async fn listen(
    key: Keypair,
    config: &Config,
    guard: AddressGuard,
    tasks: &TaskTracker,
) -> std::io::Result<(Swarm<Behaviour>, Vec<Multiaddr>, SocketAddr)> {
    refuse_taken_port(config.listen)?;
    let mut swarm = behaviour::build(key, config, guard, tasks).map_err(std::io::Error::other)?;
    swarm
        .listen_on(tcp_multiaddr(config.listen))
        .map_err(|e| std::io::Error::other(format!("--router-addr {}: {e}", config.listen)))?;
    // Listening is reported as an event; wait for it so a port that is taken fails here.
    let listen_addrs = first_listen_addrs(&mut swarm, config.listen).await?;
    let bound_port = socket_addr(&listen_addrs[0]).map_or(config.listen.port(), |a| a.port());
    let bound = SocketAddr::new(config.listen.ip(), bound_port);
    Ok((swarm, listen_addrs, bound))
}

/// Fails when another process listens on `listen` already. libp2p's TCP transport binds its
/// listeners with SO_REUSEPORT, so a second node on the same port would start, share the port
/// with the first and split their traffic; a plain bind (without SO_REUSEPORT) is refused
/// while any socket listens there. The probe is closed before libp2p binds.
fn refuse_taken_port(listen: SocketAddr) -> std::io::Result<()> {
    if listen.port() == 0 {
        return Ok(());
    }
    std::net::TcpListener::bind(listen)
        .map(drop)
        .map_err(|e| std::io::Error::new(e.kind(), format!("--router-addr {listen}: {e}")))
}

/// Waits until the swarm reports its listen addresses (or fails to listen).
async fn first_listen_addrs(
    swarm: &mut Swarm<Behaviour>,
    listen: SocketAddr,
) -> std::io::Result<Vec<Multiaddr>> {
    use futures::StreamExt as _;
    let mut addrs = Vec::new();
    let deadline = tokio::time::sleep(Duration::from_secs(5));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            event = swarm.select_next_some() => match event {
                libp2p::swarm::SwarmEvent::NewListenAddr { address, .. } => {
                    addrs.push(address);
                    // An unspecified address reports one address per interface; take what came
                    // in the first moment.
                    if !listen.ip().is_unspecified() {
                        return Ok(addrs);
                    }
                    deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_millis(50));
                }
                libp2p::swarm::SwarmEvent::ListenerError { error, .. }
                | libp2p::swarm::SwarmEvent::ListenerClosed { reason: Err(error), .. } => {
                    return Err(std::io::Error::new(error.kind(), format!("--router-addr {listen}: {error}")));
                }
                _ => {}
            },
            () = &mut deadline => {
                return if addrs.is_empty() {
                    Err(std::io::Error::other(format!("--router-addr {listen}: not listening after 5 s")))
                } else {
                    Ok(addrs)
                };
            }
        }
    }
}
