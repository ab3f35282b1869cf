//! The address guard seen from outside: bootstrap candidates at addresses no node should be
//! reached at are never dialed, the round says why, and `--peer-cidrs` narrows the rest.

use std::time::Duration;

use test_support::eventually;
use test_support::metrics::{scrape, status, value};
use test_support::net::{Block, ROUTER_PORT};

use crate::cluster::{empty_layout, start_node, wait_state};

fn refused(text: &str, reason: &str) -> f64 {
    value(
        text,
        &format!("speil_p2p_addresses_refused_total{{reason=\"{reason}\"}}"),
    )
}

#[tokio::test]
async fn candidates_at_guarded_addresses_are_never_dialed_and_the_round_says_why() {
    let block = Block::random();
    let (d1, d2) = (empty_layout(), empty_layout());
    let real = start_node(block, 2, d2.path(), &[]);
    let peers = [
        "/ip4/169.254.169.254/tcp/80".to_owned(),
        "/ip4/0.0.0.0/tcp/5001".to_owned(),
        "/ip4/224.0.0.1/tcp/5001".to_owned(),
        "/ip6/fe80::1/tcp/5001".to_owned(),
        // A real node, but outside --peer-cidrs.
        format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(2)),
    ];
    let flags = [
        "--bootstrap-kind".to_owned(),
        "static".to_owned(),
        "--static-bootstrap-peers".to_owned(),
        peers.join(","),
        "--peer-cidrs".to_owned(),
        format!("{}/32", block.ip(3)),
    ];
    let node = start_node(block, 1, d1.path(), &flags);
    wait_state(&node, "isolated", Duration::from_secs(10)).await;
    let failures = eventually(Duration::from_secs(10), "a finished round", || async {
        let round = status(node.metrics).await["bootstrap"]["last_round"].clone();
        (round["failed"] == 5).then_some(round["failures"].to_string())
    })
    .await;
    for reason in [
        "a link-local address",
        "an unspecified address",
        "a multicast address",
        "outside --peer-cidrs",
    ] {
        assert!(
            failures.contains(&format!("refused by the address guard: {reason}")),
            "{reason}: {failures}"
        );
    }
    let text = scrape(node.metrics).await;
    assert!(refused(&text, "link_local") >= 2.0, "{text}");
    assert!(refused(&text, "unspecified") >= 1.0);
    assert!(refused(&text, "multicast") >= 1.0);
    assert!(refused(&text, "outside_peer_cidrs") >= 1.0);
    // The real node outside --peer-cidrs never saw a connection from it.
    let real_text = scrape(real.metrics).await;
    assert_eq!(
        value(&real_text, "speil_p2p_connected_peers"),
        0.0,
        "{real_text}"
    );
}

#[tokio::test]
async fn peer_cidrs_that_name_the_node_network_let_nodes_connect() {
    let block = Block::random();
    let (d1, d2) = (empty_layout(), empty_layout());
    let first = start_node(block, 1, d1.path(), &[]);
    let flags = [
        "--bootstrap-kind".to_owned(),
        "static".to_owned(),
        "--static-bootstrap-peers".to_owned(),
        format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(1)),
        "--peer-cidrs".to_owned(),
        format!("{}/24", block.ip(1)),
    ];
    let second = start_node(block, 2, d2.path(), &flags);
    wait_state(&second, "connected", Duration::from_secs(10)).await;
    wait_state(&first, "connected", Duration::from_secs(10)).await;
}
