//! The router's transport: TCP, dialing every connection from a new local port, then (with
//! `--p2p-psk-file`) the private network's pnet layer, noise and yamux.
//!
//! libp2p reuses the listen port for outgoing connections by default: the dialing socket is
//! bound to `0.0.0.0:<listen port>`. For a remote on `127.0.0.1` the kernel then picks
//! `127.0.0.1:<port>` as the source, and a node on another loopback IP with the same router port
//! (the README's two nodes on one machine) connects to itself instead (noise fails with "input
//! error"). Speil needs no port reuse (it punches no NAT holes: peers learn each other's listen
//! addresses through identify), so every dial, Kademlia's included, gets a new port.
//!
//! Every dial also passes the address guard first (`guard.rs`): whoever asks for it (a bootstrap
//! round, Kademlia, a lookup), an address the guard refuses is never dialed; the dial fails at
//! once with the reason, which a bootstrap round reports as its failure.

use std::pin::Pin;
use std::task::{Context, Poll};

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::{
    Boxed, DialOpts, ListenerId, PortUse, Transport, TransportError, TransportEvent,
};
use libp2p::core::upgrade;
use libp2p::identity::Keypair;
use libp2p::{Multiaddr, PeerId, noise, tcp, yamux};

use crate::guard::AddressGuard;
use crate::private_network::{self, NetworkKey};

/// TCP with a new port per dial and none to an address `guard` refuses, the private network
/// under `key` when given (nothing of it otherwise), noise and yamux.
pub(crate) fn build(
    identity: &Keypair,
    key: Option<NetworkKey>,
    guard: AddressGuard,
) -> Result<Boxed<(PeerId, StreamMuxerBox)>, noise::Error> {
    let tcp = NewPortPerDial {
        inner: tcp::tokio::Transport::new(tcp::Config::default().nodelay(true)),
        guard,
    };
    let noise = noise::Config::new(identity)?;
    let yamux = yamux::Config::default();
    Ok(match key {
        None => tcp
            .upgrade(upgrade::Version::V1Lazy)
            .authenticate(noise)
            .multiplex(yamux)
            .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
            .boxed(),
        Some(key) => {
            let psk = key.psk();
            tcp.and_then(move |socket, _| private_network::handshake(psk, socket))
                .upgrade(upgrade::Version::V1Lazy)
                .authenticate(noise)
                .multiplex(yamux)
                .map(|(peer, muxer), _| (peer, StreamMuxerBox::new(muxer)))
                .boxed()
        }
    })
}

/// `T`, dialing with [`PortUse::New`] whatever the dialer asked for, and only addresses
/// `guard` allows.
pub(crate) struct NewPortPerDial<T> {
    inner: T,
    guard: AddressGuard,
}

impl<T: Transport<Error = std::io::Error> + Unpin> Transport for NewPortPerDial<T> {
    type Output = T::Output;
    type Error = T::Error;
    type ListenerUpgrade = T::ListenerUpgrade;
    type Dial = T::Dial;

    fn listen_on(
        &mut self,
        id: ListenerId,
        addr: Multiaddr,
    ) -> Result<(), TransportError<Self::Error>> {
        self.inner.listen_on(id, addr)
    }

    fn remove_listener(&mut self, id: ListenerId) -> bool {
        self.inner.remove_listener(id)
    }

    fn dial(
        &mut self,
        addr: Multiaddr,
        opts: DialOpts,
    ) -> Result<Self::Dial, TransportError<Self::Error>> {
        if let Err(reason) = self.guard.check(&addr) {
            return Err(TransportError::Other(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("refused by the address guard: {reason}"),
            )));
        }
        self.inner.dial(
            addr,
            DialOpts {
                port_use: PortUse::New,
                ..opts
            },
        )
    }

    fn poll(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<TransportEvent<Self::ListenerUpgrade, Self::Error>> {
        Pin::new(&mut self.get_mut().inner).poll(cx)
    }
}
