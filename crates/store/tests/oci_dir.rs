//! `OciDir` against layouts written on disk: naming rules, what is listed, and changes picked up
//! while it runs.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use oci::{Digest, Kind};
use store::layout::LayoutWriter;
use store::{ContentStore, Event, OciDir};
use test_support::image;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

const POLL: Duration = Duration::from_millis(50);

/// The layout at `dir`, polled every [`POLL`], its tasks on a tracker of their own.
async fn open(dir: &std::path::Path) -> OciDir {
    OciDir::open(dir, POLL, &TaskTracker::new(), CancellationToken::new())
        .await
        .unwrap()
}

async fn read_all(store: &OciDir, digest: &Digest, range: Option<(u64, u64)>) -> Vec<u8> {
    let content = store
        .open(digest, Kind::Blob)
        .await
        .unwrap()
        .expect("content present");
    let stream = content
        .stream(range)
        .await
        .unwrap()
        .expect("content present");
    let chunks: Vec<_> = stream.collect().await;
    chunks
        .into_iter()
        .flat_map(|c| c.unwrap().to_vec())
        .collect()
}

#[tokio::test]
async fn lists_resolves_describes_and_streams() {
    let dir = tempfile::tempdir().unwrap();
    let img =
        image::write_image(dir.path(), "example.com/team/app:1.0", &[2_000_000, 10], 3).unwrap();
    let idx = image::write_index(dir.path(), "localhost:5000/multi:v2", &[100], 4).unwrap();
    let store = open(dir.path()).await;

    assert_eq!(
        store.resolve("example.com/team/app:1.0").await.unwrap(),
        Some(img.top.digest.clone())
    );
    assert_eq!(
        store.resolve("localhost:5000/multi:v2").await.unwrap(),
        Some(idx.top.digest.clone())
    );
    assert_eq!(
        store.resolve("example.com/team/app:2.0").await.unwrap(),
        None
    );

    let images = store.images().await.unwrap();
    assert_eq!(images.len(), 2);
    let listed = images.iter().find(|i| i.digest == idx.top.digest).unwrap();
    let mut got = listed.contents.clone();
    let mut want = idx.digests.clone();
    got.sort();
    want.sort();
    want.dedup();
    assert_eq!(
        got, want,
        "an index lists itself, its manifests, configs and layers"
    );

    let info = store
        .open(&img.top.digest, Kind::Manifest)
        .await
        .unwrap()
        .unwrap();
    assert!(info.is_manifest());
    let layer = &img.layers[0];
    let info = store
        .open(&layer.digest, Kind::Manifest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((info.size, info.media_type), (layer.size, None));

    let bytes = read_all(&store, &layer.digest, None).await;
    assert_eq!(Digest::sha256_of(&bytes), layer.digest);
    let part = read_all(&store, &layer.digest, Some((1_000_000, 1_600_000))).await;
    assert_eq!(part, bytes[1_000_000..=1_600_000]);

    let missing = Digest::sha256_of(b"missing");
    assert!(
        store
            .open(&missing, Kind::Manifest)
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.open(&missing, Kind::Blob).await.unwrap().is_none());
}

#[tokio::test]
async fn bare_tags_are_served_by_digest_only() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::write_image(dir.path(), "example.com/app:1", &[10], 5).unwrap();
    // Rewrite index.json the way `skopeo copy … oci:DIR:1.0` names an image: a bare tag.
    let mut annotations = BTreeMap::new();
    annotations.insert(
        "org.opencontainers.image.ref.name".to_owned(),
        "1.0".to_owned(),
    );
    let entry = oci::manifest::Descriptor {
        annotations: Some(annotations),
        ..img.top.clone()
    };
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [entry]});
    std::fs::write(
        dir.path().join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();

    let store = open(dir.path()).await;
    let images = store.images().await.unwrap();
    assert_eq!(images.len(), 1);
    assert_eq!(images[0].name, None);
    assert!(
        store
            .open(&img.top.digest, Kind::Manifest)
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.resolve("1.0").await.unwrap(), None);
}

#[tokio::test]
async fn picks_up_added_and_removed_images() {
    let dir = tempfile::tempdir().unwrap();
    image::write_image(dir.path(), "example.com/first:1", &[10], 6).unwrap();
    let store = open(dir.path()).await;
    let mut events = store.watch();
    match events.recv().await.unwrap() {
        Event::Listed(images) => assert_eq!(images.len(), 1),
        other => panic!("first event must be a listing, got {other:?}"),
    }

    let second = image::write_image(dir.path(), "example.com/second:1", &[10], 7).unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    match event {
        Event::Created(i) => assert_eq!(i.digest, second.top.digest),
        other => panic!("expected the new image, got {other:?}"),
    }
    assert_eq!(
        store.resolve("example.com/second:1").await.unwrap(),
        Some(second.top.digest.clone())
    );

    LayoutWriter::open(dir.path())
        .unwrap()
        .untag("example.com/second:1")
        .unwrap();
    let event = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(event, Event::Deleted(i) if i.digest == second.top.digest));
    assert_eq!(store.resolve("example.com/second:1").await.unwrap(), None);
}

#[tokio::test]
async fn rejects_what_is_not_a_layout_and_survives_a_broken_index() {
    let dir = tempfile::tempdir().unwrap();
    let err = OciDir::open(
        dir.path(),
        POLL,
        &TaskTracker::new(),
        CancellationToken::new(),
    )
    .await
    .err()
    .unwrap();
    assert!(err.to_string().contains("oci-layout"), "{err}");

    let img = image::write_image(dir.path(), "example.com/app:1", &[10], 8).unwrap();
    let store = open(dir.path()).await;
    std::fs::write(dir.path().join("index.json"), b"{ not json").unwrap();
    tokio::time::sleep(POLL * 4).await;
    // What was last read keeps being served.
    assert_eq!(
        store.resolve("example.com/app:1").await.unwrap(),
        Some(img.top.digest)
    );
}
