//! The private network (`speil run --p2p-psk-file`) with real nodes: nodes with the same key
//! connect and mirror as before; nodes with different keys, or with and without a key, never
//! connect, the dialing node is `isolated` with a reason that names the flag, and the WARN line
//! that says what to check comes once per address, not once per retry round; a malformed key
//! file is refused at start without showing it.

use std::path::Path;
use std::time::Duration;

use test_support::eventually;
use test_support::image;
use test_support::metrics::{scrape, status, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::prereq::require;
use test_support::process::Node;

use crate::cluster::{blobs_in, empty_layout, sorted, start_node, wait_provider, wait_state};

/// A key file in the swarm.key format, 32 bytes of `byte`, as a Secret mounts it.
fn key_file(dir: &Path, name: &str, byte: u8) -> String {
    let path = dir.join(name);
    let hex: String = format!("{byte:02x}").repeat(32);
    std::fs::write(&path, format!("/key/swarm/psk/1.0.0/\n/base16/\n{hex}\n")).unwrap();
    path.display().to_string()
}

fn psk(file: &str) -> Vec<String> {
    vec!["--p2p-psk-file".into(), file.into()]
}

/// Flags that bootstrap to node `n` of `block`.
fn to_node(block: Block, n: u8) -> Vec<String> {
    vec![
        "--bootstrap-kind".into(),
        "static".into(),
        "--static-bootstrap-peers".into(),
        format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(n)),
    ]
}

fn address_of(block: Block, n: u8) -> String {
    format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(n))
}

/// The reasons of the last bootstrap round of `node`.
async fn failures(node: &Node) -> String {
    status(node.metrics).await["bootstrap"]["last_round"]["failures"].to_string()
}

