//! The libp2p side of the router in one place: the network behaviour (Kademlia, identify,
//! ping, connection limits), the protocol names and versions Speil speaks, and the swarm built from them over the
//! transport in `transport.rs`. Speil nodes form their own DHT, apart from any other libp2p
//! network, so every protocol name here is Speil's own. libp2p runs each connection in a task of
//! its own; those tasks go on the router's task tracker, so shutdown waits for them (they end
//! once the swarm task drops the swarm).

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use libp2p::identity::Keypair;
use libp2p::swarm::{Executor, NetworkBehaviour};
use libp2p::{StreamProtocol, Swarm, connection_limits, identify, kad, ping};
use tokio_util::task::TaskTracker;

use super::records::ProviderStore;
use crate::config::{Config, Limits};
use crate::guard::AddressGuard;

/// The Kademlia protocol name.
pub(crate) const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/speil/kad/1.0.0");
/// The identify protocol version.
const IDENTIFY_PROTOCOL: &str = "/speil/id/1.0.0";
/// How long a Kademlia query (a lookup, a publication) may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The identify agent string: `speil/<version>`.
fn agent_version() -> String {
    format!("speil/{}", env!("CARGO_PKG_VERSION"))
}

/// What the swarm runs on every connection.
#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) kad: kad::Behaviour<ProviderStore>,
    pub(crate) identify: identify::Behaviour,
    /// Keeps "connected" true: a peer that stops answering is disconnected (see `on_ping`).
    pub(crate) ping: ping::Behaviour,
    /// Denies a connection over `--p2p-max-connections`, `-per-peer` or `-pending-connections`.
    limits: connection_limits::Behaviour,
}

/// libp2p's connection limits for `limits`.
fn connection_limits(limits: &Limits) -> connection_limits::ConnectionLimits {
    connection_limits::ConnectionLimits::default()
        .with_max_established(Some(limits.max_connections))
        .with_max_established_per_peer(Some(limits.max_connections_per_peer))
        .with_max_pending_incoming(Some(limits.max_pending_connections))
        .with_max_pending_outgoing(Some(limits.max_pending_connections))
}

impl Behaviour {
    fn new(key: &Keypair, config: &Config) -> Self {
        let peer_id = key.public().to_peer_id();
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config
            .set_query_timeout(QUERY_TIMEOUT)
            .set_provider_record_ttl(Some(config.provider_ttl))
            .set_provider_publication_interval(Some(config.provider_republish))
            // Speil stores no values in the DHT, only provider records.
            .set_record_ttl(None)
            .set_publication_interval(None)
            .set_replication_interval(None);
        let store = ProviderStore::new(peer_id);
        let mut kad = kad::Behaviour::with_config(peer_id, store, kad_config);
        kad.set_mode(Some(kad::Mode::Server));
        let identify = identify::Behaviour::new(
            identify::Config::new(IDENTIFY_PROTOCOL.into(), key.public())
                .with_agent_version(agent_version()),
        );
        let ping = ping::Behaviour::new(
            ping::Config::new()
                .with_interval(config.ping_interval)
                .with_timeout(config.ping_timeout),
        );
        Behaviour {
            kad,
            identify,
            ping,
            limits: connection_limits::Behaviour::new(connection_limits(&config.limits)),
        }
    }
}

/// Spawns libp2p's connection tasks on a task tracker.
struct Tracked(TaskTracker);

impl Executor for Tracked {
    fn exec(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        self.0.spawn(future);
    }
}

/// The swarm of a node with identity `key`: the transport of `transport.rs` (with the private
/// network when `config` has a key, dialing only what `guard` allows) and [`Behaviour`], its
/// connection tasks on `tasks`.
pub(crate) fn build(
    key: Keypair,
    config: &Config,
    guard: AddressGuard,
    tasks: &TaskTracker,
) -> Result<Swarm<Behaviour>, Box<dyn std::error::Error + Send + Sync>> {
    let swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(|key| {
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(crate::transport::build(
                key,
                config.private_network,
                guard,
            )?)
        })?
        .with_behaviour(|key| Behaviour::new(key, config))?
        // Connections between nodes stay open while pings are answered: "connected" is a live
        // connection, so it must not lapse because a quiet cluster had nothing to look up.
        // The configuration `with_tokio` starts from, with the tracker for tokio's executor.
        .with_swarm_config(|_| {
            libp2p::swarm::Config::with_executor(Tracked(tasks.clone()))
                .with_idle_connection_timeout(Duration::MAX)
        })
        .build();
    Ok(swarm)
}
