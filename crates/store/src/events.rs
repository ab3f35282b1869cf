//! Turning a store's successive listings into [`Event`]s for its watchers; shared by the stores,
//! which each keep a broadcast sender and a current listing.

use std::collections::HashSet;
use std::sync::{Arc, RwLock};

use tokio::sync::{broadcast, mpsc};
use tokio_util::task::TaskTracker;

use crate::{Event, Image, Listing};

/// How many events may wait for a slow watcher before it is sent a fresh listing instead.
pub const BUFFER: usize = 256;

/// The events that turn the listing `old` into `new`: deletions first, then creations.
pub fn diff(old: &[Image], new: &[Image]) -> Vec<Event> {
    let old_set: HashSet<&Image> = old.iter().collect();
    let new_set: HashSet<&Image> = new.iter().collect();
    let deleted = old
        .iter()
        .filter(|i| !new_set.contains(i))
        .cloned()
        .map(Event::Deleted);
    let created = new
        .iter()
        .filter(|i| !old_set.contains(i))
        .cloned()
        .map(Event::Created);
    deleted.chain(created).collect()
}

/// Makes `next` the store's current `listing` and sends its watchers the events that turn the
/// old listing into the new one.
pub fn publish(listing: &RwLock<Arc<Listing>>, next: Listing, events: &broadcast::Sender<Event>) {
    let next = Arc::new(next);
    let old = std::mem::replace(
        &mut *listing.write().expect("listing lock poisoned"),
        next.clone(),
    );
    for e in diff(&old.images, &next.images) {
        // No subscriber is fine: nobody is watching yet.
        let _ = events.send(e);
    }
}

/// A watch as [`crate::ContentStore::watch`] promises it: [`Event::Listed`] with `current()`
/// first, then every event sent on `events`, and a fresh listing whenever the watcher fell so
/// far behind that events were lost. Ends when the receiver is dropped or `events` closes; the
/// forwarding task runs on `tasks`, so shutdown waits for it.
pub fn watch<F>(
    events: &broadcast::Sender<Event>,
    current: F,
    tasks: &TaskTracker,
) -> mpsc::Receiver<Event>
where
    F: Fn() -> Vec<Image> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(BUFFER);
    let mut events = events.subscribe();
    tasks.spawn(async move {
        let mut listing = Some(current());
        loop {
            if let Some(images) = listing.take()
                && tx.send(Event::Listed(images)).await.is_err()
            {
                return;
            }
            let event = tokio::select! {
                e = events.recv() => e,
                () = tx.closed() => return,
            };
            match event {
                Ok(e) => {
                    if tx.send(e).await.is_err() {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => listing = Some(current()),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    rx
}