/// Waits until `node` has run `rounds` bootstrap rounds in which every dial failed.
async fn wait_failed_rounds(node: &Node, rounds: f64) {
    eventually(Duration::from_secs(30), "failed rounds", || async {
        let m = scrape(node.metrics).await;
        (value(&m, r#"speil_bootstrap_rounds_total{result="all_failed"}"#) >= rounds).then_some(())
    })
    .await;
}

fn warn_lines_with(node: &Node, text: &str) -> Vec<String> {
    node.lines_at("WARN")
        .into_iter()
        .filter(|l| l.contains(text))
        .collect()
}

#[tokio::test]
async fn nodes_with_the_same_key_connect_and_mirror_as_before() {
    let Some(skopeo) = require("skopeo", "skopeo") else {
        return;
    };
    let block = Block::random();
    let (d1, d2) = (empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/team/app:1.0", &[300_000], 51).unwrap();
    let key = key_file(d1.path(), "swarm.key", 0x5a);
    let holder = start_node(block, 1, d1.path(), &psk(&key));
    let asker = start_node(
        block,
        2,
        d2.path(),
        &[psk(&key), to_node(block, 1)].concat(),
    );
    wait_state(&asker, "connected", Duration::from_secs(20)).await;
    wait_provider(&asker, "example.com/team/app:1.0", &holder).await;

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    crate::cluster::skopeo_copy(
        &skopeo,
        &format!("docker://{}/example.com/team/app:1.0", asker.registry),
        &dest,
        false,
    );
    assert_eq!(blobs_in(&dest), sorted(img.digests.clone()));
    let m = scrape(asker.metrics).await;
    assert!(
        value(&m, r#"speil_mirror_bytes_total{source="peer"}"#) >= 300_000.0,
        "{m}"
    );
    for n in [&holder, &asker] {
        let doc = status(n.metrics).await;
        assert_eq!(doc["node"]["private_network"], true, "{doc}");
        assert!(!doc.to_string().contains(&"5a".repeat(32)), "{doc}");
    }
    crate::cluster::assert_quiet(&[&holder, &asker]);
}

#[tokio::test]
async fn nodes_with_different_keys_never_connect() {
    let block = Block::random();
    let (d1, d2) = (empty_layout(), empty_layout());
    let ours = key_file(d1.path(), "ours.key", 0x11);
    let theirs = key_file(d2.path(), "theirs.key", 0x22);
    let listener = start_node(block, 1, d1.path(), &psk(&ours));
    let dialer = start_node(
        block,
        2,
        d2.path(),
        &[psk(&theirs), to_node(block, 1)].concat(),
    );
    wait_state(&dialer, "isolated", Duration::from_secs(20)).await;
    // Several retry rounds: the WARN line stays one.
    wait_failed_rounds(&dialer, 4.0).await;

    let why = failures(&dialer).await;
    assert!(why.contains("--p2p-psk-file"), "{why}");
    let addr = address_of(block, 1);
    let warned = warn_lines_with(&dialer, &format!("the handshake with {addr} failed"));
    assert_eq!(warned.len(), 1, "once per address: {warned:#?}");
    assert!(
        warned[0].contains("is --p2p-psk-file the same key on every node?"),
        "{}",
        warned[0]
    );
    let heard = warn_lines_with(&listener, "without this private network's key");
    assert_eq!(heard.len(), 1, "the listener says so once too: {heard:#?}");
    for n in [&listener, &dialer] {
        assert_eq!(status(n.metrics).await["peers"]["connected"], 0);
        let log = n.log.lock().unwrap().join("\n");
        assert!(!log.contains(&"11".repeat(32)) && !log.contains(&"22".repeat(32)));
    }
}

#[tokio::test]
async fn a_node_without_a_key_and_a_node_with_one_never_connect_either_way() {
    let block = Block::random();
    let dirs: Vec<_> = (0..4).map(|_| empty_layout()).collect();
    let key = key_file(dirs[0].path(), "swarm.key", 0x33);
    // A node without a key dials one with it.
    let keyed = start_node(block, 1, dirs[0].path(), &psk(&key));
    let open_dialer = start_node(block, 2, dirs[1].path(), &to_node(block, 1));
    // A node with the key dials one without.
    let open = start_node(block, 3, dirs[2].path(), &[]);
    let keyed_dialer = start_node(
        block,
        4,
        dirs[3].path(),
        &[psk(&key), to_node(block, 3)].concat(),
    );

    wait_state(&open_dialer, "isolated", Duration::from_secs(20)).await;
    wait_state(&keyed_dialer, "isolated", Duration::from_secs(20)).await;
    wait_failed_rounds(&keyed_dialer, 2.0).await;
    let why = failures(&keyed_dialer).await;
    assert!(why.contains("no private network handshake"), "{why}");
    let warned = warn_lines_with(
        &keyed_dialer,
        &format!("the handshake with {} failed", address_of(block, 3)),
    );
    assert_eq!(warned.len(), 1, "{warned:#?}");
    for n in [&keyed, &open_dialer, &open, &keyed_dialer] {
        assert_eq!(
            status(n.metrics).await["peers"]["connected"],
            0,
            "{}",
            n.registry
        );
    }
    assert_eq!(status(open.metrics).await["node"]["private_network"], false);
    // The keyed node warns when the other's bytes reached it before it gave up on the
    // connection (a race with the other side closing); never more than once.
    let heard = warn_lines_with(&keyed, "without this private network's key");
    assert!(heard.len() <= 1, "{heard:#?}");
    let why = failures(&open_dialer).await;
    assert!(why.contains(&address_of(block, 1)), "{why}");
}

#[test]
fn a_malformed_key_file_is_refused_naming_the_flag_and_file_not_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swarm.key");
    std::fs::write(
        &file,
        "/key/swarm/psk/1.0.0/\n/base16/\ntopsecretkeymaterial\n",
    )
    .unwrap();
    crate::cli::assert_file_refused("--p2p-psk-file", &file, "64 hex digits", "topsecret");
}
