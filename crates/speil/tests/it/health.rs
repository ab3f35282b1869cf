//! Health that tells the truth, with real nodes and dnsmasq: peers that die (SIGKILL) or hang
//! (SIGSTOP: connections stay open, nothing answers) are noticed within seconds, a stopped
//! holder of an image costs a pull at most one dial, a wrong DNS name is not called healthy, a
//! range past the end through the mirror is a 416.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use test_support::dns::Dnsmasq;
use test_support::http::{get, request};
use test_support::image;
use test_support::net::Block;
use test_support::prereq::require;
use test_support::process::{Node, Sig};

use crate::cluster::{
    NAME, blobs_in, cluster, dns_for, empty_layout, skopeo_copy, sorted, start_node, state_of,
    wait_provider, wait_state,
};
use crate::status::{addr_of, status};

async fn readyz(node: &Node) -> u16 {
    get(&format!("{}/readyz", node.url())).await.status.as_u16()
}

#[tokio::test]
async fn a_node_whose_peers_were_killed_says_isolated_and_recovers() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let dirs = [empty_layout(), empty_layout(), empty_layout()];
    let paths: Vec<&std::path::Path> = dirs.iter().map(|d| d.path()).collect();
    let mut nodes = cluster(block, &dns, &paths, &[]).await;
    let survivor = nodes.remove(0);
    let killed: Vec<String> = nodes.iter().map(|n| n.peer_id.clone()).collect();
    for n in &nodes {
        n.guard.signal(Sig::SIGKILL);
    }
    wait_state(&survivor, "isolated", Duration::from_secs(15)).await;
    assert_eq!(readyz(&survivor).await, 503);
    let run = status(&["--addr", &addr_of(&survivor)]);
    let (code, text) = (run.code, run.stdout);
    assert_eq!(code, 2, "{text}");
    assert!(
        text.contains("fail  bootstrap") && text.contains("none could be reached"),
        "{text}"
    );
    assert!(
        text.contains("fix: check that the other nodes run"),
        "{text}"
    );
    let peers = text
        .lines()
        .find(|l| l.contains("peers"))
        .unwrap_or_default();
    assert!(
        peers.contains("0 connected") && killed.iter().any(|id| peers.contains(id.as_str())),
        "the peers line names the last peer lost: {text}"
    );

    // One comes back on its address: connected again.
    drop(nodes);
    let again = start_node(block, 2, dirs[1].path(), &crate::cluster::dns_flags(&dns));
    wait_state(&survivor, "connected", Duration::from_secs(10)).await;
    assert_eq!(readyz(&survivor).await, 200);
    drop(again);
}

#[tokio::test]
async fn a_node_whose_peers_hang_says_isolated_and_recovers() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let dirs = [empty_layout(), empty_layout(), empty_layout()];
    let paths: Vec<&std::path::Path> = dirs.iter().map(|d| d.path()).collect();
    let nodes = cluster(block, &dns, &paths, &[]).await;
    for n in &nodes[1..] {
        n.guard.signal(Sig::SIGSTOP);
    }
    // With the default pings (every 5 s, two unanswered for 5 s each): about 22 s.
    wait_state(&nodes[0], "isolated", Duration::from_secs(30)).await;
    assert_eq!(readyz(&nodes[0]).await, 503);
    for n in &nodes[1..] {
        n.guard.signal(Sig::SIGCONT);
    }
    wait_state(&nodes[0], "connected", Duration::from_secs(30)).await;
}

/// Connections waiting in the accept queue of the listener at `addr` (a stopped process accepts
/// none, so each connection made to it stays there).
fn accept_queue(addr: SocketAddr) -> usize {
    let out = Command::new("ss")
        .args(["-ltnH", &format!("src {addr}")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter_map(|q| q.parse::<usize>().ok())
        .sum()
}

#[tokio::test]
async fn a_stopped_holder_costs_a_pull_at_most_one_dial() {
    let Some(skopeo) = require("skopeo", "skopeo") else {
        return;
    };
    require("ss", "iproute2");
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    let reference = "example.com/team/held-twice:1.0";
    let img = image::write_image(d1.path(), reference, &[400_000, 300_000, 2000], 41).unwrap();
    image::write_image(d2.path(), reference, &[400_000, 300_000, 2000], 41).unwrap();
    let nodes = cluster(block, &dns, &[d1.path(), d2.path(), d3.path()], &[]).await;
    let (n1, n2, n3) = (&nodes[0], &nodes[1], &nodes[2]);
    wait_provider(n3, reference, n1).await;
    wait_provider(n3, reference, n2).await;

    n2.guard.signal(Sig::SIGSTOP);
    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("image");
    skopeo_copy(
        &skopeo,
        &format!("docker://{}/{reference}", n3.registry),
        &dest,
        false,
    );
    assert_eq!(blobs_in(&dest), sorted(img.digests.clone()));
    let dials = accept_queue(n2.registry);
    n2.guard.signal(Sig::SIGCONT);
    assert!(dials <= 1, "the stopped holder was dialed {dials} times");
}

#[tokio::test]
async fn a_range_past_the_end_through_the_mirror_is_416() {
    let block = Block::random();
    let Some(dns) = dns_for(block, 2) else { return };
    let (d1, d2) = (empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/team/app:1.0", &[1000], 42).unwrap();
    let nodes = cluster(block, &dns, &[d1.path(), d2.path()], &[]).await;
    let digest = img.layers[0].digest.to_string();
    wait_provider(&nodes[1], &digest, &nodes[0]).await;
    let path = format!("/v2/team/app/blobs/{digest}?ns=example.com");
    let local = request(
        http::Method::GET,
        &format!("{}{path}", nodes[0].url()),
        &[("range", "bytes=5000-")],
    )
    .await;
    let mirrored = request(
        http::Method::GET,
        &format!("{}{path}", nodes[1].url()),
        &[("range", "bytes=5000-")],
    )
    .await;
    for r in [&local, &mirrored] {
        assert_eq!(r.status, 416);
        assert_eq!(
            r.header("content-range"),
            format!("bytes */{}", img.layers[0].size)
        );
    }
    assert_eq!(mirrored.oci_code(), local.oci_code());
}

#[tokio::test]
async fn a_dns_name_that_lists_nobody_is_not_called_healthy() {
    let block = Block::random();
    let Some(dns) = Dnsmasq::start(block.addr(53, 53), NAME, &[block.ip(1)]) else {
        return;
    };
    let dir = empty_layout();
    let typo = "speil-nodse.test";
    let mut flags = crate::cluster::dns_flags(&dns);
    flags[3] = typo.to_owned();
    let node = start_node(block, 1, dir.path(), &flags);
    // Empty answers are expected for the first seconds of a node's life (its own record may lag).
    wait_state(&node, "unlisted", Duration::from_secs(25)).await;
    let run = status(&["--addr", &addr_of(&node)]);
    let (code, text) = (run.code, run.stdout);
    assert_eq!(code, 1, "{text}");
    let line = text.lines().find(|l| l.contains("bootstrap")).unwrap();
    assert!(
        line.starts_with("warn") && line.contains(typo) && line.contains(&dns.addr().to_string()),
        "{text}"
    );
    let warns = node.lines_at("WARN");
    assert_eq!(warns.len(), 1, "one WARN per change: {warns:#?}");
    assert!(warns[0].contains(typo), "{warns:#?}");
    // It still serves what it holds.
    assert_eq!(readyz(&node).await, 200);
    assert_eq!(state_of(&node).await, "unlisted");
}
