//! Keeps what this node advertises equal to what its store holds: store events in, batched
//! advertise and withdraw calls out, and gauges of what is advertised.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use oci::{Digest, ImageReference};
use store::{ContentStore, Event, Image};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Metrics, RegistryLabels};
use crate::router::Router;

/// Store events arriving within this window are applied together.
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// Decides what may be advertised; the registry's `--mirrored-registries` and
/// `--registry-filters` implement it. The default advertises everything.
pub trait Filter: Send + Sync {
    /// Whether any key of `image` may be advertised.
    fn image(&self, _image: &Image) -> bool {
        true
    }

    /// Whether the tag reference of an image named `name` may be advertised (its digests are
    /// advertised regardless: content under a digest never goes stale).
    fn tag(&self, _name: &ImageReference) -> bool {
        true
    }
}

/// Advertises everything.
pub struct Everything;

impl Filter for Everything {}

/// The keys of one image: its tag reference (when named and allowed) and every digest it
/// consists of.
pub fn keys_of(image: &Image, filter: &dyn Filter) -> Vec<String> {
    let mut keys: Vec<String> = image
        .name
        .iter()
        .filter(|n| filter.tag(n))
        .filter_map(|n| n.tag_key())
        .collect();
    keys.extend(image.contents.iter().map(Digest::to_string));
    keys
}

/// Follows `store` and advertises its content through `router` until `shutdown` or until the
/// store's watch ends.
pub async fn run(
    store: Arc<dyn ContentStore>,
    router: Router,
    metrics: Metrics,
    filter: Arc<dyn Filter>,
    shutdown: CancellationToken,
) {
    let mut events = store.watch();
    // Images by (name, digest): the store's current view.
    let mut images: HashMap<(Option<String>, Digest), Image> = HashMap::new();
    let mut advertised: HashSet<String> = HashSet::new();
    loop {
        let first = tokio::select! {
            e = events.recv() => e,
            () = shutdown.cancelled() => return,
        };
        let Some(first) = first else { return };
        let mut batch = vec![first];
        let window = tokio::time::sleep(BATCH_WINDOW);
        tokio::pin!(window);
        loop {
            tokio::select! {
                e = events.recv() => match e {
                    Some(e) => batch.push(e),
                    None => break,
                },
                () = &mut window => break,
            }
        }
        for event in batch {
            apply(&mut images, event);
        }

        let wanted: Vec<&Image> = images.values().filter(|i| filter.image(i)).collect();
        let desired: HashSet<String> = wanted
            .iter()
            .flat_map(|i| keys_of(i, filter.as_ref()))
            .collect();
        let add: Vec<String> = desired.difference(&advertised).cloned().collect();
        let remove: Vec<String> = advertised.difference(&desired).cloned().collect();
        if !add.is_empty() {
            router.advertise(&add).await;
        }
        if !remove.is_empty() {
            router.withdraw(&remove).await;
        }
        tracing::debug!(
            advertised = desired.len(),
            added = add.len(),
            withdrawn = remove.len(),
            "advertisements synced"
        );
        advertised = desired;
        set_gauges(&metrics, &wanted, filter.as_ref());
    }
}

fn apply(images: &mut HashMap<(Option<String>, Digest), Image>, event: Event) {
    let id = |i: &Image| (i.name.as_ref().map(ToString::to_string), i.digest.clone());
    match event {
        Event::Listed(all) => {
            images.clear();
            images.extend(all.into_iter().map(|i| (id(&i), i)));
        }
        Event::Created(i) => {
            // A tag that moved replaces the image of the same name.
            if let Some(name) = &i.name {
                let name = name.to_string();
                images.retain(|(n, _), _| n.as_deref() != Some(name.as_str()));
            }
            images.insert(id(&i), i);
        }
        Event::Deleted(i) => {
            images.remove(&id(&i));
        }
    }
}

fn set_gauges(metrics: &Metrics, images: &[&Image], filter: &dyn Filter) {
    let mut tags: BTreeMap<String, HashSet<String>> = BTreeMap::new();
    let mut tops: BTreeMap<String, HashSet<&Digest>> = BTreeMap::new();
    let mut contents: BTreeMap<String, HashSet<&Digest>> = BTreeMap::new();
    for i in images {
        let registry = i
            .name
            .as_ref()
            .map_or_else(|| "unknown".to_owned(), |n| n.registry.to_string());
        if let Some(key) = i
            .name
            .as_ref()
            .filter(|n| filter.tag(n))
            .and_then(|n| n.tag_key())
        {
            tags.entry(registry.clone()).or_default().insert(key);
        }
        tops.entry(registry.clone()).or_default().insert(&i.digest);
        contents
            .entry(registry)
            .or_default()
            .extend(i.contents.iter());
    }
    // Registries that no longer have images drop to zero rather than keep their last value.
    for family in [
        &metrics.advertised_tags,
        &metrics.advertised_images,
        &metrics.advertised_contents,
    ] {
        family.clear();
    }
    metrics.set_advertised(crate::metrics::Advertised {
        image_tags: tags.values().map(HashSet::len).sum(),
        image_digests: tops.values().flatten().collect::<HashSet<_>>().len(),
        content_digests: contents.values().flatten().collect::<HashSet<_>>().len(),
    });
    for (registry, set) in tags {
        metrics
            .advertised_tags
            .get_or_create(&RegistryLabels { registry })
            .set(set.len() as i64);
    }
    for (registry, set) in tops {
        metrics
            .advertised_images
            .get_or_create(&RegistryLabels { registry })
            .set(set.len() as i64);
    }
    for (registry, set) in contents {
        metrics
            .advertised_contents
            .get_or_create(&RegistryLabels { registry })
            .set(set.len() as i64);
    }
}
