//! Enforced registry access (`speil run --basic-auth-file`) with real nodes, plain requests,
//! skopeo and containerd (1.6 and 2.x): a request without the cluster's credentials is refused
//! the way a registry asks for them, with them it is served, the probes stay open, containerd
//! sends them from the host files `speil configure --basic-auth-file` writes, and nodes mirror
//! from each other with them, while a node without them gets nothing from a node that has them.

use std::path::Path;
use std::process::Command;

use http::{Method, StatusCode};
use test_support::http::{get, request};
use test_support::image;
use test_support::metrics::{scrape, value};
use test_support::net::Block;
use test_support::prereq::require;

use test_support::containerd::{Containerd, Version};
use test_support::net::ROUTER_PORT;

use crate::cluster::{
    blobs_in, dns_flags, dns_for, empty_layout, sorted, start_node, wait_provider, wait_state,
};
use crate::containerd::{NAME, configure, cri_pull, import, node_on};

const CREDENTIALS: &str = "puller:s3cret:with:colons";
/// `Basic` and the base64 of [`CREDENTIALS`].
const HEADER: &str = "Basic cHVsbGVyOnMzY3JldDp3aXRoOmNvbG9ucw==";

/// A basic-auth file as a Secret mounts it (with a trailing newline).
fn auth_file(dir: &Path) -> String {
    let path = dir.join("basic-auth");
    std::fs::write(&path, format!("{CREDENTIALS}\n")).unwrap();
    path.display().to_string()
}

#[tokio::test]
async fn a_request_without_the_credentials_is_refused_as_a_registry_would() {
    let src = tempfile::tempdir().unwrap();
    let img = image::write_image(src.path(), "example.com/app:1", &[1000], 41).unwrap();
    let flags = ["--basic-auth-file".to_owned(), auth_file(src.path())];
    let node = start_node(Block::random(), 1, src.path(), &flags);
    let manifest = format!("http://{}/v2/app/manifests/1?ns=example.com", node.registry);

    for (what, headers) in [
        ("no credentials", vec![]),
        (
            "wrong password",
            vec![("authorization", "Basic cHVsbGVyOndyb25n")],
        ),
        (
            "another scheme",
            vec![("authorization", "Bearer cHVsbGVyOnMzY3JldA==")],
        ),
    ] {
        for url in [format!("http://{}/v2/", node.registry), manifest.clone()] {
            let r = request(Method::GET, &url, &headers).await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}: {url}");
            assert_eq!(r.header("www-authenticate"), r#"Basic realm="speil""#);
            assert_eq!(r.oci_code(), "UNAUTHORIZED", "{what}");
            assert!(
                !r.header("x-speil-peer-id").is_empty(),
                "the 401 still names the node"
            );
        }
    }
    // The kubelet's probes need no credentials.
    assert_eq!(
        get(&format!("http://{}/livez", node.registry)).await.status,
        StatusCode::OK
    );
    let ready = get(&format!("http://{}/readyz", node.registry)).await;
    assert_ne!(ready.status, StatusCode::UNAUTHORIZED);

    let auth = [("authorization", HEADER)];
    let r = request(Method::GET, &manifest, &auth).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.header("docker-content-digest"),
        img.top.digest.to_string()
    );
    let lower = HEADER.replacen("Basic", "basic", 1);
    let r = request(Method::HEAD, &manifest, &[("authorization", &lower)]).await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "the scheme is matched without regard to case"
    );

    let m = scrape(node.metrics).await;
    assert!(
        value(
            &m,
            r#"speil_http_requests_total{handler="manifests",method="GET",status="401"}"#
        ) >= 3.0,
        "refusals are counted: {m}"
    );
    let log = node.log.lock().unwrap().join("\n");
    assert!(
        !log.contains("s3cret") && !log.contains(&HEADER[6..]),
        "{log}"
    );
}

