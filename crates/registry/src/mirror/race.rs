//! Choosing and racing providers: a request starts with the best provider at hand (see
//! `load.rs`), asks the next after the hedge delay (or at once after a failure), and the first
//! good answer wins. A provider asked before the winner and still silent is quarantined like a
//! failed one.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use p2p::{PeerId, Provider};
use tokio::sync::mpsc;

use super::load::{Asking, Load};
use super::peers::Peers;
use super::shared::{Failure, Inner};

/// How long a request whose providers are all busy waits for the lookup to find another.
const BUSY_WAIT: Duration = Duration::from_millis(10);

/// The providers a request starts with.
pub(super) struct Ready {
    first: Provider,
    /// The first one's request, counted as under way from the moment it was chosen.
    asking: Asking,
    queue: VecDeque<Provider>,
}

/// What a race ends with: the winner's result, the winning provider, and the providers found
/// but not tried (a blob transfer resumes from them if the winner fails mid-way).
pub(super) struct Won<T> {
    pub(super) value: T,
    pub(super) provider: Provider,
    pub(super) rest: Vec<Provider>,
}

type Attempt<T> = Pin<Box<dyn Future<Output = (Provider, Result<T, Failure>)> + Send>>;

/// Where a race stands after an answer.
enum Step<T> {
    Won(Won<T>),
    Lost,
    Going,
}

/// The state of one race: the attempts under way and the providers still to ask.
struct Race<'a, T, F> {
    inner: &'a Inner,
    attempt: F,
    inflight: FuturesUnordered<Attempt<T>>,
    /// The providers asked and not yet answered, in the order they were asked.
    waiting: Vec<Provider>,
    queue: VecDeque<Provider>,
    seen: HashSet<PeerId>,
    tried: usize,
    lookup_open: bool,
}

impl<T, F, Fut> Race<'_, T, F>
where
    F: Fn(Provider) -> Fut,
    Fut: Future<Output = Result<T, Failure>> + Send + 'static,
{
    fn can_start(&self) -> bool {
        self.tried < self.inner.config.resolve_retries
    }

    /// Asks `p`; the attempt holds `asking` until it ends, so other requests see the peer busy.
    fn start_counted(&mut self, p: Provider, asking: Asking) {
        let fut = (self.attempt)(p.clone());
        self.waiting.push(p.clone());
        self.tried += 1;
        self.inflight.push(Box::pin(async move {
            let result = fut.await;
            if result.is_ok() {
                asking.answered();
            }
            (p, result)
        }));
    }

    fn start(&mut self, p: Provider) {
        let asking = self.inner.load.asking(p.peer);
        self.start_counted(p, asking);
    }

    /// An attempt ended: the race is won, lost (nothing left to try), or goes on.
    fn answered(&mut self, provider: Provider, result: Result<T, Failure>) -> Step<T> {
        // Those asked before this one and still waiting.
        let earlier = answered(&mut self.waiting, &provider.peer);
        match result {
            Ok(value) => {
                // Asked before the winner and still silent: far slower than usual (a hung node
                // keeps accepting connections), so left out like a failed peer and not dialed
                // again by the next request.
                for slow in &earlier {
                    self.inner.failed(slow, Failure::Timeout);
                }
                let rest = std::mem::take(&mut self.queue).into();
                Step::Won(Won {
                    value,
                    provider,
                    rest,
                })
            }
            Err(failure) => {
                self.inner.failed(&provider, failure);
                if self.can_start()
                    && let Some(next) = self.queue.pop_front()
                {
                    self.start(next);
                    Step::Going
                } else if self.inflight.is_empty() && (!self.lookup_open || !self.can_start()) {
                    Step::Lost
                } else {
                    Step::Going
                }
            }
        }
    }

    /// The lookup named another provider (or ended, with `None`): `true` when the race is lost.
    fn found(&mut self, p: Option<Provider>) -> bool {
        match p {
            Some(p) if !self.inner.peers.is_quarantined(&p.peer) && self.seen.insert(p.peer) => {
                if self.inflight.is_empty() && self.can_start() {
                    self.start(p);
                } else {
                    self.queue.push_back(p);
                }
                false
            }
            Some(_) => false,
            None => {
                self.lookup_open = false;
                self.inflight.is_empty()
            }
        }
    }
}

impl Inner {
    /// Asks the first of `ready`, then (after the hedge delay, or at once after a failure) the
    /// others and further providers from `found`, up to `resolve_retries` in all; the first
    /// success wins and the others are dropped.
    pub(super) async fn race<T, F, Fut>(
        &self,
        ready: Ready,
        found: &mut mpsc::Receiver<Provider>,
        attempt: F,
    ) -> Option<Won<T>>
    where
        F: Fn(Provider) -> Fut,
        Fut: Future<Output = Result<T, Failure>> + Send + 'static,
    {
        let mut seen: HashSet<PeerId> = ready.queue.iter().map(|p| p.peer).collect();
        seen.insert(ready.first.peer);
        let mut race = Race {
            inner: self,
            attempt,
            inflight: FuturesUnordered::new(),
            waiting: Vec::new(),
            queue: ready.queue,
            seen,
            tried: 0,
            lookup_open: true,
        };
        race.start_counted(ready.first, ready.asking);
        let next_hedge = || tokio::time::Instant::now() + self.peers.hedge_delay();
        let hedge = tokio::time::sleep_until(next_hedge());
        tokio::pin!(hedge);
        loop {
            let tried = race.tried;
            let hedging = race.can_start() && !race.queue.is_empty();
            tokio::select! {
                Some((provider, result)) = race.inflight.next() => {
                    match race.answered(provider, result) {
                        Step::Won(won) => return Some(won),
                        Step::Lost => return None,
                        Step::Going => {}
                    }
                    if race.tried > tried {
                        hedge.as_mut().reset(next_hedge());
                    }
                },
                () = &mut hedge, if hedging => {
                    if let Some(next) = race.queue.pop_front() {
                        tracing::debug!(peer = %next.peer, "hedging: asking another provider too");
                        race.start(next);
                    }
                    hedge.as_mut().reset(next_hedge());
                }
                p = found.recv(), if race.lookup_open => {
                    if race.found(p) {
                        return None;
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
