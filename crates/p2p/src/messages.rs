//! What the [`Router`](crate::Router) handle, the swarm task and the bootstrap controller send
//! each other: commands to the swarm task and their answers (providers, dial outcomes, peers),
//! and the peer counts the swarm task publishes. They live below all three so that each of them
//! depends on this module and none on another.

use libp2p::kad::RecordKey;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::DialError;
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::addr::tcp_multiaddr;
use crate::liveness::Lost;

/// Requests to the swarm task.
pub(crate) enum Command {
    /// Start (and keep) providing these keys.
    Provide(Vec<RecordKey>),
    /// As `Provide`, published before every key queued.
    ProvideFirst(Vec<RecordKey>),
    /// Stop providing these keys.
    Unprovide(Vec<RecordKey>),
    /// Publish every provided key again, for peers that joined since.
    ReprovideAll,
    /// Send the providers of `key` to `reply` as they are found; `reply` closes when done.
    Lookup {
        key: RecordKey,
        reply: mpsc::Sender<Provider>,
    },
    /// Dial these candidates; answer with one outcome per candidate, in order.
    Dial {
        candidates: Vec<Candidate>,
        reply: oneshot::Sender<Vec<DialOutcome>>,
    },
    /// The peers this node knows.
    Peers(oneshot::Sender<Vec<PeerInfo>>),
}

/// A node that holds a looked-up key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    /// Its peer id.
    pub peer: PeerId,
    /// Its router addresses; its registry is at the same IPs.
    pub addrs: Vec<Multiaddr>,
}

/// A node that might be another Speil node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Candidate {
    /// Its TCP address (without `/p2p/`).
    pub addr: Multiaddr,
    /// Its peer id when the source knows it; DNS candidates have none.
    pub peer: Option<PeerId>,
}

impl Candidate {
    /// A candidate at `ip:port` with no known peer id.
    pub fn at(addr: std::net::SocketAddr) -> Candidate {
        Candidate {
            addr: tcp_multiaddr(addr),
            peer: None,
        }
    }

    /// A candidate from a multiaddr that may end in `/p2p/<id>`.
    pub fn from_multiaddr(mut addr: Multiaddr) -> Candidate {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(id)) => {
                addr.pop();
                Some(id)
            }
            _ => None,
        };
        Candidate { addr, peer }
    }
}

/// What dialing one candidate led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DialOutcome {
    /// A connection to this peer is open.
    Connected(PeerId),
    /// The dial failed.
    Failed(DialFailure),
    /// The connection reached this node itself; the address is never dialed again.
    ItsMe,
}

/// Why a dial failed, in one line: round summaries (`/status`, log lines) show it after the
/// address, as `address: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DialFailure {
    /// The transport failed; the innermost cause, such as `Connection refused (os error 111)`.
    #[error("{0}")]
    Transport(String),
    /// The private network's handshake failed (`--p2p-psk-file`): says what it most likely is.
    #[error("{0}")]
    PrivateNetwork(crate::private_network::Failure),
    /// The transport failed without saying why.
    #[error("transport error")]
    TransportUnexplained,
    /// The address leads back to this node.
    #[error("this node itself")]
    ItsMe,
    /// Another peer than the one expected answered.
    #[error("answered as another peer ({0})")]
    WrongPeer(PeerId),
    /// There was no address to dial.
    #[error("no addresses")]
    NoAddresses,
    /// Any other refusal by libp2p, as libp2p words it.
    #[error("{0}")]
    Other(String),
    /// The swarm task did not answer within the round's time.
    #[error("no answer within {0:?}")]
    NoAnswer(std::time::Duration),
}

impl From<&DialError> for DialFailure {
    fn from(e: &DialError) -> Self {
        match e {
            DialError::Transport(errors) => {
                let private = errors
                    .iter()
                    .find_map(|(_, e)| crate::private_network::failure_of(e));
                if let Some(failure) = private {
                    return DialFailure::PrivateNetwork(failure);
                }
                errors
                    .first()
                    .map_or(DialFailure::TransportUnexplained, |(_, e)| {
                        let mut source: &dyn std::error::Error = e;
                        while let Some(next) = source.source() {
                            source = next;
                        }
                        DialFailure::Transport(source.to_string())
                    })
            }
            DialError::LocalPeerId { .. } => DialFailure::ItsMe,
            DialError::WrongPeerId { obtained, .. } => DialFailure::WrongPeer(*obtained),
            DialError::NoAddresses => DialFailure::NoAddresses,
            other => DialFailure::Other(other.to_string()),
        }
    }
}

/// A peer as the status shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PeerInfo {
    /// Its peer id.
    pub id: String,
    /// Its known addresses.
    pub addrs: Vec<String>,
    /// Whether a connection to it is open.
    pub connected: bool,
    /// Whether it is in the routing table.
    pub routing: bool,
}

/// Peer counts, published on every change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) connected: usize,
    pub(crate) routing: usize,
    /// The peer whose loss last left this node without connections.
    pub(crate) last_lost: Option<Lost>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_from_multiaddrs() {
        let id = PeerId::random();
        let c =
            Candidate::from_multiaddr(format!("/ip4/10.0.0.1/tcp/5001/p2p/{id}").parse().unwrap());
        assert_eq!(c.peer, Some(id));
        assert_eq!(c.addr.to_string(), "/ip4/10.0.0.1/tcp/5001");
        let c = Candidate::at("[::1]:5001".parse().unwrap());
        assert_eq!(c.addr.to_string(), "/ip6/::1/tcp/5001");
        assert_eq!(c.peer, None);
    }

    #[test]
    fn dial_failures_read_as_the_status_shows_them() {
        let id = PeerId::random();
        let shown = |e: &DialError| DialFailure::from(e).to_string();
        assert_eq!(shown(&DialError::NoAddresses), "no addresses");
        assert_eq!(
            shown(&DialError::LocalPeerId {
                address: "/ip4/127.0.0.1/tcp/1".parse().unwrap()
            }),
            "this node itself"
        );
        assert_eq!(
            shown(&DialError::WrongPeerId {
                obtained: id,
                address: "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            }),
            format!("answered as another peer ({id})")
        );
        assert_eq!(shown(&DialError::Transport(Vec::new())), "transport error");
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let transport = DialError::Transport(vec![(
            "/ip4/127.0.0.1/tcp/1".parse().unwrap(),
            libp2p::TransportError::Other(refused),
        )]);
        assert_eq!(shown(&transport), "refused");
        assert_eq!(
            DialFailure::NoAnswer(std::time::Duration::from_secs(5)).to_string(),
            "no answer within 5s"
        );
    }
}
