//! Creation storms on real containerd (1.6 and 2.x): node B's CRI pull of a large layer that
//! node A is still downloading, through a throttled upstream, takes the layer from A's
//! download as it grows, so the upstream sends it once; and when A's download dies midway, B's
//! pull still completes from upstream, byte for byte.

use std::time::Duration;

use oci::Digest;
use test_support::containerd::{Containerd, Version};
use test_support::eventually;
use test_support::image;
use test_support::metrics::{scrape, value};
use test_support::net::{Block, REGISTRY_PORT};
use test_support::process::Node;
use test_support::throttle::Throttle;

use crate::cluster::{start_node, wait_state};
use crate::containerd::{cri_pull, node_after_1, node_on, write_hosts};

/// The layer: large enough to take seconds at [`RATE`].
const LAYER: usize = 24 << 20;
/// The upstream link, in bytes per second.
const RATE: u64 = 4 << 20;
/// How long a node serving its download waits for it to grow before giving up.
const STALL: &str = "2s";

/// Two nodes, each with its containerd asking its own node first and the throttled upstream
/// second, and the upstream: a registry holding one image with one large layer.
struct Storm {
    ctd_a: Containerd,
    ctd_b: Containerd,
    node_a: Node,
    node_b: Node,
    throttle: Throttle,
    name: String,
    layer: image::Written,
    _upstream: (Node, tempfile::TempDir),
}

async fn storm(version: Version, seed: u64) -> Option<Storm> {
    let ctd_a = Containerd::start(version, false)?;
    let ctd_b = Containerd::start(version, false)?;
    let block = Block::random();
    let dir = tempfile::tempdir().unwrap();
    // Asked without `ns`, a node takes `team/big` as a docker.io repository.
    let layer = image::write_image(dir.path(), "docker.io/team/big:1", &[LAYER], seed).unwrap();
    let upstream = start_node(block, 3, dir.path(), &[]);
    let throttle = Throttle::start(block.addr(4, REGISTRY_PORT), upstream.registry, RATE).await;
    let flags = ["--in-flight-stall-timeout".to_owned(), STALL.to_owned()];
    let node_a = node_on(block, 1, &ctd_a, &flags);
    let node_b = node_after_1(block, 2, &ctd_b);
    write_hosts(&ctd_a.certs_dir(), throttle.addr(), &node_a);
    write_hosts(&ctd_b.certs_dir(), throttle.addr(), &node_b);
    wait_state(&node_b, "connected", Duration::from_secs(15)).await;
    Some(Storm {
        name: format!("{}/team/big:1", throttle.addr()),
        ctd_a,
        ctd_b,
        node_a,
        node_b,
        throttle,
        layer,
        _upstream: (upstream, dir),
    })
}

impl Storm {
    fn layer_size(&self) -> u64 {
        self.layer.layers[0].size
    }

    /// Starts A's CRI pull and waits until A downloads the layer from upstream, its download
    /// advertised.
    async fn a_downloading(&self) -> tokio::task::JoinHandle<Result<String, tonic::Status>> {
        let (socket, name) = (self.ctd_a.socket(), self.name.clone());
        let pull = tokio::spawn(async move { cri_pull(&socket, &name).await });
        eventually(
            Duration::from_secs(30),
            "A downloading the layer",
            || async {
                let m = scrape(self.node_a.metrics).await;
                let upstream = value(
                    &m,
                    r#"speil_in_flight_decisions_total{decision="upstream"}"#,
                );
                (upstream >= 1.0 && self.throttle.sent() > 2 << 20).then_some(())
            },
        )
        .await;
        pull
    }

    /// The layer's bytes in B's content store match its digest.
    fn b_holds_the_layer(&self) {
        let digest = &self.layer.layers[0].digest;
        let path = self
            .ctd_b
            .content_path()
            .join("blobs")
            .join(digest.blob_path());
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&Digest::sha256_of(&bytes), digest);
    }
}

on_each_containerd!(
    a_node_takes_a_layer_from_another_nodes_download_under_way,
    a_download_that_dies_midway_leaves_the_other_pull_to_finish_upstream,
);

async fn a_node_takes_a_layer_from_another_nodes_download_under_way(version: Version) {
    let Some(s) = storm(version, 81).await else {
        return;
    };
    let pull_a = s.a_downloading().await;
    let socket_b = s.ctd_b.socket();
    tokio::time::timeout(Duration::from_secs(120), cri_pull(&socket_b, &s.name))
        .await
        .expect("B's pull hung")
        .expect("B's CRI pull");
    pull_a.await.unwrap().expect("A's CRI pull");
    s.b_holds_the_layer();

    let mb = scrape(s.node_b.metrics).await;
    assert_eq!(
        value(&mb, r#"speil_in_flight_decisions_total{decision="joined"}"#),
        1.0,
        "{mb}"
    );
    assert!(value(&mb, r#"speil_mirror_bytes_total{source="peer"}"#) >= s.layer_size() as f64);
    let ma = scrape(s.node_a.metrics).await;
    assert!(
        value(&ma, r#"speil_mirror_bytes_total{source="in_flight"}"#) >= s.layer_size() as f64,
        "{ma}"
    );
    // The upstream sent the layer once (and the small manifest and config twice), not twice.
    let sent = s.throttle.sent();
    assert!(
        sent < s.layer_size() * 3 / 2,
        "the upstream sent {sent} bytes for a layer of {}",
        s.layer_size()
    );
}

async fn a_download_that_dies_midway_leaves_the_other_pull_to_finish_upstream(version: Version) {
    let Some(mut s) = storm(version, 82).await else {
        return;
    };
    let pull_a = s.a_downloading().await;
    let pull_b = tokio::spawn({
        let (socket, name) = (s.ctd_b.socket(), s.name.clone());
        async move { cri_pull(&socket, &name).await }
    });
    eventually(
        Duration::from_secs(30),
        "B streaming A's download",
        || async {
            let m = scrape(s.node_a.metrics).await;
            (value(&m, r#"speil_mirror_bytes_total{source="in_flight"}"#) > 0.0).then_some(())
        },
    )
    .await;
    // A's containerd dies: its download stops growing, and A's node ends B's stream.
    s.ctd_a.stop();
    pull_a.abort();
    tokio::time::timeout(Duration::from_secs(120), pull_b)
        .await
        .expect("B's pull hung")
        .unwrap()
        .expect("B's CRI pull");
    s.b_holds_the_layer();
    let ma = scrape(s.node_a.metrics).await;
    assert!(
        value(
            &ma,
            r#"speil_in_flight_ended_early_total{reason="stalled"}"#
        ) >= 1.0,
        "{ma}"
    );
}
