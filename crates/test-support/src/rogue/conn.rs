//! One connection of the rogue peer to a node: libp2p's own TCP transport, pnet with the test's
//! key (when there is one), noise and yamux, as a Speil node builds them, and then no swarm: a
//! task drives the yamux connection itself, hands every stream the node opens to `serve`, and
//! opens streams for the rogue on request. Without a swarm nothing limits what the rogue opens,
//! and nothing checks what it sends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;
use std::time::Duration;

use libp2p::core::muxing::{StreamMuxerBox, StreamMuxerExt as _, SubstreamBox};
use libp2p::core::transport::{Boxed, DialOpts, PortUse};
use libp2p::core::{Endpoint, Transport as _, upgrade};
use libp2p::identity::Keypair;
use libp2p::pnet::{PnetConfig, PreSharedKey};
use libp2p::{Multiaddr, PeerId, noise, tcp, yamux};
use multistream_select::{Negotiated, Version, dialer_select_proto};
use tokio::sync::{mpsc, oneshot};

use super::Shared;

/// How long a connection may take to be established (TCP, pnet, noise, yamux).
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a stream may take to be opened and its protocol agreed: long, because a node busy
/// with what the rogue sent earlier answers late (see `Rogue::announce_addresses`).
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

/// A request for a new outbound stream.
type StreamRequest = oneshot::Sender<std::io::Result<SubstreamBox>>;

/// Opens streams on one connection.
#[derive(Clone)]
pub(super) struct Opener {
    /// The connection's identity.
    pub(super) peer: PeerId,
    /// Which connection, to forget it once closed.
    pub(super) id: u64,
    requests: mpsc::Sender<StreamRequest>,
}

impl Opener {
    /// Opens a stream and agrees on `protocol` (multistream-select 1.0).
    pub(super) async fn open(&self, protocol: &str) -> std::io::Result<Negotiated<SubstreamBox>> {
        let closed = || std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let (tx, rx) = oneshot::channel();
        self.requests.send(tx).await.map_err(|_| closed())?;
        let negotiate = async {
            let stream = rx.await.map_err(|_| closed())??;
            let (_, stream) = dialer_select_proto(stream, [protocol], Version::V1)
                .await
                .map_err(std::io::Error::other)?;
            Ok(stream)
        };
        tokio::time::timeout(OPEN_TIMEOUT, negotiate)
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }
}

/// TCP (a new port per dial), pnet under `psk` when given, noise with `key`, yamux.
fn transport(key: &Keypair, psk: Option<PreSharedKey>) -> Boxed<(PeerId, StreamMuxerBox)> {
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true));
    let noise = noise::Config::new(key).expect("an ed25519 key signs noise's static key");
    let yamux = yamux::Config::default();
    match psk {
        None => tcp
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        Some(psk) => tcp
            .and_then(move |socket, _| PnetConfig::new(psk).handshake(socket))
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
    }
}

/// Connects to `addr` as `key`, and on success starts the connection's task and registers it
/// with `shared`. The error says why the node could not be reached or refused the handshake.
pub(super) async fn dial(
    shared: &Arc<Shared>,
    key: Arc<Keypair>,
    addr: Multiaddr,
) -> Result<PeerId, String> {
    let mut transport = transport(&key, shared.psk);
    let opts = DialOpts {
        role: Endpoint::Dialer,
        port_use: PortUse::New,
    };
    let dialing = transport.dial(addr, opts).map_err(|e| e.to_string());
    let result = match dialing {
        Ok(f) => match tokio::time::timeout(DIAL_TIMEOUT, f).await {
            Ok(r) => r.map_err(|e| format!("{e:?}")),
            Err(_) => Err("timed out".to_owned()),
        },
        Err(e) => Err(e),
    };
    let (remote, muxer) = match result {
        Ok(ok) => ok,
        Err(e) => {
            shared.counts.failed.fetch_add(1, Ordering::Relaxed);
            return Err(e);
        }
    };
    let (tx, rx) = mpsc::channel(16);
    let opener = Opener {
        peer: key.public().to_peer_id(),
        id: shared.counts.established.fetch_add(1, Ordering::Relaxed),
        requests: tx,
    };
    shared.counts.open.fetch_add(1, Ordering::Relaxed);
    shared.conns.lock().unwrap().push(opener.clone());
    let task = drive(muxer, rx, shared.clone(), key, opener.id);
    shared.tasks.spawn(task);
    Ok(remote)
}

/// What happened on a connection.
enum Event {
    Inbound(SubstreamBox),
    Outbound(SubstreamBox),
    Closed,
}

/// Drives one connection until the node closes it or the rogue stops: streams the node opens go
/// to `serve`, streams the rogue asks for are opened in order.
async fn drive(
    mut muxer: StreamMuxerBox,
    mut requests: mpsc::Receiver<StreamRequest>,
    shared: Arc<Shared>,
    key: Arc<Keypair>,
    id: u64,
) {
    let mut waiting: VecDeque<StreamRequest> = VecDeque::new();
    loop {
        let next = std::future::poll_fn(|cx| {
            // Yamux does its work (reading frames, answering window updates) in `poll`.
            loop {
                match muxer.poll_unpin(cx) {
                    Poll::Ready(Ok(_)) => {}
                    Poll::Ready(Err(_)) => return Poll::Ready(Event::Closed),
                    Poll::Pending => break,
                }
            }
            while let Poll::Ready(Some(r)) = requests.poll_recv(cx) {
                waiting.push_back(r);
            }
            if !waiting.is_empty()
                && let Poll::Ready(r) = muxer.poll_outbound_unpin(cx)
            {
                return Poll::Ready(match r {
                    Ok(s) => Event::Outbound(s),
                    Err(_) => Event::Closed,
                });
            }
            match muxer.poll_inbound_unpin(cx) {
                Poll::Ready(Ok(s)) => Poll::Ready(Event::Inbound(s)),
                Poll::Ready(Err(_)) => Poll::Ready(Event::Closed),
                Poll::Pending => Poll::Pending,
            }
        });
        let event = tokio::select! {
            () = shared.token.cancelled() => break,
            e = next => e,
        };
        match event {
            Event::Inbound(s) => {
                let serving = super::serve::inbound(s, shared.clone(), key.clone());
                shared.tasks.spawn(serving);
            }
            Event::Outbound(s) => {
                if let Some(r) = waiting.pop_front() {
                    let _ = r.send(Ok(s));
                }
            }
            Event::Closed => {
                shared.counts.closed_by_node.fetch_add(1, Ordering::Relaxed);
                break;
            }
        }
    }
    shared.counts.open.fetch_sub(1, Ordering::Relaxed);
    shared.conns.lock().unwrap().retain(|c| c.id != id);
}
