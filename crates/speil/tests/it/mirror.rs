//! Mirroring from peers with real nodes, real skopeo and curl: byte-identical copies through a
//! node that lacks the image, fast 404s, resuming after a peer dies mid-blob, corrupt peers cut
//! off and quarantined, stale provider records, no loops, filters.

use std::process::Command;
use std::time::{Duration, Instant};

use oci::Digest;
use test_support::eventually;
use test_support::http::{get, request};
use test_support::image;
use test_support::metrics::{scrape, value};
use test_support::net::Block;
use test_support::prereq::require;
use test_support::process::Guard;

use crate::cluster::{
    assert_quiet, blobs_in, cluster, dns_for, empty_layout, skopeo_copy, sorted, start_node,
    wait_provider, wait_state,
};

#[tokio::test]
async fn skopeo_copies_through_a_node_that_lacks_the_image() {
    let Some(skopeo) = require("skopeo", "skopeo") else {
        return;
    };
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    let img = image::write_image(
        d1.path(),
        "example.com/team/app:1.0",
        &[2 << 20, 300_000],
        31,
    )
    .unwrap();
    let idx = image::write_index(d1.path(), "example.com/team/multi:2.0", &[100_000], 32).unwrap();
    let nodes = cluster(block, &dns, &[d1.path(), d2.path(), d3.path()], &[]).await;
    let (n1, n3) = (&nodes[0], &nodes[2]);
    wait_provider(n3, "example.com/team/app:1.0", n1).await;
    wait_provider(n3, "example.com/team/multi:2.0", n1).await;

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    skopeo_copy(
        &skopeo,
        &format!("docker://{}/example.com/team/app:1.0", n3.registry),
        &dest,
        false,
    );
    assert_eq!(blobs_in(&dest), sorted(img.digests.clone()));
    let dest = out.path().join("multi");
    skopeo_copy(
        &skopeo,
        &format!("docker://{}/example.com/team/multi:2.0", n3.registry),
        &dest,
        true,
    );
    assert_eq!(blobs_in(&dest), sorted(idx.digests.clone()));

    let m3 = scrape(n3.metrics).await;
    assert!(
        value(
            &m3,
            r#"speil_mirror_requests_total{registry="example.com",cache="hit"}"#
        ) >= 10.0,
        "{m3}"
    );
    assert!(value(&m3, r#"speil_mirror_bytes_total{source="peer"}"#) >= (2 << 20) as f64);
    assert_eq!(
        value(&m3, r#"speil_mirror_bytes_total{source="local"}"#),
        0.0
    );
    assert!(value(&m3, "speil_mirror_last_success_timestamp_seconds") > 0.0);
    let m1 = scrape(n1.metrics).await;
    assert!(value(&m1, r#"speil_mirror_bytes_total{source="local"}"#) >= (2 << 20) as f64);
    assert_quiet(&nodes.iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn what_nobody_has_is_a_fast_404_and_peers_answer_one_hop_only() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 2) else { return };
    let (d1, d2) = (empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/team/app:1.0", &[1000], 33).unwrap();
    let nodes = cluster(block, &dns, &[d1.path(), d2.path()], &[]).await;
    let n2 = &nodes[1];
    wait_provider(n2, &img.top.digest.to_string(), &nodes[0]).await;

    let missing = Digest::sha256_of(b"nobody has this");
    for (path, code) in [
        (
            "/v2/team/app/manifests/9.9?ns=example.com".to_owned(),
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/team/app/manifests/{missing}?ns=example.com"),
            "MANIFEST_UNKNOWN",
        ),
        (
            format!("/v2/team/app/blobs/{missing}?ns=example.com"),
            "BLOB_UNKNOWN",
        ),
    ] {
        let started = Instant::now();
        let r = get(&format!("{}{path}", n2.url())).await;
        let took = started.elapsed();
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.oci_code(), code, "{path}");
        assert!(took < Duration::from_millis(100), "{path} took {took:?}");
    }

    // A request from a peer is answered from the local store only.
    let url = format!("{}/v2/team/app/manifests/1.0?ns=example.com", n2.url());
    let r = request(http::Method::GET, &url, &[("x-speil-mirrored", "true")]).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        get(&url).await.status,
        200,
        "without the header it comes from the peer"
    );
}

#[tokio::test]
async fn a_peer_killed_mid_blob_is_replaced_without_the_client_noticing() {
    let Some(curl) = require("curl", "curl") else {
        return;
    };
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    // The same blob on nodes 1 and 2, named by an image so it is advertised.
    let size = 32 << 20;
    let a = image::write_image(d1.path(), "example.com/big:1", &[size], 34).unwrap();
    let b = image::write_image(d2.path(), "example.com/big:1", &[size], 34).unwrap();
    assert_eq!(a.layers[0].digest, b.layers[0].digest);
    let layer = a.layers[0].clone();
    let mut nodes = cluster(block, &dns, &[d1.path(), d2.path(), d3.path()], &[]).await;
    wait_provider(&nodes[2], &layer.digest.to_string(), &nodes[0]).await;
    wait_provider(&nodes[2], &layer.digest.to_string(), &nodes[1]).await;

    let out = d3.path().join("download");
    let mut download = Guard::spawn(
        Command::new(curl)
            .args(["-sf", "--limit-rate", "8M", "-o"])
            .arg(&out)
            .arg(format!(
                "{}/v2/big/blobs/{}?ns=example.com",
                nodes[2].url(),
                layer.digest
            )),
    )
    .unwrap();
    // Find the node serving it and kill it while the transfer runs.
    let serving = eventually(
        Duration::from_secs(5),
        "a node serving the blob",
        || async {
            for (i, node) in nodes.iter().enumerate().take(2) {
                let served = value(
                    &scrape(node.metrics).await,
                    r#"speil_mirror_bytes_total{source="local"}"#,
                );
                if served > 0.0 {
                    return Some(i);
                }
            }
            None
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let killed = nodes.remove(serving);
    drop(killed);
    let code = tokio::task::spawn_blocking(move || download.wait_timeout(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(code, Some(0), "the download failed");
    let bytes = std::fs::read(&out).unwrap();
    assert_eq!(bytes.len() as u64, layer.size);
    assert_eq!(Digest::sha256_of(&bytes), layer.digest);
    let survivor = &nodes[0];
    assert!(
        value(
            &scrape(survivor.metrics).await,
            r#"speil_mirror_bytes_total{source="local"}"#
        ) > 0.0
    );
}

#[tokio::test]
async fn a_corrupt_peer_is_cut_off_and_quarantined() {
    let Some(curl) = require("curl", "curl") else {
        return;
    };
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (bad, client, good) = (empty_layout(), empty_layout(), empty_layout());
    let img = image::write_image(bad.path(), "example.com/app:1", &[4 << 20], 35).unwrap();
    let layer = img.layers[0].clone();
    // Same length, other bytes: the bad node serves it under the right digest.
    let path = bad.path().join("blobs").join(layer.digest.blob_path());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1_000_000] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();

    let mut flags = crate::cluster::dns_flags(&dns);
    flags.push("--log-level".into());
    flags.push("info".into());
    let n_bad = start_node(block, 1, bad.path(), &flags);
    let n_client = start_node(block, 2, client.path(), &flags);
    wait_state(&n_client, "connected", Duration::from_secs(20)).await;
    wait_provider(&n_client, &layer.digest.to_string(), &n_bad).await;

    let url = format!(
        "{}/v2/app/blobs/{}?ns=example.com",
        n_client.url(),
        layer.digest
    );
    let out = client.path().join("download");
    let status = Command::new(&curl)
        .args(["-s", "-o"])
        .arg(&out)
        .arg(&url)
        .status()
        .unwrap();
    assert!(!status.success(), "curl must see the transfer cut off");
    let got = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    assert!(
        got < layer.size,
        "the client received {got} of {} bytes: a complete blob",
        layer.size
    );
    let m = scrape(n_client.metrics).await;
    assert_eq!(
        value(
            &m,
            r#"speil_mirror_peer_failures_total{reason="digest_mismatch"}"#
        ),
        1.0,
        "{m}"
    );
    eventually(
        Duration::from_secs(5),
        "the WARN line about the corrupt peer",
        || async {
            let warns = n_client.lines_at("WARN");
            warns
                .iter()
                .any(|w| w.contains("does not match its digest") && w.contains(&n_bad.peer_id))
                .then_some(())
        },
    )
    .await;

    // A good node appears; the next request is served by it, the bad one being quarantined.
    image::write_image(good.path(), "example.com/app:1", &[4 << 20], 35).unwrap();
    let n_good = start_node(block, 3, good.path(), &flags);
    wait_provider(&n_client, &layer.digest.to_string(), &n_good).await;
    let r = get(&url).await;
    assert_eq!(r.status, 200);
    assert_eq!(Digest::sha256_of(&r.body), layer.digest);
    drop(n_bad);
}

#[tokio::test]
async fn a_stale_record_of_a_dead_node_costs_at_most_one_failed_peer() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    let img = image::write_image(
        d1.path(),
        "example.com/app:1",
        &[1 << 20, 1 << 20, 1 << 20],
        36,
    )
    .unwrap();
    image::write_image(
        d2.path(),
        "example.com/app:1",
        &[1 << 20, 1 << 20, 1 << 20],
        36,
    )
    .unwrap();
    let mut nodes = cluster(block, &dns, &[d1.path(), d2.path(), d3.path()], &[]).await;
    for key in img.digests.iter().map(ToString::to_string) {
        wait_provider(&nodes[2], &key, &nodes[0]).await;
        wait_provider(&nodes[2], &key, &nodes[1]).await;
    }
    let pull = |base: String, digests: Vec<Digest>| async move {
        for (i, d) in digests.iter().enumerate() {
            let kind = if i == 0 { "manifests" } else { "blobs" };
            let r = get(&format!("{base}/v2/app/{kind}/{d}?ns=example.com")).await;
            assert_eq!(r.status, 200, "{kind} {d}");
            assert_eq!(Digest::sha256_of(&r.body), *d);
        }
    };
    let base = nodes[2].url();
    pull(base.clone(), img.digests.clone()).await;
    // Node 1 dies; its provider records stay in the DHT until they expire.
    drop(nodes.remove(0));
    tokio::time::sleep(Duration::from_secs(6)).await; // past the lookup cache
    pull(base.clone(), img.digests.clone()).await;
    // Every object came from node 2, and node 1 cost at most one failed attempt (then its
    // quarantine, or the loss of its connection, keeps it out), not one per request; how long
    // that takes is measured by bench/p2p.sh, not asserted here.
    let m = scrape(nodes[1].metrics).await;
    let failures: f64 = ["connect", "timeout", "status", "bad_response", "body"]
        .iter()
        .map(|r| {
            value(
                &m,
                &format!("speil_mirror_peer_failures_total{{reason=\"{r}\"}}"),
            )
        })
        .sum();
    assert!(failures <= 1.0, "{m}");
}

#[tokio::test]
async fn nodes_that_both_lost_the_content_answer_404_without_a_loop() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 2) else { return };
    let (d1, d2) = (empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/app:1", &[1000], 37).unwrap();
    image::write_image(d2.path(), "example.com/app:1", &[1000], 37).unwrap();
    let nodes = cluster(block, &dns, &[d1.path(), d2.path()], &[]).await;
    let key = img.top.digest.to_string();
    wait_provider(&nodes[0], &key, &nodes[1]).await;
    wait_provider(&nodes[1], &key, &nodes[0]).await;
    // Both drop the image; each still finds the other's record and believes it holds it.
    for d in [&d1, &d2] {
        store::layout::LayoutWriter::open(d.path())
            .unwrap()
            .untag("example.com/app:1")
            .unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for d in [&d1, &d2] {
        std::fs::remove_file(d.path().join("blobs").join(img.top.digest.blob_path())).unwrap();
    }
    for n in &nodes {
        let started = Instant::now();
        let r = get(&format!(
            "{}/v2/app/manifests/{key}?ns=example.com",
            n.url()
        ))
        .await;
        assert_eq!(r.status, 404);
        assert_eq!(r.oci_code(), "MANIFEST_UNKNOWN");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
    // Each node was asked by the other at most once per request: no ping-pong.
    for n in &nodes {
        let m = scrape(n.metrics).await;
        let total = value(
            &m,
            r#"speil_mirror_requests_total{registry="example.com",cache="miss"}"#,
        );
        assert!(total <= 2.0, "{total} misses on {}", n.registry);
    }
}

#[tokio::test]
async fn filters_keep_references_from_peers() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 2) else { return };
    let (d1, d2) = (empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/app:latest", &[1000], 38).unwrap();
    let filters = vec![
        "--registry-filters".to_owned(),
        ":latest$".to_owned(),
        "--mirrored-registries".to_owned(),
        "https://example.com,docker.io".to_owned(),
    ];
    let nodes = cluster(block, &dns, &[d1.path(), d2.path()], &filters).await;
    let n2 = &nodes[1];
    wait_provider(n2, &img.top.digest.to_string(), &nodes[0]).await;
    // The tag was never advertised, and is not looked up.
    assert!(
        test_support::metrics::lookup(n2.metrics, "example.com/app:latest")
            .await
            .is_empty()
    );
    let started = Instant::now();
    let r = get(&format!(
        "{}/v2/app/manifests/latest?ns=example.com",
        n2.url()
    ))
    .await;
    assert_eq!(r.status, 404);
    assert!(started.elapsed() < Duration::from_millis(100));
    // By digest, the same content is served: a digest never goes stale.
    let r = get(&format!(
        "{}/v2/app/manifests/{}?ns=example.com",
        n2.url(),
        img.top.digest
    ))
    .await;
    assert_eq!(r.status, 200);
    // A registry that is not mirrored is not served at all, not even from the local store.
    let r = get(&format!(
        "{}/v2/app/manifests/latest?ns=other.io",
        nodes[0].url()
    ))
    .await;
    assert_eq!(r.status, 404);
    let m = scrape(nodes[0].metrics).await;
    assert_eq!(
        value(&m, r#"speil_advertised_image_tags{registry="example.com"}"#),
        0.0
    );
    assert_eq!(
        value(
            &m,
            r#"speil_advertised_image_digests{registry="example.com"}"#
        ),
        1.0
    );
}
