//! Verifying a mirrored blob while forwarding it: every chunk is hashed as it passes and sent
//! on at once, except the chunk holding the blob's last byte, which is held back until the
//! digest matches, so a client never holds a complete corrupt blob.
//!
//! Hashing runs inline, on the connection's task. Hashing on the blocking pool beside
//! forwarding was measured too (docs/benchmarks.md, "Mirror"): on two busy cores it cost 0.2 to
//! 0.3 CPU-s more per GiB and gained no throughput, since no core was free to overlap with.

use bytes::Bytes;

/// The blob does not match its digest.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Mismatch;

/// The chunks of one blob on their way to the client: each is sent on at once, except the one
/// that completes the blob, which waits until the whole blob is verified. (The length is known
/// from the headers, so no chunk before it needs to wait for the next to arrive: a transfer holds
/// no chunk of its own while the client is slow.)
pub(super) struct Relay {
    /// The digest and the hash of what passed so far; `None` when the answer cannot be checked
    /// (a range of the blob, or a tag).
    verifier: Option<(oci::Digest, oci::Hasher)>,
    /// The chunk holding the blob's last byte, held back until the blob is verified.
    last: Option<Bytes>,
}

impl Relay {
    /// A relay that verifies against `want`, or passes every chunk on unchecked when `None`.
    pub(super) fn new(want: Option<oci::Digest>) -> Relay {
        Relay {
            verifier: want.map(|d| {
                let hasher = d.hasher();
                (d, hasher)
            }),
            last: None,
        }
    }

    /// `chunk` arrived (the bytes right after the previous chunk, from whichever peer; `last`
    /// when it ends the blob): returns it to be sent now, or `None` when it is the last and must
    /// wait for [`Relay::finish`].
    pub(super) fn push(&mut self, chunk: Bytes, last: bool) -> Option<Bytes> {
        if let Some((_, hasher)) = self.verifier.as_mut() {
            hasher.update(&chunk);
        }
        if last {
            self.last = Some(chunk);
            None
        } else {
            Some(chunk)
        }
    }

    /// Every byte arrived: the held-back last chunk when the blob matches its digest (`None` for
    /// an empty blob), [`Mismatch`] when it does not (the chunk is dropped, never sent).
    pub(super) fn finish(&mut self) -> Result<Option<Bytes>, Mismatch> {
        let last = self.last.take();
        let verified = match self.verifier.take() {
            Some((want, hasher)) => hasher.finish() == want,
            None => true,
        };
        if verified { Ok(last) } else { Err(Mismatch) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(len: usize) -> (Vec<u8>, oci::Digest) {
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let digest = oci::Digest::sha256_of(&bytes);
        (bytes, digest)
    }

    /// Relays `bytes` in chunks of `size`; returns what reached the client and how it ended.
    fn relay(
        want: Option<oci::Digest>,
        bytes: &[u8],
        size: usize,
    ) -> (Vec<u8>, Result<(), Mismatch>) {
        let mut relay = Relay::new(want);
        let mut sent = Vec::new();
        let count = bytes.chunks(size).count();
        for (i, chunk) in bytes.chunks(size).enumerate() {
            if let Some(out) = relay.push(Bytes::copy_from_slice(chunk), i + 1 == count) {
                sent.extend_from_slice(&out);
            }
        }
        match relay.finish() {
            Ok(last) => {
                sent.extend_from_slice(&last.unwrap_or_default());
                (sent, Ok(()))
            }
            Err(Mismatch) => (sent, Err(Mismatch)),
        }
    }

    #[test]
    fn a_good_blob_passes_whole_in_any_chunking() {
        let (bytes, digest) = blob(3 * (1 << 20) + 12_345);
        for size in [1000, 64 * 1024, (1 << 20) + 1, bytes.len()] {
            let (sent, end) = relay(Some(digest.clone()), &bytes, size);
            assert_eq!(end, Ok(()), "chunks of {size}");
            assert!(sent == bytes, "chunks of {size}: the bytes sent differ");
        }
    }

    #[test]
    fn a_corrupt_byte_in_the_last_chunk_is_never_sent() {
        let (mut bytes, digest) = blob((1 << 20) + 100_000);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let size = 64 * 1024;
        let (sent, end) = relay(Some(digest), &bytes, size);
        assert_eq!(end, Err(Mismatch));
        // Everything but the last chunk went out; the last, which holds the corrupt byte, did not.
        let whole_chunks = bytes.len().div_ceil(size) - 1;
        assert_eq!(sent.len(), whole_chunks * size);
        assert!(sent == bytes[..sent.len()]);
    }

    #[test]
    fn a_corrupt_byte_anywhere_stops_the_last_chunk() {
        let (good, digest) = blob(200_000);
        for at in [0, 65_535, 65_536, 150_000] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x80;
            let (sent, end) = relay(Some(digest.clone()), &bytes, 65_536);
            assert_eq!(end, Err(Mismatch), "corrupt byte at {at}");
            assert!(
                sent.len() < bytes.len(),
                "corrupt byte at {at}: the whole blob was sent"
            );
        }
    }

    #[test]
    fn bytes_from_a_second_peer_are_verified_with_the_first() {
        // A resumed transfer pushes the second peer's bytes right after the first's: one hash
        // over both, so a corrupt byte from the peer that took over is caught too.
        let (bytes, digest) = blob(500_000);
        let (first, rest) = bytes.split_at(123_457);
        let resumed = |rest: Vec<u8>| {
            let mut chunks: Vec<Bytes> = first.chunks(10_000).map(Bytes::copy_from_slice).collect();
            chunks.extend(rest.chunks(70_000).map(Bytes::copy_from_slice));
            chunks
        };
        let mut relay = Relay::new(Some(digest.clone()));
        let chunks = resumed(rest.to_vec());
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            relay.push(chunk, i + 1 == count);
        }
        assert!(relay.finish().is_ok_and(|last| last.is_some()));

        let mut corrupt = rest.to_vec();
        corrupt[1] ^= 1;
        let mut relay = Relay::new(Some(digest));
        let chunks = resumed(corrupt);
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            relay.push(chunk, i + 1 == count);
        }
        assert_eq!(relay.finish(), Err(Mismatch));
    }

    #[test]
    fn unverified_answers_pass_unchanged_and_an_empty_blob_verifies() {
        let (bytes, _) = blob(100_000);
        let (sent, end) = relay(None, &bytes, 30_000);
        assert_eq!(end, Ok(()));
        assert!(sent == bytes);
        let (_, empty) = blob(0);
        let (sent, end) = relay(Some(empty), &[], 30_000);
        assert_eq!((sent.len(), end), (0, Ok(())));
    }
}
