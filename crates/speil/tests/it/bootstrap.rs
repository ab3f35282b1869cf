//! Bootstrap and P2P routing with real processes: nodes on their own loopback IPs with the same
//! ports (like pods), a real DNS server (dnsmasq), and lookups through `/debug/lookup`.

use std::net::IpAddr;
use std::time::Duration;

use test_support::dns::Dnsmasq;
use test_support::eventually;
use test_support::http::get;
use test_support::image;
use test_support::metrics::{lookup, scrape, status, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::process::Node;

use crate::cluster::{NAME, assert_quiet, dns_flags, empty_layout, start_node, wait_state};

#[tokio::test]
async fn five_nodes_find_each_other_by_dns_and_never_dial_themselves() {
    let block = Block::random();
    let ips: Vec<IpAddr> = (1..=5).map(|n| block.ip(n)).collect();
    let Some(dns) = Dnsmasq::start(block.addr(53, 53), NAME, &ips) else {
        return;
    };

    let dirs: Vec<tempfile::TempDir> = (0..5).map(|_| empty_layout()).collect();
    let first =
        image::write_image(dirs[0].path(), "example.com/team/first:1.0", &[1000], 21).unwrap();
    let last =
        image::write_image(dirs[4].path(), "example.com/team/last:2.0", &[1000], 22).unwrap();
    let nodes: Vec<Node> = (1..=5u8)
        .map(|n| start_node(block, n, dirs[n as usize - 1].path(), &dns_flags(&dns)))
        .collect();

    for node in &nodes {
        wait_state(node, "connected", Duration::from_secs(20)).await;
    }

    // A key advertised on node 1 is found from node 5, and the other way round.
    let digest = first.top.digest.to_string();
    let (n1, n5) = (&nodes[0], &nodes[4]);
    eventually(
        Duration::from_secs(15),
        "node 5 finding node 1's image",
        || async {
            lookup(n5.metrics, &digest)
                .await
                .contains(&n1.peer_id)
                .then_some(())
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "node 1 finding node 5's tag",
        || async {
            lookup(n1.metrics, "example.com/team/last:2.0")
                .await
                .contains(&n5.peer_id)
                .then_some(())
        },
    )
    .await;
    let layer = last.layers[0].digest.to_string();
    let found = lookup(nodes[2].metrics, &layer).await;
    assert_eq!(
        found,
        vec![n5.peer_id.clone()],
        "only the holder, never the asking node"
    );

    for node in &nodes {
        let m = scrape(node.metrics).await;
        assert_eq!(
            value(&m, "speil_p2p_self_dials_total"),
            0.0,
            "{}",
            node.registry
        );
        assert!(
            value(&m, r#"speil_bootstrap_candidates_total{outcome="self"}"#) >= 1.0,
            "node {} never dropped its own address:\n{m}",
            node.registry
        );
        assert_eq!(
            value(&m, r#"speil_bootstrap_state{state="connected"}"#),
            1.0
        );
        assert_eq!(get(&format!("{}/readyz", node.url())).await.status, 200);
    }
    assert_quiet(&nodes.iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn a_node_alone_in_dns_is_standalone_and_ready() {
    let block = Block::random();
    let Some(dns) = Dnsmasq::start(block.addr(53, 53), NAME, &[block.ip(1)]) else {
        return;
    };
    let dir = empty_layout();
    let node = start_node(block, 1, dir.path(), &dns_flags(&dns));
    wait_state(&node, "standalone", Duration::from_secs(5)).await;
    assert_eq!(get(&format!("{}/readyz", node.url())).await.status, 200);
    let m = scrape(node.metrics).await;
    assert_eq!(
        value(&m, r#"speil_bootstrap_candidates_total{outcome="self"}"#),
        value(
            &m,
            "speil_bootstrap_rounds_total{result=\"no_other_nodes\"}"
        )
    );
    assert_eq!(value(&m, "speil_p2p_self_dials_total"), 0.0);
    // A few more rounds pass without a word above INFO.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_quiet(&[&node]);
}

#[tokio::test]
async fn unreachable_candidates_make_a_node_isolated_until_a_real_peer_appears() {
    let block = Block::random();
    let listed = [block.ip(1), block.ip(2), block.ip(3)];
    let Some(dns) = Dnsmasq::start(block.addr(53, 53), NAME, &listed) else {
        return;
    };
    let dir = empty_layout();
    let node = start_node(block, 1, dir.path(), &dns_flags(&dns));
    wait_state(&node, "isolated", Duration::from_secs(10)).await;
    let r = get(&format!("{}/readyz", node.url())).await;
    assert_eq!(r.status, 503);
    assert!(String::from_utf8_lossy(&r.body).contains("isolated"));

    // After the start-up grace, one WARN line per failed round.
    let all_failed = r#"speil_bootstrap_rounds_total{result="all_failed"}"#;
    let first = eventually(Duration::from_secs(30), "the first WARN", || async {
        let warns = node.lines_at("WARN");
        let rounds = value(&scrape(node.metrics).await, all_failed);
        (!warns.is_empty()).then_some((warns, rounds))
    })
    .await;
    assert!(
        first.0[0].contains("no candidate node could be reached"),
        "{}",
        first.0[0]
    );
    assert!(
        first.0[0].contains("Connection refused"),
        "the WARN names the reasons: {}",
        first.0[0]
    );
    let (warns, rounds) = eventually(Duration::from_secs(40), "another failed round", || async {
        let rounds = value(&scrape(node.metrics).await, all_failed);
        (rounds > first.1).then_some((node.lines_at("WARN"), rounds))
    })
    .await;
    assert_eq!(
        warns.len() - first.0.len(),
        (rounds - first.1) as usize,
        "{}",
        warns.join("\n")
    );
    assert!(
        node.lines_at("ERROR").is_empty(),
        "no ERROR before --bootstrap-error-after"
    );

    // A real node appears at a listed address (it does not dial anyone itself).
    let other_dir = empty_layout();
    let other = start_node(block, 2, other_dir.path(), &[]);
    wait_state(&node, "connected", Duration::from_secs(40)).await;
    assert_eq!(get(&format!("{}/readyz", node.url())).await.status, 200);
    assert_eq!(
        value(&scrape(other.metrics).await, "speil_p2p_self_dials_total"),
        0.0
    );
}

#[tokio::test]
async fn a_dns_outage_is_discovery_failed_and_heals_without_a_restart() {
    let block = Block::random();
    let Some(mut dns) = Dnsmasq::start(block.addr(53, 53), NAME, &[block.ip(1)]) else {
        return;
    };
    let dir = empty_layout();
    let mut flags = dns_flags(&dns);
    flags.extend(["--bootstrap-error-after".to_owned(), "3s".to_owned()]);
    let node = start_node(block, 1, dir.path(), &flags);
    wait_state(&node, "standalone", Duration::from_secs(5)).await;

    dns.stop();
    wait_state(&node, "discovery_failed", Duration::from_secs(15)).await;
    assert_eq!(get(&format!("{}/readyz", node.url())).await.status, 503);
    let last_round = &status(node.metrics).await["bootstrap"]["last_round"];
    assert!(
        last_round["discovery_error"]
            .as_str()
            .unwrap_or_default()
            .contains(NAME),
        "{last_round}"
    );
    // Past --bootstrap-error-after: exactly one ERROR line naming what to check.
    eventually(Duration::from_secs(15), "the ERROR line", || async {
        (!node.lines_at("ERROR").is_empty()).then_some(())
    })
    .await;

    dns.restart();
    wait_state(&node, "standalone", Duration::from_secs(40)).await;
    let errors = node.lines_at("ERROR");
    assert_eq!(errors.len(), 1, "{}", errors.join("\n"));
    assert!(
        errors[0].contains("--dns-bootstrap-domain"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_data_dir_keeps_the_peer_id_across_restarts() {
    let block = Block::random();
    let data = tempfile::tempdir().unwrap();
    let dir = empty_layout();
    let flags = vec![
        "--data-dir".to_owned(),
        data.path().join("state").display().to_string(),
    ];
    let first = start_node(block, 1, dir.path(), &flags).peer_id;
    let again = start_node(block, 1, dir.path(), &flags).peer_id;
    assert!(!first.is_empty());
    assert_eq!(first, again);
    let without = start_node(block, 1, dir.path(), &[]).peer_id;
    assert_ne!(first, without);
}

#[tokio::test]
async fn static_and_http_bootstrap_bring_two_nodes_together() {
    let block = Block::random();
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    let http_addr = block.addr(1, 5002);
    let first = start_node(
        block,
        1,
        d1.path(),
        &["--http-bootstrap-addr".into(), http_addr.to_string()],
    );

    let by_static = start_node(
        block,
        2,
        d2.path(),
        &[
            "--bootstrap-kind".into(),
            "static".into(),
            "--static-bootstrap-peers".into(),
            format!(
                "/ip4/{}/tcp/{ROUTER_PORT}/p2p/{}",
                block.ip(1),
                first.peer_id
            ),
        ],
    );
    wait_state(&by_static, "connected", Duration::from_secs(10)).await;

    let id = get(&format!("http://{http_addr}/id")).await.json();
    assert_eq!(id["id"], first.peer_id.as_str());
    let by_http = start_node(
        block,
        3,
        d3.path(),
        &[
            "--bootstrap-kind".into(),
            "http".into(),
            "--http-bootstrap-url".into(),
            format!("http://{http_addr}/id"),
        ],
    );
    wait_state(&by_http, "connected", Duration::from_secs(10)).await;
    wait_state(&first, "connected", Duration::from_secs(10)).await;
    assert_quiet(&[&first, &by_static, &by_http]);
}

#[tokio::test]
async fn a_restarted_node_rejoins_while_lookups_keep_working() {
    let block = Block::random();
    let ips: Vec<IpAddr> = (1..=3).map(|n| block.ip(n)).collect();
    let Some(dns) = Dnsmasq::start(block.addr(53, 53), NAME, &ips) else {
        return;
    };
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| empty_layout()).collect();
    let img = image::write_image(dirs[0].path(), "example.com/team/app:1.0", &[100], 23).unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut third_flags = dns_flags(&dns);
    third_flags.extend(["--data-dir".to_owned(), data.path().display().to_string()]);

    let n1 = start_node(block, 1, dirs[0].path(), &dns_flags(&dns));
    let n2 = start_node(block, 2, dirs[1].path(), &dns_flags(&dns));
    let n3 = start_node(block, 3, dirs[2].path(), &third_flags);
    for n in [&n1, &n2, &n3] {
        wait_state(n, "connected", Duration::from_secs(20)).await;
    }
    let key = img.top.digest.to_string();
    let holder = n1.peer_id.clone();
    eventually(
        Duration::from_secs(15),
        "node 2 finding node 1's image",
        || async {
            lookup(n2.metrics, &key)
                .await
                .contains(&holder)
                .then_some(())
        },
    )
    .await;

    let third_id = n3.peer_id.clone();
    drop(n3);
    // Lookups keep working for the others while node 3 is gone.
    for _ in 0..5 {
        assert!(lookup(n2.metrics, &key).await.contains(&holder));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let n3 = start_node(block, 3, dirs[2].path(), &third_flags);
    assert_eq!(n3.peer_id, third_id);
    wait_state(&n3, "connected", Duration::from_secs(20)).await;
    eventually(
        Duration::from_secs(15),
        "the restarted node finding node 1's image",
        || async {
            lookup(n3.metrics, &key)
                .await
                .contains(&holder)
                .then_some(())
        },
    )
    .await;
    for n in [&n1, &n2, &n3] {
        assert_eq!(
            value(&scrape(n.metrics).await, "speil_p2p_self_dials_total"),
            0.0
        );
    }
}

/// The README's two-node demo: a node on 127.0.0.1 and one on another loopback IP with the same
/// router port. Dialing from the listen port would make the second connect to itself.
#[tokio::test]
async fn a_node_on_127_0_0_1_is_reachable_from_another_loopback_ip_on_the_same_port() {
    let (d1, d2) = (empty_layout(), empty_layout());
    let first = crate::cli::node(d1.path());
    // The bound router address, from the start line.
    let router = first
        .log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["message"] == "speil started")
        .and_then(|v| v["router"].as_str().map(str::to_owned))
        .unwrap();
    let port: u16 = router.rsplit('/').next().unwrap().parse().unwrap();
    let block = Block::random();
    let second = Node::start(
        crate::cluster::speil(),
        &[
            "--oci-dir",
            d2.path().to_str().unwrap(),
            "--registry-addr",
            &block.addr(2, 0).to_string(),
            "--metrics-addr",
            &block.addr(2, 0).to_string(),
            "--router-addr",
            &block.addr(2, port).to_string(),
            "--bootstrap-kind",
            "static",
            "--static-bootstrap-peers",
            &router,
        ],
    );
    wait_state(&second, "connected", Duration::from_secs(10)).await;
    wait_state(&first, "connected", Duration::from_secs(10)).await;
    assert_eq!(
        value(&scrape(second.metrics).await, "speil_p2p_self_dials_total"),
        0.0
    );
}
