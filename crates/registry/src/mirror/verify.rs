//! Verifying a mirrored blob beside forwarding it. SHA-256 is the largest cost of the mirror
//! path (about half of the forwarding node's CPU per byte), so it runs on the blocking pool, in
//! order, while the connection's task sends the chunk on and receives the next: where a core is
//! free, hashing and forwarding overlap instead of adding up. What must not change is the
//! guarantee: the last chunk is held back until every byte before and in it has been hashed and
//! the digest matches, so a client never holds a complete corrupt blob.

use std::mem;

use bytes::Bytes;
use tokio::task::JoinHandle;

/// How many received bytes may wait for a hashing job still running before the transfer waits
/// for it: enough to ride out a slow moment of the pool, small against a transfer's buffers.
const QUEUE_LIMIT: usize = 1024 * 1024;

/// Hashes chunks in order on the blocking pool: at most one job at a time per blob, each taking
/// every chunk that arrived while the previous job ran.
pub(super) struct Verifier {
    want: oci::Digest,
    /// The hasher while no job holds it; `None` after a job was lost (the runtime shutting down).
    hasher: Option<oci::Hasher>,
    job: Option<JoinHandle<oci::Hasher>>,
    /// Chunks received and not yet handed to a job, in order.
    queued: Vec<Bytes>,
    queued_len: usize,
}

impl Verifier {
    /// A verifier of a blob that must hash to `want`.
    pub(super) fn new(want: oci::Digest) -> Verifier {
        Verifier {
            hasher: Some(want.hasher()),
            want,
            job: None,
            queued: Vec::new(),
            queued_len: 0,
        }
    }

    /// Hands `chunk` on to be hashed. Waits only when the job under way is still running and
    /// [`QUEUE_LIMIT`] bytes are queued behind it, so the hasher bounds what a transfer holds.
    pub(super) async fn push(&mut self, chunk: Bytes) {
        self.queued_len += chunk.len();
        self.queued.push(chunk);
        let running = self.job.as_ref().is_some_and(|j| !j.is_finished());
        if running && self.queued_len < QUEUE_LIMIT {
            return;
        }
        self.join().await;
        self.start();
    }

    /// Every byte of the blob was pushed: whether they hash to the digest.
    pub(super) async fn matches(mut self) -> bool {
        self.join().await;
        self.start();
        self.join().await;
        self.hasher.is_some_and(|h| h.finish() == self.want)
    }

    /// Waits for the job under way, if any, and takes its hasher back.
    async fn join(&mut self) {
        if let Some(job) = self.job.take() {
            self.hasher = job.await.ok();
        }
    }

    /// Hands the queued chunks to a new job (none runs now).
    fn start(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        let Some(mut hasher) = self.hasher.take() else {
            // A job was lost: the blob can no longer be verified; `matches` says so.
            self.queued.clear();
            return;
        };
        let chunks = mem::take(&mut self.queued);
        self.queued_len = 0;
        self.job = Some(tokio::task::spawn_blocking(move || {
            for chunk in &chunks {
                hasher.update(chunk);
            }
            hasher
        }));
    }
}

/// The blob does not match its digest.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Mismatch;

/// The chunks of one blob on their way to the client: each is sent on at once, except the one
/// that completes the blob, which waits until the whole blob is verified. (The length is known
/// from the headers, so no chunk before it needs to wait for the next to arrive: a transfer holds
/// no chunk of its own while the client is slow.)
pub(super) struct Relay {
    /// `None` when the answer cannot be checked (a range of the blob, or a tag).
    verifier: Option<Verifier>,
    /// The chunk holding the blob's last byte, held back until the blob is verified.
    last: Option<Bytes>,
}

impl Relay {
    /// A relay that verifies against `want`, or passes every chunk on unchecked when `None`.
    pub(super) fn new(want: Option<oci::Digest>) -> Relay {
        Relay {
            verifier: want.map(Verifier::new),
            last: None,
        }
    }

