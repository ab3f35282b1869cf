//! Keeps what this node advertises equal to what its store holds: store events in, batched
//! advertise and withdraw calls to the P2P router out, and gauges of what is advertised. It lives
//! in the binary, which wires the store and the router together, so that neither depends on the
//! other.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use oci::{Digest, ImageReference};
use store::{ContentStore, Event, Image};
use tokio_util::sync::CancellationToken;

use p2p::{Advertised, Metrics, Router};

/// Store events arriving within this window are applied together.
const BATCH_WINDOW: Duration = Duration::from_millis(200);

/// Decides what may be advertised; the registry's `--mirrored-registries` and
/// `--registry-filters` implement it.
pub(crate) trait Filter: Send + Sync {
    /// Whether any key of `image` may be advertised.
    fn image(&self, image: &Image) -> bool;

    /// Whether the tag reference of an image named `name` may be advertised (its digests are
    /// advertised regardless: content under a digest never goes stale).
    fn tag(&self, name: &ImageReference) -> bool;
}

impl Filter for registry::Filters {
    fn image(&self, image: &Image) -> bool {
        self.advertises_image(image)
    }

    fn tag(&self, name: &ImageReference) -> bool {
        self.advertises_tag(name)
    }
}

/// The keys of one image: its tag reference (when named and allowed) and every digest it
/// consists of.
pub(crate) fn keys_of(image: &Image, filter: &dyn Filter) -> Vec<String> {
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
pub(crate) async fn run(
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
    let totals = Advertised {
        image_tags: tags.values().map(HashSet::len).sum(),
        image_digests: tops.values().flatten().collect::<HashSet<_>>().len(),
        content_digests: contents.values().flatten().collect::<HashSet<_>>().len(),
    };
    let by_registry = tops
        .iter()
        .map(|(registry, digests)| {
            let counts = Advertised {
                image_tags: tags.get(registry).map_or(0, HashSet::len),
                image_digests: digests.len(),
                content_digests: contents.get(registry).map_or(0, HashSet::len),
            };
            (registry.clone(), counts)
        })
        .collect();
    metrics.set_advertised(totals, &by_registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    fn image(name: &str, n: u8) -> Image {
        Image {
            name: Some(name.parse().unwrap()),
            digest: digest(n),
            contents: vec![digest(n), digest(n + 100)],
        }
    }

    #[test]
    fn an_image_advertises_its_tag_and_every_digest_unless_filtered() {
        let i = image("docker.io/library/nginx:1.27", 1);
        let everything = registry::Filters::default();
        assert_eq!(
            keys_of(&i, &everything),
            [
                "docker.io/library/nginx:1.27".to_owned(),
                digest(1).to_string(),
                digest(101).to_string()
            ]
        );
        let no_tags = registry::Filters::new(Vec::new(), &[":1.27$".into()]).unwrap();
        assert_eq!(keys_of(&i, &no_tags).len(), 2);
    }

    #[test]
    fn a_moved_tag_replaces_the_image_of_that_name() {
        let mut images = HashMap::new();
        apply(
            &mut images,
            Event::Listed(vec![image("example.com/app:1", 1)]),
        );
        apply(&mut images, Event::Created(image("example.com/app:1", 2)));
        assert_eq!(images.len(), 1);
        assert!(images.values().all(|i| i.digest == digest(2)));
        apply(&mut images, Event::Deleted(image("example.com/app:1", 2)));
        assert!(images.is_empty());
    }
}
