//! Streaming a blob from peers to the client: every byte hashed (beside forwarding, see
//! `verify.rs`), the last chunk held back until the whole blob is verified (so a client never
//! holds a complete corrupt blob), and a peer that fails mid-way replaced by another that
//! continues from the first byte not yet received.

use std::collections::VecDeque;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use p2p::Provider;
use tokio::sync::mpsc;

use super::fetch::{BlobHead, build};
use super::race::Won;
use super::request::PeerRequest;
use super::shared::{BODY_IDLE_TIMEOUT, Failure, Inner, source_header};
use super::verify::Relay;
use crate::error::ApiError;

/// How long to wait for the lookup to name another provider when resuming.
const RESUME_LOOKUP_WAIT: Duration = Duration::from_millis(200);

/// Which bytes of the blob a response carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    first: u64,
    last: u64,
}

/// `bytes a-b/total` from a `Content-Range` header.
fn content_range(headers: &HeaderMap) -> Option<(Span, u64)> {
    let v = headers.get(header::CONTENT_RANGE)?.to_str().ok()?;
    let (range, total) = v.strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let span = Span {
        first: a.parse().ok()?,
        last: b.parse().ok()?,
    };
    (span.first <= span.last).then_some((span, total.parse().ok()?))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Answers the client with the winning peer's headers and streams the body; `found` may name
/// further providers to resume from.
pub(super) fn respond(
    inner: Arc<Inner>,
    request: PeerRequest,
    won: Won<BlobHead>,
    found: mpsc::Receiver<Provider>,
) -> Result<Response, ApiError> {
    let Won {
        value: BlobHead {
            status,
            headers,
            body,
        },
        provider,
        rest,
    } = won;
    let unknown = || ApiError::Unknown {
        kind: request.kind,
        reference: request
            .digest
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    };
    let length = content_length(&headers).ok_or_else(unknown)?;
    let span = if status == StatusCode::PARTIAL_CONTENT {
        let (span, _) = content_range(&headers).ok_or_else(unknown)?;
        if span.last - span.first + 1 != length {
            return Err(unknown());
        }
        span
    } else if length == 0 {
        Span { first: 0, last: 0 }
    } else {
        Span {
            first: 0,
            last: length - 1,
        }
    };
    // Only a whole blob can be checked against its digest.
    let verify = (status == StatusCode::OK)
        .then(|| request.digest.clone())
        .flatten();

    let source = source_header(&provider.peer);
    let transfer = Transfer {
        peer_bytes: inner.metrics.bytes_counter("peer"),
        relay: Relay::new(verify),
        inner,
        request,
        provider,
        candidates: rest.into(),
        found,
        span,
        length,
        body: Some(body),
        received: 0,
        resumes: 0,
    };
    // The stream is polled by the client's connection itself: no task and no channel between
    // the peer's bytes and the client, so a transfer holds at most a chunk or two.
    let stream = futures::stream::unfold(transfer, |mut t| async move {
        let item = t.next_chunk().await?;
        Some((item, t))
    });
    let mut response = build(status, &headers, Body::from_stream(stream));
    response.headers_mut().insert(source.0, source.1);
    Ok(response)
}

struct Transfer {
    inner: Arc<Inner>,
    request: PeerRequest,
    provider: Provider,
    candidates: VecDeque<Provider>,
    found: mpsc::Receiver<Provider>,
    span: Span,
    length: u64,
    /// Hashes what arrives and holds the chunk with the last byte back until the blob is verified.
    relay: Relay,
    peer_bytes: prometheus_client::metrics::counter::Counter,
    /// The current peer's body; `None` once the transfer is over.
    body: Option<Incoming>,
    received: u64,
    resumes: usize,
}

impl Transfer {
    /// The next chunk for the client; `None` when the response is complete.
    async fn next_chunk(&mut self) -> Option<io::Result<Bytes>> {
        loop {
            let body = self.body.as_mut()?;
            let failure = match tokio::time::timeout(BODY_IDLE_TIMEOUT, body.frame()).await {
                Ok(Some(Ok(frame))) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    if data.is_empty() {
                        continue;
                    }
                    if self.received + data.len() as u64 > self.length {
                        Failure::BadResponse
                    } else {
                        self.received += data.len() as u64;
                        let last = self.received == self.length;
                        if let Some(ready) = self.relay.push(data, last) {
                            self.peer_bytes.inc_by(ready.len() as u64);
                            return Some(Ok(ready));
                        }
                        continue;
                    }
                }
                Ok(None) if self.received == self.length => return self.finish().await,
                Ok(None) | Ok(Some(Err(_))) => Failure::Body,
                Err(_) => Failure::Timeout,
            };
            self.inner.failed(&self.provider, failure);
            self.resumes += 1;
            match self.resume().await {
                Some(next) => self.body = Some(next),
                None => {
                    return self.abort("the serving peer failed and no other peer could continue");
                }
            }
        }
    }

    /// The whole body arrived: verify it, then release the held-back chunk.
    async fn finish(&mut self) -> Option<io::Result<Bytes>> {
        self.body = None;
        let Ok(last) = self.relay.finish() else {
            self.inner.failed(&self.provider, Failure::DigestMismatch);
            return self.abort("the blob does not match its digest");
        };
        self.inner
            .metrics
            .mirror_succeeded(&self.provider.peer, &self.request.reference);
        let last = last?;
        self.peer_bytes.inc_by(last.len() as u64);
        Some(Ok(last))
    }

    /// Ends the response with an error: the client sees the connection cut before the end.
    fn abort(&mut self, why: &str) -> Option<io::Result<Bytes>> {
        tracing::debug!(reason = why, "mirrored blob transfer aborted");
        self.body = None;
        self.relay = Relay::new(None);
        Some(Err(io::Error::other(why.to_owned())))
    }

    /// Finds another provider to continue from the first byte not yet received.
    async fn resume(&mut self) -> Option<Incoming> {
        let from = self.span.first + self.received;
        let range = HeaderValue::from_str(&format!("bytes={from}-{}", self.span.last)).ok()?;
        let mut request = self.request.clone();
        request.headers.retain(|(k, _)| k != header::RANGE);
        request.ranged = true;
        let mut attempts = self.resumes;
        while attempts <= self.inner.config.resolve_retries {
            let next = match self.candidates.pop_front() {
                Some(p) => p,
                None => match tokio::time::timeout(RESUME_LOOKUP_WAIT, self.found.recv()).await {
                    Ok(Some(p)) => p,
                    _ => return None,
                },
            };
            if next.peer == self.provider.peer || self.inner.peers.is_quarantined(&next.peer) {
                continue;
            }
            attempts += 1;
            tracing::debug!(peer = %next.peer, from, "resuming a blob from another peer");
            let response = match self
                .inner
                .send(&next, &request, Some((header::RANGE, range.clone())))
                .await
            {
                Ok(r) => r,
                Err(f) => {
                    self.inner.failed(&next, f);
                    continue;
                }
            };
            let (parts, body) = response.into_parts();
            let fits = parts.status == StatusCode::PARTIAL_CONTENT
                && content_range(&parts.headers)
                    .is_some_and(|(s, _)| s.first == from && s.last == self.span.last);
            if !fits {
                self.inner.failed(&next, Failure::BadResponse);
                continue;
            }
            self.provider = next;
            return Some(body);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_range() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 10-19/100"),
        );
        assert_eq!(
            content_range(&h),
            Some((
                Span {
                    first: 10,
                    last: 19
                },
                100
            ))
        );
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes 19-10/100"),
        );
        assert_eq!(content_range(&h), None);
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_static("bytes */100"),
        );
        assert_eq!(content_range(&h), None);
    }
}
