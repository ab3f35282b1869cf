//! Choosing and racing providers: a request starts with the best provider at hand (see
//! `load.rs`), asks the next after the hedge delay (or at once after a failure), and the first
//! good answer wins. A provider asked before the winner and still silent is quarantined like a
//! failed one.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use p2p::{PeerId, Provider};
use tokio::sync::mpsc;

use super::load::{Asking, Load};
use super::peers::Peers;
use super::{Attempt, Failure, Inner};

/// How long a request whose providers are all busy waits for the lookup to find another.
const BUSY_WAIT: Duration = Duration::from_millis(10);

/// The providers a request starts with.
pub(super) struct Ready {
    first: Provider,
    /// The first one's request, counted as under way from the moment it was chosen.
    asking: Asking,
    queue: VecDeque<Provider>,
}

impl Inner {
    /// Asks the first of `ready`, then (after the hedge delay, or at once after a failure) the
    /// others and further providers from `found`, up to `resolve_retries` in all; the first
    /// success wins and the others are dropped. Returns the winner's result, the winning
    /// provider, and the providers not tried.
    pub(super) async fn race<T, F, Fut>(
        &self,
        ready: Ready,
        found: &mut mpsc::Receiver<Provider>,
        attempt: F,
    ) -> Option<(T, Provider, Vec<Provider>)>
    where
        F: Fn(Provider) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + Send + 'static,
    {
        let Ready {
            first,
            asking,
            mut queue,
        } = ready;
        let mut seen: HashSet<PeerId> = queue.iter().map(|p| p.peer).collect();
        seen.insert(first.peer);
        let mut inflight: FuturesUnordered<Attempt<T>> = FuturesUnordered::new();
        // The providers asked and not yet answered, in the order they were asked.
        let mut waiting: Vec<Provider> = Vec::new();
        // Each attempt holds its `Asking` until it ends, so other requests see the peer busy.
        let start_counted = |p: Provider,
                             asking: Asking,
                             inflight: &mut FuturesUnordered<Attempt<T>>,
                             waiting: &mut Vec<Provider>| {
            let fut = attempt(p.clone());
            waiting.push(p.clone());
            inflight.push(Box::pin(async move {
                let result = fut.await;
                if result.is_ok() {
                    asking.answered();
                }
                (p, result)
            }));
        };
        let start = |p: Provider,
                     inflight: &mut FuturesUnordered<Attempt<T>>,
                     waiting: &mut Vec<Provider>| {
            let asking = self.load.asking(p.peer);
            start_counted(p, asking, inflight, waiting);
        };
        start_counted(first, asking, &mut inflight, &mut waiting);
        let mut tried = 1;
        let mut lookup_open = true;
        let hedge = tokio::time::sleep(self.peers.hedge_delay());
        tokio::pin!(hedge);
        loop {
            let can_start = tried < self.config.resolve_retries;
            tokio::select! {
                Some((provider, result)) = inflight.next() => {
                    // Those asked before this one and still waiting.
                    let earlier = answered(&mut waiting, &provider.peer);
                    match result {
                        Ok(value) => {
                            // Asked before the winner and still silent: far slower than usual
                            // (a hung node keeps accepting connections), so left out like a
                            // failed peer and not dialed again by the next request.
                            for slow in &earlier {
                                self.failed(slow, Failure::Timeout);
                            }
                            let rest = queue.into_iter().collect();
                            return Some((value, provider, rest));
                        }
                        Err(failure) => {
                            self.failed(&provider, failure);
                            if can_start && let Some(next) = queue.pop_front() {
                                start(next, &mut inflight, &mut waiting);
                                tried += 1;
                                hedge.as_mut().reset(tokio::time::Instant::now() + self.peers.hedge_delay());
                            } else if inflight.is_empty() && (!lookup_open || !can_start) {
                                return None;
                            }
                        }
                    }
                },
                () = &mut hedge, if can_start && !queue.is_empty() => {
                    if let Some(next) = queue.pop_front() {
                        tracing::debug!(peer = %next.peer, "hedging: asking another provider too");
                        start(next, &mut inflight, &mut waiting);
                        tried += 1;
                    }
                    hedge.as_mut().reset(tokio::time::Instant::now() + self.peers.hedge_delay());
                }
                p = found.recv(), if lookup_open => match p {
                    Some(p) if !self.peers.is_quarantined(&p.peer) && seen.insert(p.peer) => {
                        if inflight.is_empty() && tried < self.config.resolve_retries {
                            start(p, &mut inflight, &mut waiting);
                            tried += 1;
                        } else {
                            queue.push_back(p);
                        }
                    }
                    Some(_) => {}
                    None => {
                        lookup_open = false;
                        if inflight.is_empty() {
                            return None;
                        }
                    }
                },
                else => return None,
            }
        }
    }
}

/// Removes `peer` from `waiting` (providers asked and not yet answered, in the order asked) and
/// returns those asked before it.
fn answered(waiting: &mut Vec<Provider>, peer: &PeerId) -> Vec<Provider> {
    match waiting.iter().position(|p| p.peer == *peer) {
        Some(i) => {
            waiting.remove(i);
            waiting[..i].to_vec()
        }
        None => Vec::new(),
    }
}

/// The next provider from `found` that is not quarantined; `None` when the lookup is over.
async fn next_usable(peers: &Peers, found: &mut mpsc::Receiver<Provider>) -> Option<Provider> {
    while let Some(p) = found.recv().await {
        if !peers.is_quarantined(&p.peer) {
            return Some(p);
        }
        tracing::debug!(peer = %p.peer, "skipping a quarantined provider");
    }
    None
}

/// The providers a request starts with: the first usable one to arrive within `timeout`, and
/// every other usable one that is already there, least busy first.
pub(super) async fn first_usable(
    peers: &Peers,
    load: &Load,
    found: &mut mpsc::Receiver<Provider>,
    timeout: Duration,
) -> Option<Ready> {
    let first = tokio::time::timeout(timeout, next_usable(peers, found))
        .await
        .ok()
        .flatten()?;
    let mut all = vec![first];
    while let Ok(p) = found.try_recv() {
        if !peers.is_quarantined(&p.peer) && all.iter().all(|q| q.peer != p.peer) {
            all.push(p);
        }
    }
    // Best first (see `Load::choose`). When the one chosen is busy, the lookup gets a moment to
    // find another (providers arrive a millisecond or two apart), so a burst of requests does not
    // pile onto one provider, or onto a hung one.
    let (mut asking, busy) = load.choose(&mut all)?;
    if busy {
        let deadline = tokio::time::Instant::now() + BUSY_WAIT;
        while let Ok(Some(p)) = tokio::time::timeout_at(deadline, found.recv()).await {
            if !peers.is_quarantined(&p.peer) && all.iter().all(|q| q.peer != p.peer) {
                all.push(p);
                drop(asking);
                (asking, _) = load.choose(&mut all)?;
                break;
            }
        }
    }
    tracing::debug!(first = %all[0].peer, providers = all.len(), busy, "chose a provider");
    let mut queue: VecDeque<Provider> = all.into();
    let first = queue.pop_front()?;
    Some(Ready {
        first,
        asking,
        queue,
    })
}
