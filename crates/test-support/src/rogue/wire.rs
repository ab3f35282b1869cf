//! The bytes the rogue peer writes and reads, encoded here rather than through libp2p's
//! behaviours, so that it can send what a well-behaved node never would: provider records for
//! 100,000 keys on one stream, answers naming any peer at any address, identify messages of any
//! size. The messages are the protobuf definitions libp2p speaks (Kademlia's `dht.proto`,
//! identify's `structs.proto`), each framed by an unsigned varint length, as on the wire.

use futures::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use libp2p::{Multiaddr, PeerId};
use prost::Message as _;

/// The largest Kademlia message libp2p-kad 0.49 reads (its default `max_packet_size`, which
/// Speil does not change): a bigger answer fails the request that asked for it.
pub const KAD_MAX_MESSAGE: usize = 16 * 1024;
/// The largest identify message libp2p-identify 0.48 reads (`MAX_MESSAGE_SIZE_BYTES`): a bigger
/// one, pushed or answered, is dropped whole.
pub const IDENTIFY_MAX_MESSAGE: usize = 4096;

/// Kademlia message types (`Message.MessageType`).
pub(super) mod kind {
    pub(crate) const ADD_PROVIDER: i32 = 2;
    pub(crate) const GET_PROVIDERS: i32 = 3;
    pub(crate) const FIND_NODE: i32 = 4;
}

/// `dht.pb.Message`, the fields Speil's DHT uses (no records).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct KadMessage {
    #[prost(int32, tag = "1")]
    pub(super) r#type: i32,
    #[prost(int32, tag = "10")]
    pub(super) cluster_level_raw: i32,
    #[prost(bytes = "vec", tag = "2")]
    pub(super) key: Vec<u8>,
    #[prost(message, repeated, tag = "8")]
    pub(super) closer_peers: Vec<KadPeer>,
    #[prost(message, repeated, tag = "9")]
    pub(super) provider_peers: Vec<KadPeer>,
}

/// `dht.pb.Message.Peer`.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct KadPeer {
    #[prost(bytes = "vec", tag = "1")]
    pub(super) id: Vec<u8>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(super) addrs: Vec<Vec<u8>>,
    /// `ConnectionType`: 0 not connected, 1 connected.
    #[prost(int32, tag = "3")]
    pub(super) connection: i32,
}

impl KadPeer {
    pub(super) fn new(id: &PeerId, addrs: &[Multiaddr]) -> KadPeer {
        KadPeer {
            id: id.to_bytes(),
            addrs: addrs.iter().map(|a| a.to_vec()).collect(),
            connection: 0,
        }
    }

    /// The bytes this peer adds to a message it is repeated in (tag, length and body).
    pub(super) fn framed_len(&self) -> usize {
        let len = self.encoded_len();
        1 + prost::length_delimiter_len(len) + len
    }
}

/// `structs.Identify` (identify and identify push).
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Identify {
    #[prost(string, optional, tag = "5")]
    pub(super) protocol_version: Option<String>,
    #[prost(string, optional, tag = "6")]
    pub(super) agent_version: Option<String>,
    #[prost(bytes = "vec", optional, tag = "1")]
    pub(super) public_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub(super) listen_addrs: Vec<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    pub(super) observed_addr: Option<Vec<u8>>,
    #[prost(string, repeated, tag = "3")]
    pub(super) protocols: Vec<String>,
}

/// `message` with its varint length in front.
pub(super) fn frame(message: &impl prost::Message) -> Vec<u8> {
    message.encode_length_delimited_to_vec()
}

/// Writes `message` framed and flushes.
pub(super) async fn write<S: AsyncWrite + Unpin>(
    stream: &mut S,
    message: &impl prost::Message,
) -> std::io::Result<()> {
    stream.write_all(&frame(message)).await?;
    stream.flush().await
}

/// Reads one framed message of at most `max` bytes; `None` at a clean end of the stream.
pub(super) async fn read<S: AsyncRead + Unpin, M: prost::Message + Default>(
    stream: &mut S,
    max: usize,
) -> std::io::Result<Option<M>> {
    let mut len: u64 = 0;
    for i in 0..10 {
        let mut b = [0u8; 1];
        if stream.read(&mut b).await? == 0 {
            if i == 0 {
                return Ok(None);
            }
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        len |= u64::from(b[0] & 0x7f) << (7 * i);
        if b[0] & 0x80 == 0 {
            break;
        }
    }
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a message of {len} bytes, more than {max}"),
        ));
    }
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    M::decode(buf.as_slice())
        .map(Some)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_peer_is_as_long_as_its_share_of_a_message() {
        let peer = KadPeer::new(
            &PeerId::random(),
            &["/ip4/169.254.169.254/tcp/80".parse().unwrap()],
        );
        let one = KadMessage {
            provider_peers: vec![peer.clone()],
            ..Default::default()
        };
        let two = KadMessage {
            provider_peers: vec![peer.clone(), peer.clone()],
            ..Default::default()
        };
        assert_eq!(two.encoded_len() - one.encoded_len(), peer.framed_len());
    }

    #[tokio::test]
    async fn frames_read_back() {
        let msg = KadMessage {
            r#type: kind::GET_PROVIDERS,
            key: vec![1, 2, 3],
            ..Default::default()
        };
        let mut bytes = futures::io::Cursor::new(frame(&msg).repeat(2));
        for _ in 0..2 {
            let back: KadMessage = read(&mut bytes, 100).await.unwrap().unwrap();
            assert_eq!(back, msg);
        }
        assert!(
            read::<_, KadMessage>(&mut bytes, 100)
                .await
                .unwrap()
                .is_none()
        );
        let mut big = futures::io::Cursor::new(frame(&msg));
        assert!(read::<_, KadMessage>(&mut big, 3).await.is_err());
    }
}
