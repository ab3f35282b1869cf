//! The rogue peer of `test_support::rogue` against a real node (issue 13): without the private
//! network's key it is refused; with it, whatever it floods the node with (100,000 provider
//! records, answers naming 1,000 fake providers at addresses no node should be reached at,
//! thousands of listen addresses, hundreds of connections), the node never dials a guarded
//! address, dials no more providers per lookup than its limit, stays within its connection
//! limits and under 64 MiB, and keeps serving its own image throughout. What each attack costs
//! the node is printed.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use oci::Digest;
use test_support::eventually;
use test_support::http::get;
use test_support::image;
use test_support::metrics::{lookup, scrape, status, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::process::Node;
use test_support::rogue::{
    Answer, Config, DialBack, Identities, Multiaddr, Rogue, dht_key, fake_peers, swarm_key,
    tcp_addr,
};

use crate::cluster::{empty_layout, start_node};

/// The key every keyed node here uses.
const KEY: [u8; 32] = [0x5a; 32];

/// The most a node may hold under any of these attacks.
const RSS_MAX_KIB: u64 = 64 * 1024;

/// A node on `127.A.B.1` with the private network key `KEY`, `extra` flags and an image of its
/// own, whose digests (manifest first) are returned.
fn keyed_node(block: Block, dir: &Path, extra: &[&str]) -> (Node, Vec<Digest>) {
    let img = image::write_image(dir, "example.com/own:1", &[1 << 20], 5).unwrap();
    let key = dir.join("swarm.key");
    std::fs::write(&key, swarm_key(&KEY)).unwrap();
    let mut flags = vec!["--p2p-psk-file".to_owned(), key.display().to_string()];
    flags.extend(extra.iter().map(|f| (*f).to_owned()));
    (start_node(block, 1, dir, &flags), img.digests)
}

/// Pulls the node's own image over and over until stopped; fails the test if any pull failed.
struct KeepsServing {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<(u32, Vec<String>)>,
}

impl KeepsServing {
    fn start(node: &Node, digests: &[Digest]) -> KeepsServing {
        let stop = Arc::new(AtomicBool::new(false));
        let urls: Vec<(String, Digest)> = digests
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let kind = if i == 0 { "manifests" } else { "blobs" };
                let url = format!("{}/v2/own/{kind}/{d}?ns=example.com", node.url());
                (url, d.clone())
            })
            .collect();
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let (mut pulls, mut failures) = (0, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                for (url, digest) in &urls {
                    let r = get(url).await;
                    if r.status != 200 || Digest::sha256_of(&r.body) != *digest {
                        failures.push(format!("{url}: {}", r.status));
                    }
                }
                pulls += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            (pulls, failures)
        });
        KeepsServing { stop, task }
    }

    async fn finish(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (pulls, failures) = self.task.await.unwrap();
        assert!(pulls > 0, "no pull finished");
        assert!(failures.is_empty(), "{pulls} pulls, failed: {failures:#?}");
    }
}

fn router(block: Block) -> Multiaddr {
    tcp_addr(block.ip(1), ROUTER_PORT)
}

/// A rogue with `KEY`, connected to the node at `block`'s first address.
async fn rogue_on(block: Block) -> Rogue {
    let rogue = Rogue::start(Config {
        psk: Some(KEY),
        ..Config::default()
    });
    rogue.connect(router(block)).await.expect("the rogue joins");
    rogue
}

