//! Holders of an image die: lookups must find the holders still alive soon after, not the
//! records the dead left in the DHT until they expire (30 minutes), and a pull through a node
//! that lacks the image keeps coming from peers.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use oci::Digest;
use test_support::eventually;
use test_support::http::get;
use test_support::image;
use test_support::metrics::lookup;
use test_support::net::Block;

use crate::cluster::{cluster, dns_for, empty_layout};

/// More holders than Kademlia's replication factor (20), so that some holders' records were
/// published after a key already had 20 providers.
const HOLDERS: usize = 25;

#[tokio::test]
async fn when_the_holders_a_lookup_found_die_the_survivors_are_found_within_30_s() {
    let block = Block::random();
    let Some(dns) = dns_for(block, HOLDERS as u8 + 1) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..=HOLDERS).map(|_| empty_layout()).collect();
    let sizes = [1 << 20, 1 << 20];
    let mut img = None;
    for d in &dirs[..HOLDERS] {
        img = Some(image::write_image(d.path(), "example.com/app:1", &sizes, 7).unwrap());
    }
    let img = img.unwrap();
    let paths: Vec<&Path> = dirs.iter().map(tempfile::TempDir::path).collect();
    let mut nodes = cluster(block, &dns, &paths, &[]).await;
    let seeker = nodes.pop().unwrap();
    let layer = img.digests[1].to_string();

    // Every holder has published: the seeker's lookup hands out as many as it may (20).
    let found = eventually(Duration::from_secs(30), "20 providers", || async {
        let p = lookup(seeker.metrics, &layer).await;
        (p.len() >= 20).then_some(p)
    })
    .await;
    let found: HashSet<String> = found.into_iter().collect();
    let (dead, alive): (Vec<_>, Vec<_>) =
        nodes.into_iter().partition(|n| found.contains(&n.peer_id));
    assert_eq!(alive.len(), HOLDERS - found.len());
    drop(dead);

    let alive_ids: HashSet<&str> = alive.iter().map(|n| n.peer_id.as_str()).collect();
    let survivors = eventually(Duration::from_secs(30), "a surviving holder", || async {
        let p = lookup(seeker.metrics, &layer).await;
        let live: Vec<String> = p
            .into_iter()
            .filter(|id| alive_ids.contains(id.as_str()))
            .collect();
        (!live.is_empty()).then_some(live)
    })
    .await;
    assert!(!survivors.is_empty());

    // A pull through the seeker comes from a survivor, byte for byte.
    for (i, d) in img.digests.iter().enumerate() {
        let kind = if i == 0 { "manifests" } else { "blobs" };
        let url = format!("{}/v2/app/{kind}/{d}?ns=example.com", seeker.url());
        let r = get(&url).await;
        assert_eq!(r.status, 200, "{kind} {d}");
        assert_eq!(Digest::sha256_of(&r.body), *d);
    }
}