#[tokio::test]
async fn nodes_mirror_with_the_credentials_and_a_node_without_them_gets_nothing() {
    let Some(skopeo) = require("skopeo", "skopeo") else {
        return;
    };
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/team/app:1.0", &[300_000], 42).unwrap();
    let mut with_auth = dns_flags(&dns);
    with_auth.extend(["--basic-auth-file".to_owned(), auth_file(d1.path())]);
    let holder = start_node(block, 1, d1.path(), &with_auth);
    let asker = start_node(block, 2, d2.path(), &with_auth);
    // Without credentials, and quick to give up: it will find the holder and be refused.
    let mut without = dns_flags(&dns);
    without.extend(["--mirror-resolve-timeout".to_owned(), "2s".to_owned()]);
    let stranger = start_node(block, 3, d3.path(), &without);
    for n in [&holder, &asker, &stranger] {
        wait_state(n, "connected", std::time::Duration::from_secs(20)).await;
    }
    wait_provider(&asker, "example.com/team/app:1.0", &holder).await;
    wait_provider(&stranger, "example.com/team/app:1.0", &holder).await;

    let out = tempfile::tempdir().unwrap();
    let dest = out.path().join("app");
    let copied = Command::new(&skopeo)
        .args(["copy", "--src-tls-verify=false", "--src-creds", CREDENTIALS])
        .arg(format!(
            "docker://{}/example.com/team/app:1.0",
            asker.registry
        ))
        .arg(format!("oci:{}", dest.display()))
        .output()
        .unwrap();
    assert!(
        copied.status.success(),
        "{}",
        String::from_utf8_lossy(&copied.stderr)
    );
    assert_eq!(blobs_in(&dest), sorted(img.digests.clone()));
    let m = scrape(asker.metrics).await;
    assert!(
        value(&m, r#"speil_mirror_bytes_total{source="peer"}"#) >= 300_000.0,
        "{m}"
    );

    // The stranger's own registry is open, but the holder refuses the stranger's mirror.
    let r = get(&format!(
        "http://{}/v2/team/app/manifests/1.0?ns=example.com",
        stranger.registry
    ))
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    let m = scrape(stranger.metrics).await;
    assert_eq!(value(&m, r#"speil_mirror_bytes_total{source="peer"}"#), 0.0);
    assert!(
        value(&m, r#"speil_mirror_peer_failures_total{reason="status"}"#) >= 1.0,
        "the holder's 401 is a failed peer: {m}"
    );
}

#[test]
fn a_basic_auth_file_that_is_not_user_colon_password_is_refused_without_showing_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("auth");
    std::fs::write(&file, "only-a-secret-token\n").unwrap();
    crate::cli::assert_file_refused(
        "--basic-auth-file",
        &file,
        "user:password",
        "only-a-secret-token",
    );
    // A flag pointed at a large file (a log, a tarball) is refused without reading it whole.
    let large = format!("user:{}\n", "secret-".repeat(1000));
    std::fs::write(&file, &large).unwrap();
    crate::cli::assert_file_refused(
        "--basic-auth-file",
        &file,
        "bytes: not a user:password",
        "secret-",
    );
}

on_each_containerd!(containerd_pulls_with_the_credentials_configure_wrote);

/// containerd A holds the image behind node A; containerd B pulls through the CRI from node B,
/// which mirrors from A; containerd C pulls with ctr straight from node A. Every node requires
/// the credentials, and every containerd sends them from its host files.
async fn containerd_pulls_with_the_credentials_configure_wrote(version: Version) {
    let (Some(ctd_a), Some(ctd_b), Some(ctd_c)) = (
        Containerd::start(version, false),
        Containerd::start(version, false),
        Containerd::start(version, false),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let file = auth_file(dir.path());
    let img = import(&ctd_a, 43);
    let block = Block::random();
    let auth = ["--basic-auth-file".to_owned(), file.clone()];
    let node_a = node_on(block, 1, &ctd_a, &auth);
    let peers = format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(1));
    let static_peers = [
        "--bootstrap-kind",
        "static",
        "--static-bootstrap-peers",
        &peers,
    ];
    let node_b = node_on(
        block,
        2,
        &ctd_b,
        &[&auth[..], &static_peers.map(String::from)[..]].concat(),
    );
    wait_state(&node_b, "connected", std::time::Duration::from_secs(15)).await;
    wait_provider(&node_b, NAME, &node_a).await;

    let mirror = |node: &test_support::process::Node| {
        [
            "--mirrored-registries",
            "https://example.com",
            "--mirror-targets",
            &node.url(),
        ]
        .map(String::from)
    };
    let with_auth = |args: [String; 4]| {
        let mut all = args.to_vec();
        all.extend(["--basic-auth-file".to_owned(), file.clone()]);
        all
    };
    let args = with_auth(mirror(&node_b));
    configure(&ctd_b, &args.iter().map(String::as_str).collect::<Vec<_>>());
    cri_pull(&ctd_b.socket(), NAME)
        .await
        .expect("CRI PullImage through Speil with credentials");
    let layer_bytes: u64 = img.layers.iter().map(|l| l.size).sum();
    let mb = scrape(node_b.metrics).await;
    assert!(
        value(&mb, r#"speil_mirror_bytes_total{source="peer"}"#) >= layer_bytes as f64,
        "{mb}"
    );

    let args = with_auth(mirror(&node_a));
    configure(&ctd_c, &args.iter().map(String::as_str).collect::<Vec<_>>());
    ctd_c.pull_through_host_files(NAME);
    let ma = scrape(node_a.metrics).await;
    assert!(
        value(
            &ma,
            r#"speil_http_requests_total{handler="blobs",method="GET",status="401"}"#
        ) == 0.0,
        "no blob request came without the credentials: {ma}"
    );
}