/// The node's resident set in KiB.
fn rss_kib(node: &Node) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{}/status", node.guard.id())).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// CPU seconds (user and system) process `pid` has used; `"self"` for this one.
fn cpu_secs(pid: &str) -> f64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The fields after the command name (in parentheses); utime and stime are 14th and 15th.
    let rest = &text[text.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

/// The sum of the series of `/metrics` whose line contains every one of `parts`.
fn sum_of(metrics: &str, parts: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && parts.iter().all(|p| l.contains(p)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The node's `/status` entry for `peer`.
async fn peer_entry(node: &Node, peer: &str) -> Option<serde_json::Value> {
    let doc = status(node.metrics).await;
    doc["peers"]["list"]
        .as_array()?
        .iter()
        .find(|p| p["id"] == peer)
        .cloned()
}

async fn connected_peers(node: &Node) -> u64 {
    status(node.metrics).await["peers"]["connected"]
        .as_u64()
        .unwrap_or(0)
}

#[tokio::test]
async fn the_rogue_joins_with_the_key_and_is_refused_without_it() {
    let block = Block::random();
    let dir = empty_layout();
    let (node, _) = keyed_node(block, dir.path(), &[]);
    for psk in [None, Some([0x11; 32])] {
        let outsider = Rogue::start(Config {
            psk,
            ..Config::default()
        });
        let refused = outsider.connect(router(block)).await;
        assert!(refused.is_err(), "psk {psk:?}: {refused:?}");
        assert_eq!(outsider.counters().failed, 1);
    }
    let rogue = rogue_on(block).await;
    let peer = rogue.peer_id().to_string();
    eventually(
        Duration::from_secs(10),
        "the node lists the rogue",
        || async {
            let entry = peer_entry(&node, &peer).await?;
            (entry["connected"] == true && entry["routing"] == true).then_some(())
        },
    )
    .await;
    assert_eq!(connected_peers(&node).await, 1);
    let c = rogue.counters();
    assert!(c.identify_requests >= 1, "{c:?}");
    assert_eq!((c.established, c.open, c.closed_by_node), (1, 1, 0));
    rogue.shutdown().await;
    eventually(Duration::from_secs(10), "the rogue gone", || async {
        (connected_peers(&node).await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_flood_of_provider_records_is_bounded_and_the_node_keeps_serving() {
    let block = Block::random();
    let dir = empty_layout();
    let (node, own) = keyed_node(block, dir.path(), &[]);
    let rogue = rogue_on(block).await;
    let serving = KeepsServing::start(&node, &own);
    let before = rss_kib(&node);
    let pid = node.guard.id().to_string();
    let cpu_before = cpu_secs(&pid);
    let started = Instant::now();
    let keys = rogue.publish_providers(100_000).await.unwrap();
    let read = |m: &str| sum_of(m, &["kad_inbound_requests", "AddProvider"]);
    eventually(Duration::from_secs(60), "100,000 records read", || async {
        (read(&scrape(node.metrics).await) >= 100_000.0).then_some(())
    })
    .await;
    let after = rss_kib(&node);
    eprintln!(
        "100,000 provider records read after {:?}, {:.1} s of the node's CPU; node RSS {before} \
         KiB before, {after} KiB after",
        started.elapsed(),
        cpu_secs(&pid) - cpu_before,
    );
    assert!(after < RSS_MAX_KIB, "{after} KiB");
    // One peer has records of at most 20,000 keys on a node; the rest were ignored.
    let peer = rogue.peer_id().to_string();
    assert!(lookup(node.metrics, &keys[0]).await.contains(&peer));
    assert!(!lookup(node.metrics, &keys[99_999]).await.contains(&peer));
    serving.finish().await;
}

/// 1,000 fake providers, each at one address `at(i)` chooses.
fn thousand_providers(at: impl Fn(usize) -> Multiaddr) -> Vec<test_support::rogue::FakePeer> {
    fake_peers(1000, |i| vec![at(i)])
}

/// An address no node may be reached at: link-local (with the metadata address), unspecified,
/// multicast, IPv6 link-local.
fn guarded(i: usize) -> Multiaddr {
    let low = (i % 250) as u8 + 1;
    match i % 4 {
        0 => tcp_addr(IpAddr::V4(Ipv4Addr::new(169, 254, 169, low)), 80),
        1 => tcp_addr(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 5001),
        2 => tcp_addr(IpAddr::V4(Ipv4Addr::new(239, 1, 1, low)), 5001),
        _ => tcp_addr("fe80::1".parse().unwrap(), 5001),
    }
}

/// The sum of `speil_p2p_addresses_refused_total` over its reasons, and of one `limit` of
/// `speil_p2p_limit_reached_total`.
async fn refused_and_limited(node: &Node, limit: &str) -> (f64, f64) {
    let text = scrape(node.metrics).await;
    let limited = format!("speil_p2p_limit_reached_total{{limit=\"{limit}\"}}");
    (
        sum_of(&text, &["speil_p2p_addresses_refused_total"]),
        value(&text, &limited),
    )
}

#[tokio::test]
async fn fake_providers_cost_a_lookup_at_most_its_dials_and_never_a_guarded_one() {
    let block = Block::random();
    let dir = empty_layout();
    let (node, own) = keyed_node(block, dir.path(), &["--p2p-max-dials-per-lookup", "3"]);
    let rogue = rogue_on(block).await;
    // Four more identities in the node's routing table: about 300 providers fit in one answer,
    // so the node would need to ask four of them to hear of all 1,000.
    let more = rogue.open_connections(4, Identities::Many).await;
    assert_eq!(more.established, 4, "{more:?}");
    eventually(
        Duration::from_secs(10),
        "five rogue peers routed",
        || async {
            let doc = status(node.metrics).await;
            (doc["peers"]["routing_table"].as_u64() >= Some(5)).then_some(())
        },
    )
    .await;
    let dial_back = DialBack::on_ports(IpAddr::V4(Ipv4Addr::LOCALHOST), 50)
        .await
        .unwrap();
    let serving = KeepsServing::start(&node, &own);

    // 1,000 providers at guarded addresses: the few dialed are refused before any packet.
    let content = "sha256:".to_owned() + &"ab".repeat(32);
    let answer = Answer::providers(thousand_providers(guarded))
        .for_key(dht_key(&content))
        .closer(fake_peers(30, |i| vec![guarded(i)]));
    rogue.set_answer(Some(answer));
    let before = refused_and_limited(&node, "dials_per_lookup").await;
    let found = lookup(node.metrics, &content).await;
    let after = refused_and_limited(&node, "dials_per_lookup").await;
    eprintln!("guarded providers: refused {before:?} -> {after:?}");
    assert!(found.is_empty(), "{found:?}");
    assert!((1.0..=3.0).contains(&(after.0 - before.0)), "{after:?}");
    assert!(after.1 > before.1, "the rest were not dialed");

    // 1,000 providers at loopback listeners and unroutable addresses: 3 dials at most.
    let listeners = dial_back.multiaddrs();
    let content = "sha256:".to_owned() + &"cd".repeat(32);
    let answer = Answer::providers(thousand_providers(|i| match i % 2 {
        0 => listeners[i / 2 % listeners.len()].clone(),
        _ => tcp_addr(
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1)),
            5001,
        ),
    }))
    .for_key(dht_key(&content));
    rogue.set_answer(Some(answer));
    let found = lookup(node.metrics, &content).await;
    let c = rogue.counters();
    eprintln!(
        "lookup: the node asked {} times for providers, heard of {} fake ones, returned {}; it \
         dialed the loopback listeners {} times",
        c.get_providers_requests,
        c.providers_sent,
        found.len(),
        dial_back.total(),
    );
    assert!(found.is_empty(), "fake providers never resolve: {found:?}");
    assert!(dial_back.total() <= 3, "{} dials", dial_back.total());
    serving.finish().await;
}

#[tokio::test]
async fn thousands_of_announced_addresses_leave_a_peer_its_newest_eight() {
    let block = Block::random();
    let dir = empty_layout();
    let (node, own) = keyed_node(block, dir.path(), &[]);
    let rogue = rogue_on(block).await;
    let serving = KeepsServing::start(&node, &own);
    let addrs: Vec<Multiaddr> = (0..3000u32)
        .map(|i| {
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, (i % 250) as u8 + 1));
            tcp_addr(ip, 10_000 + (i / 250) as u16)
        })
        .collect();
    let started = Instant::now();
    let pushes = rogue.announce_addresses(addrs.clone()).await.unwrap();
    assert_eq!(pushes.iter().sum::<usize>(), 3000);
    let pushed = started.elapsed();
    let peer = rogue.peer_id().to_string();
    // A peer keeps the first addresses of the newest push: the node has taken every push once
    // the last push's first address is among the rogue's.
    let last = addrs[pushes[..pushes.len() - 1].iter().sum::<usize>()].to_string();
    let listed = eventually(Duration::from_secs(60), "the last push", || async {
        let entry = peer_entry(&node, &peer).await?;
        let listed: Vec<String> = entry["addrs"]
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        listed.contains(&last).then_some(listed)
    })
    .await;
    eprintln!(
        "identify: {} pushes of up to {:?} addresses, sent in {pushed:?}, all taken after {:?}; \
         the node keeps {} addresses of the rogue",
        pushes.len(),
        pushes.iter().max(),
        started.elapsed(),
        listed.len()
    );
    assert!(listed.len() <= 8, "{listed:?}");
    let text = scrape(node.metrics).await;
    let limit = "speil_p2p_limit_reached_total{limit=\"addresses_per_peer\"}";
    assert!(value(&text, limit) > 0.0, "{text}");
    serving.finish().await;
}

#[tokio::test]
async fn hundreds_of_connections_stay_within_the_limits() {
    let block = Block::random();
    let dir = empty_layout();
    let limits = [
        "--p2p-max-connections",
        "100",
        "--p2p-max-connections-per-peer",
        "2",
    ];
    let (node, own) = keyed_node(block, dir.path(), &limits);
    let rogue = rogue_on(block).await;
    let serving = KeepsServing::start(&node, &own);
    let before = rss_kib(&node);
    let watch_node = async {
        let mut most = 0;
        for _ in 0..150 {
            most = most.max(connected_peers(&node).await);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        most
    };
    let attack = async {
        let many = rogue.open_connections(300, Identities::Many).await;
        let one = rogue.open_connections(100, Identities::One).await;
        (many, one)
    };
    let (most, (many, one)) = tokio::join!(watch_node, attack);
    let after = rss_kib(&node);
    let c = rogue.counters();
    eprintln!(
        "connections: 300 identities: {many:?}; 100 of one identity: {one:?}; the node \
         reported at most {most} connected peers; the rogue holds {} open; node RSS {before} \
         KiB before, {after} KiB after",
        c.open
    );
    assert!(most <= 100, "{most} connected peers");
    assert!(c.open <= 100, "{c:?}");
    assert!(many.established + one.established >= 50, "{many:?} {one:?}");
    assert!(after < RSS_MAX_KIB, "{after} KiB");
    serving.finish().await;
}
