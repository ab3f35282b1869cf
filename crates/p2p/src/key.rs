//! Content keys and their DHT keys.
//!
//! A content key is a digest (`sha256:…`) or a tag reference (`registry/repository:tag`). Its DHT
//! key is the binary CIDv1 (raw codec, sha2-256 multihash) over the content key's bytes: the scheme
//! Spegel uses, so keys are fixed-size and spread evenly over the key space.

use libp2p::kad::RecordKey;
use sha2::{Digest as _, Sha256};

/// CIDv1 version, raw codec (0x55), sha2-256 multihash code (0x12) and its 32-byte length.
const CID_PREFIX: [u8; 4] = [0x01, 0x55, 0x12, 0x20];

/// The DHT key of a content key.
pub fn dht_key(content_key: &str) -> RecordKey {
    let mut cid = Vec::with_capacity(CID_PREFIX.len() + 32);
    cid.extend_from_slice(&CID_PREFIX);
    cid.extend_from_slice(&Sha256::digest(content_key.as_bytes()));
    RecordKey::new(&cid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_cids_over_the_content_key() {
        let k = dht_key("example.com/team/app:1.0");
        assert_eq!(k.as_ref().len(), 36);
        assert_eq!(&k.as_ref()[..4], &CID_PREFIX);
        assert_eq!(k, dht_key("example.com/team/app:1.0"));
        assert_ne!(k, dht_key("example.com/team/app:1.1"));
        // The sha256 of "abc" is well known.
        assert_eq!(hex::encode(&dht_key("abc").as_ref()[4..8]), "ba7816bf");
    }
}
