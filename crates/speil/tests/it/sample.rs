//! Bootstrap samples with real processes: a cluster larger than `--bootstrap-max-dials` keeps
//! far fewer connections than a full mesh once idle connections close, every node stays
//! connected, and every node still finds a holder; a connection closed for being idle hides no
//! holder's records. And the flag refuses a bad value by name.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::eventually;
use test_support::image;
use test_support::metrics::{scrape, status, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::process::Node;

use crate::cluster::{
    cluster, dns_for, empty_layout, speil, start_node, state_of, wait_provider, wait_state,
};

const NODES: u8 = 12;
const MAX_DIALS: usize = 3;

/// Peers each node has an open connection to, in node order.
async fn connected_peers(nodes: &[Node]) -> Vec<usize> {
    let mut counts = Vec::new();
    for n in nodes {
        let peers = &status(n.metrics).await["peers"]["connected"];
        counts.push(usize::try_from(peers.as_u64().unwrap_or(0)).unwrap_or(usize::MAX));
    }
    counts
}

#[tokio::test]
async fn a_cluster_keeps_a_sample_of_connections_and_every_node_still_finds_a_holder() {
    let block = Block::random();
    let Some(dns) = dns_for(block, NODES) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..NODES).map(|_| empty_layout()).collect();
    let img = image::write_image(dirs[0].path(), "example.com/app:1", &[1000], 31).unwrap();
    let paths: Vec<&Path> = dirs.iter().map(tempfile::TempDir::path).collect();
    let flags = ["--bootstrap-max-dials".to_owned(), MAX_DIALS.to_string()];
    let nodes = cluster(block, &dns, &paths, &flags).await;
    let (holder, others) = nodes.split_first().unwrap();
    let key = img.layers[0].digest.to_string();
    for n in others {
        wait_provider(n, &key, holder).await;
    }

    // A round dialed a sample, not every candidate: the summary says how many of the 12 listed.
    for n in &nodes {
        let round = status(n.metrics).await["bootstrap"]["last_round"].clone();
        assert_eq!(round["candidates"], u64::from(NODES), "{round}");
        let n_of = |field: &str| round[field].as_u64().unwrap();
        // Each failed dial, or one that reached this node itself, is replaced by another.
        let replaced = n_of("failed") + n_of("self_dropped") - 1;
        assert!(
            n_of("dialed") <= MAX_DIALS as u64 + replaced,
            "{}: {round}",
            n.registry
        );
    }

    // Once the connections the lookups opened are idle and closed, each node holds its own
    // sample and the samples of the nodes that chose it: a connection has two ends, so at most
    // 2 x MAX_DIALS per node on average, where a full mesh has NODES - 1 at every node.
    let full_mesh = usize::from(NODES) - 1;
    let counts = eventually(
        Duration::from_secs(45),
        "idle connections closed",
        || async {
            let counts = connected_peers(&nodes).await;
            let total: usize = counts.iter().sum();
            (total <= 2 * MAX_DIALS * usize::from(NODES) && counts.iter().all(|c| *c < full_mesh))
                .then_some(counts)
        },
    )
    .await;
    eprintln!("connected peers per node once idle: {counts:?}");

    // Still connected everywhere, and the holder is found from every node: no node hid its
    // records because a connection to it closed for being idle.
    for n in &nodes {
        assert_eq!(state_of(n).await, "connected", "{}", n.registry);
        let m = scrape(n.metrics).await;
        assert!(value(&m, "speil_p2p_kept_peers") >= 1.0, "{}", n.registry);
        assert_eq!(
            value(&m, "speil_p2p_hidden_providers"),
            0.0,
            "{} hides a live holder",
            n.registry
        );
    }
    for n in others {
        wait_provider(n, &key, holder).await;
    }
    for n in &nodes {
        assert!(n.lines_at("ERROR").is_empty(), "{}", n.registry);
    }
}

/// Whether `node` has a connection open to the node with peer id `peer`.
async fn connected_to(node: &Node, peer: &str) -> bool {
    let list = status(node.metrics).await["peers"]["list"].clone();
    list.as_array()
        .is_some_and(|l| l.iter().any(|p| p["id"] == peer && p["connected"] == true))
}

/// A holder and a seeker, each keeping only a connection to a third node: the connections
/// between them (the holder publishing to the seeker, the seeker looking up) are idle ones and
/// close, from either side. The seeker holds the holder's record, and keeps handing it out.
#[tokio::test]
async fn a_holder_whose_connection_closed_for_being_idle_is_still_found() {
    let block = Block::random();
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| empty_layout()).collect();
    let img = image::write_image(dirs[1].path(), "example.com/idle:1", &[1000], 32).unwrap();
    let hub = start_node(block, 1, dirs[0].path(), &[]);
    let to_hub = [
        "--bootstrap-kind".to_owned(),
        "static".to_owned(),
        "--static-bootstrap-peers".to_owned(),
        format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(1)),
        "--bootstrap-max-dials".to_owned(),
        "1".to_owned(),
    ];
    let holder = start_node(block, 2, dirs[1].path(), &to_hub);
    let debug = ["--log-level".to_owned(), "info,p2p=debug".to_owned()];
    let seeker = start_node(block, 3, dirs[2].path(), &[&to_hub[..], &debug].concat());
    for n in [&holder, &seeker] {
        wait_state(n, "connected", Duration::from_secs(20)).await;
    }
    let key = img.layers[0].digest.to_string();
    wait_provider(&seeker, &key, &holder).await;

    // The idle timeout is 10 s; a dial back after an unsure close adds another 10 s.
    eventually(
        Duration::from_secs(60),
        "holder and seeker no longer connected",
        || async {
            let apart = !connected_to(&seeker, &holder.peer_id).await
                && !connected_to(&holder, &seeker.peer_id).await;
            apart.then_some(())
        },
    )
    .await;
    let closes: Vec<String> = seeker
        .lines_at("DEBUG")
        .into_iter()
        .filter(|l| l.contains("connection closed") && l.contains(&holder.peer_id))
        .collect();
    eprintln!("{}", closes.join("\n"));
    assert!(
        !closes.is_empty(),
        "the seeker never had a connection to the holder close"
    );
    for n in [&hub, &holder, &seeker] {
        let m = scrape(n.metrics).await;
        assert_eq!(
            value(&m, "speil_p2p_hidden_providers"),
            0.0,
            "{} hides a live holder",
            n.registry
        );
    }
    assert_eq!(state_of(&seeker).await, "connected");
    wait_provider(&seeker, &key, &holder).await;
}

#[test]
fn a_bad_bootstrap_max_dials_is_refused_by_name() {
    for bad in ["0", "many", "65536"] {
        let out = Command::new(speil())
            .args(["run", "--bootstrap-max-dials", bad])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--bootstrap-max-dials"), "{bad}: {stderr}");
    }
    let out = Command::new(speil())
        .args(["run"])
        .env("SPEIL_BOOTSTRAP_MAX_DIALS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--bootstrap-max-dials"));
}