    /// `chunk` arrived (the bytes right after the previous chunk, from whichever peer; `last`
    /// when it ends the blob): returns it to be sent now, or `None` when it is the last and must
    /// wait for [`Relay::finish`].
    pub(super) async fn push(&mut self, chunk: Bytes, last: bool) -> Option<Bytes> {
        if let Some(v) = self.verifier.as_mut() {
            v.push(chunk.clone()).await;
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
    pub(super) async fn finish(&mut self) -> Result<Option<Bytes>, Mismatch> {
        let last = self.last.take();
        let verified = match self.verifier.take() {
            Some(v) => v.matches().await,
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
    async fn relay(
        want: Option<oci::Digest>,
        bytes: &[u8],
        size: usize,
    ) -> (Vec<u8>, Result<(), Mismatch>) {
        let mut relay = Relay::new(want);
        let mut sent = Vec::new();
        let count = bytes.chunks(size).count();
        for (i, chunk) in bytes.chunks(size).enumerate() {
            if let Some(out) = relay
                .push(Bytes::copy_from_slice(chunk), i + 1 == count)
                .await
            {
                sent.extend_from_slice(&out);
            }
        }
        match relay.finish().await {
            Ok(last) => {
                sent.extend_from_slice(&last.unwrap_or_default());
                (sent, Ok(()))
            }
            Err(Mismatch) => (sent, Err(Mismatch)),
        }
    }

    #[tokio::test]
    async fn a_good_blob_passes_whole_in_any_chunking() {
        let (bytes, digest) = blob(3 * QUEUE_LIMIT + 12_345);
        for size in [1000, 64 * 1024, QUEUE_LIMIT + 1, bytes.len()] {
            let (sent, end) = relay(Some(digest.clone()), &bytes, size).await;
            assert_eq!(end, Ok(()), "chunks of {size}");
            assert!(sent == bytes, "chunks of {size}: the bytes sent differ");
        }
    }

    #[tokio::test]
    async fn a_corrupt_byte_in_the_last_chunk_is_never_sent() {
        let (mut bytes, digest) = blob(QUEUE_LIMIT + 100_000);
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let size = 64 * 1024;
        let (sent, end) = relay(Some(digest), &bytes, size).await;
        assert_eq!(end, Err(Mismatch));
        // Everything but the last chunk went out; the last, which holds the corrupt byte, did not.
        let whole_chunks = bytes.len().div_ceil(size) - 1;
        assert_eq!(sent.len(), whole_chunks * size);
        assert!(sent == bytes[..sent.len()]);
    }

    #[tokio::test]
    async fn a_corrupt_byte_anywhere_stops_the_last_chunk() {
        let (good, digest) = blob(200_000);
        for at in [0, 65_535, 65_536, 150_000] {
            let mut bytes = good.clone();
            bytes[at] ^= 0x80;
            let (sent, end) = relay(Some(digest.clone()), &bytes, 65_536).await;
            assert_eq!(end, Err(Mismatch), "corrupt byte at {at}");
            assert!(
                sent.len() < bytes.len(),
                "corrupt byte at {at}: the whole blob was sent"
            );
        }
    }

    #[tokio::test]
    async fn bytes_from_a_second_peer_are_verified_with_the_first() {
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
            relay.push(chunk, i + 1 == count).await;
        }
        assert!(relay.finish().await.is_ok_and(|last| last.is_some()));

        let mut corrupt = rest.to_vec();
        corrupt[1] ^= 1;
        let mut relay = Relay::new(Some(digest));
        let chunks = resumed(corrupt);
        let count = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            relay.push(chunk, i + 1 == count).await;
        }
        assert_eq!(relay.finish().await, Err(Mismatch));
    }

    #[tokio::test]
    async fn unverified_answers_pass_unchanged_and_an_empty_blob_verifies() {
        let (bytes, _) = blob(100_000);
        let (sent, end) = relay(None, &bytes, 30_000).await;
        assert_eq!(end, Ok(()));
        assert!(sent == bytes);
        let (_, empty) = blob(0);
        let (sent, end) = relay(Some(empty), &[], 30_000).await;
        assert_eq!((sent.len(), end), (0, Ok(())));
    }
}
