//! Collecting the providers of a content key for a while: `/debug/lookup` and the debug page's
//! measure action both ask the DHT and show who answered, and when.

use std::time::{Duration, Instant};

/// A provider found, and how long after the lookup started.
pub(super) struct Found {
    pub(super) provider: p2p::Provider,
    pub(super) after: Duration,
}

/// The providers of `key` the router finds within `window` (or until the lookup ends).
pub(super) async fn collect(router: &p2p::Router, key: &str, window: Duration) -> Vec<Found> {
    let started = Instant::now();
    let mut found = router.lookup(key).await;
    let mut providers = Vec::new();
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            p = found.recv() => match p {
                Some(provider) => providers.push(Found { provider, after: started.elapsed() }),
                None => break,
            },
            () = &mut deadline => break,
        }
    }
    providers
}
