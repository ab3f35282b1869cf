//! Speil on real containerd, 1.6 (Debian's) and 2.x (built from its Go module), each started per
//! test with its own root and socket: serving what containerd holds and following it, and
//! containerd pulling through Speil with `ctr` and through the CRI `PullImage` call kubelet makes,
//! with the upstream registry unreachable. Every test here runs on both versions.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use oci::Digest;
use test_support::containerd::{Containerd, Version};
use test_support::eventually;
use test_support::http::get;
use test_support::image;
use test_support::metrics::{scrape, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::process::Node;

use crate::cluster::{speil, start_on, wait_provider, wait_state};

pub(crate) const NAME: &str = "example.com/team/app:1.0";

/// The bytes a node served from its own store.
const LOCAL_BYTES: &str = r#"speil_mirror_bytes_total{source="local"}"#;

/// A node on `127.A.B.n` serving `containerd`'s store, with `extra` flags.
pub(crate) fn node_on(block: Block, n: u8, containerd: &Containerd, extra: &[String]) -> Node {
    start_on(block, n, &containerd.speil_flags(), extra)
}

/// `speil configure` of `containerd`'s host files with `args`, which must succeed.
pub(crate) fn configure(containerd: &Containerd, args: &[&str]) {
    let out = Command::new(speil())
        .args(["configure", "--containerd-registry-config-path"])
        .arg(containerd.certs_dir())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An image written to a layout and imported into `containerd` as [`NAME`].
pub(crate) fn import(containerd: &Containerd, seed: u64) -> image::Written {
    import_as(containerd, NAME, seed)
}

/// An image written to a layout and imported into `containerd` as `name`.
pub(crate) fn import_as(containerd: &Containerd, name: &str, seed: u64) -> image::Written {
    let layout = tempfile::tempdir().unwrap();
    let img = image::write_image(layout.path(), name, &[300_000, 2_000], seed).unwrap();
    containerd.import_layout(layout.path());
    img
}

async fn manifest_status(node: &Node) -> u16 {
    get(&format!(
        "{}/v2/team/app/manifests/1.0?ns=example.com",
        node.url()
    ))
    .await
    .status
    .as_u16()
}

on_each_containerd!(
    a_node_serves_what_containerd_holds_and_follows_it,
    containerd_pulls_through_speil_with_ctr_and_the_cri,
    a_misconfigured_containerd_is_reported_at_start,
);

async fn a_node_serves_what_containerd_holds_and_follows_it(version: Version) {
    let Some(mut ctd) = Containerd::start(version, false) else {
        return;
    };
    let img = import(&ctd, 41);
    let block = Block::random();
    let node = node_on(block, 1, &ctd, &[]);
    wait_state(&node, "standalone", Duration::from_secs(10)).await;

    let r = get(&format!(
        "{}/v2/team/app/manifests/1.0?ns=example.com",
        node.url()
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(Digest::sha256_of(&r.body), img.top.digest);
    assert_eq!(r.header("content-type"), oci::media_type::OCI_MANIFEST);
    for d in &img.digests[1..] {
        let r = get(&format!(
            "{}/v2/team/app/blobs/{d}?ns=example.com",
            node.url()
        ))
        .await;
        assert_eq!(r.status, 200, "{d}");
        assert_eq!(Digest::sha256_of(&r.body), *d);
    }
    let tags = r#"speil_advertised_image_tags{registry="example.com"}"#;
    eventually(Duration::from_secs(5), "the image advertised", || async {
        (value(&scrape(node.metrics).await, tags) == 1.0).then_some(())
    })
    .await;
    let m = scrape(node.metrics).await;
    assert_eq!(
        value(&m, r#"speil_advertised_image_tags{registry="example.com"}"#),
        1.0,
        "{m}"
    );
    assert_eq!(
        value(
            &m,
            r#"speil_advertised_content_digests{registry="example.com"}"#
        ),
        4.0
    );

    // Removed from containerd: no longer served or advertised, within seconds.
    ctd.ctr(&["images", "rm", NAME]);
    eventually(
        Duration::from_secs(5),
        "the removed image to go",
        || async { (manifest_status(&node).await == 404).then_some(()) },
    )
    .await;
    eventually(
        Duration::from_secs(5),
        "the removed image withdrawn",
        || async { (value(&scrape(node.metrics).await, tags) == 0.0).then_some(()) },
    )
    .await;

    // containerd restarts: the node reconnects on its own and follows it again.
    ctd.stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    ctd.restart();
    import(&ctd, 41);
    eventually(
        Duration::from_secs(30),
        "serving again after containerd restarted",
        || async { (manifest_status(&node).await == 200).then_some(()) },
    )
    .await;
    let warns = node.lines_at("WARN");
    assert!(
        warns.iter().all(|w| w.contains("containerd unreachable")),
        "{warns:?}"
    );
    assert!(node.lines_at("ERROR").is_empty());
}

pub(crate) async fn cri_pull(socket: &Path, image: &str) -> Result<String, tonic::Status> {
    use containerd_api::cri::v1::image_service_client::ImageServiceClient;
    use containerd_api::cri::v1::{ImageSpec, PullImageRequest};
    let channel = test_support::containerd::grpc_channel(socket)
        .await
        .expect("connecting to the CRI");
    let request = PullImageRequest {
        image: Some(ImageSpec {
            image: image.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let response = ImageServiceClient::new(channel).pull_image(request).await?;
    Ok(response.into_inner().image_ref)
}

/// A node on `127.A.B.n` serving `containerd`'s store and bootstrapping from node 1.
pub(crate) fn node_after_1(block: Block, n: u8, containerd: &Containerd) -> Node {
    let peers = format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(1));
    node_on(
        block,
        n,
        containerd,
        &[
            "--bootstrap-kind".into(),
            "static".into(),
            "--static-bootstrap-peers".into(),
            peers,
        ],
    )
}

/// Host files for the registry at `server`, asking `mirror` first, over plain HTTP.
pub(crate) fn write_hosts(certs: &Path, server: SocketAddr, mirror: &Node) {
    let dir = certs.join(server.to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let hosts = format!(
        "server = \"http://{server}\"\n\n[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
        mirror.url()
    );
    std::fs::write(dir.join("hosts.toml"), hosts).unwrap();
}

/// `speil configure` of `containerd`'s host files: example.com mirrored through `target`.
pub(crate) fn mirror_example_com(containerd: &Containerd, target: &str) {
    configure(
        containerd,
        &[
            "--mirrored-registries",
            "https://example.com",
            "--mirror-targets",
            target,
        ],
    );
}

/// The CRI, as kubelet pulls, on B's containerd through B's own node, which gets everything
/// from A (example.com itself is unreachable from here). What node A has served locally so far.
async fn cri_pull_through_b_from_a(
    ctd_b: &Containerd,
    node_a: &Node,
    node_b: &Node,
    layer_bytes: u64,
) -> f64 {
    mirror_example_com(ctd_b, &node_b.url());
    cri_pull(&ctd_b.socket(), NAME)
        .await
        .expect("CRI PullImage through Speil");
    assert!(ctd_b.ctr(&["images", "ls", "-q"]).contains(NAME));
    let served = value(&scrape(node_a.metrics).await, LOCAL_BYTES);
    assert!(
        served >= layer_bytes as f64,
        "node A served {served} bytes, the layers are {layer_bytes}"
    );
    let mb = scrape(node_b.metrics).await;
    assert!(
        value(&mb, r#"speil_mirror_bytes_total{source="peer"}"#) >= layer_bytes as f64,
        "{mb}"
    );
    served
}

/// ctr, on `ctd_c`, straight through node A, which had served `served` bytes before.
async fn ctr_pull_straight_through_a(
    ctd_c: &Containerd,
    node_a: &Node,
    served: f64,
    layer_bytes: u64,
) {
    mirror_example_com(ctd_c, &node_a.url());
    ctd_c.pull_through_host_files(NAME);
    let served_again = value(&scrape(node_a.metrics).await, LOCAL_BYTES) - served;
    assert!(
        served_again >= layer_bytes as f64,
        "node A served {served_again} bytes to ctr"
    );
}

/// Node B serves the image its containerd now holds itself, not from a peer.
async fn wait_serving_itself(node_b: &Node) {
    eventually(
        Duration::from_secs(10),
        "node B serving the pulled image itself",
        || async {
            let r = test_support::http::request(
                http::Method::GET,
                &format!("{}/v2/team/app/manifests/1.0?ns=example.com", node_b.url()),
                &[("x-speil-mirrored", "true")],
            )
            .await;
            (r.status == 200).then_some(())
        },
    )
    .await;
}

async fn containerd_pulls_through_speil_with_ctr_and_the_cri(version: Version) {
    let Some(ctd_a) = Containerd::start(version, false) else {
        return;
    };
    let Some(ctd_b) = Containerd::start(version, false) else {
        return;
    };
    let img = import(&ctd_a, 42);
    let layer_bytes: u64 = img.layers.iter().map(|l| l.size).sum();
    let block = Block::random();
    let node_a = node_on(block, 1, &ctd_a, &[]);
    let node_b = node_after_1(block, 2, &ctd_b);
    wait_state(&node_b, "connected", Duration::from_secs(15)).await;
    wait_provider(&node_b, NAME, &node_a).await;

    let served = cri_pull_through_b_from_a(&ctd_b, &node_a, &node_b, layer_bytes).await;

    let Some(ctd_c) = Containerd::start(version, false) else {
        return;
    };
    ctr_pull_straight_through_a(&ctd_c, &node_a, served, layer_bytes).await;

    // B's containerd now holds the image, and node B follows it.
    wait_serving_itself(&node_b).await;
}

async fn a_misconfigured_containerd_is_reported_at_start(version: Version) {
    let Some(ctd) = Containerd::start(version, true) else {
        return;
    };
    let node = node_on(Block::random(), 1, &ctd, &[]);
    let finding = eventually(
        Duration::from_secs(5),
        "the discard_unpacked_layers finding",
        || async {
            node.lines_at("WARN")
                .into_iter()
                .find(|l| l.contains("discard_unpacked_layers"))
        },
    )
    .await;
    assert!(
        finding.contains("fix"),
        "the WARN line carries the fix: {finding}"
    );
    // The config path check passes: containerd reads the directory Speil writes.
    assert!(
        !node
            .lines_at("WARN")
            .iter()
            .any(|l| l.contains("config_path"))
    );
}

pub(crate) fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            if p.is_dir() {
                out.push((rel, Vec::new()));
                dirs.push(p);
            } else {
                out.push((rel, std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn configure_then_cleanup_restores_the_host_files_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs.d");
    std::fs::create_dir_all(certs.join("ghcr.io")).unwrap();
    std::fs::write(
        certs.join("ghcr.io/hosts.toml"),
        "# mine\nserver = \"https://ghcr.io\"\n\n[host.\"https://mirror.internal\"]\n  capabilities = [\"pull\"]\n  ca = \"mirror-ca.pem\"\n",
    )
    .unwrap();
    std::fs::write(
        certs.join("ghcr.io/mirror-ca.pem"),
        b"-----BEGIN CERTIFICATE-----\n",
    )
    .unwrap();
    let before = tree(&certs);

    let run = |args: &[&str]| {
        let out = Command::new(speil())
            .args(args)
            .arg("--containerd-registry-config-path")
            .arg(&certs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let configure = [
        "configure",
        "--mirrored-registries",
        "https://ghcr.io,https://docker.io",
        "--mirror-targets",
        "http://127.0.0.1:5000",
        "--prepend-existing",
    ];
    run(&configure);
    let written = std::fs::read_to_string(certs.join("ghcr.io/hosts.toml")).unwrap();
    assert!(
        written.contains("http://127.0.0.1:5000") && written.contains("https://mirror.internal"),
        "{written}"
    );
    assert!(
        written.find("127.0.0.1:5000").unwrap() < written.find("mirror.internal").unwrap(),
        "Speil first, the existing mirror after: {written}"
    );
    assert!(
        certs.join("ghcr.io/mirror-ca.pem").exists(),
        "the referenced certificate is kept"
    );
    let docker = std::fs::read_to_string(certs.join("docker.io/hosts.toml")).unwrap();
    assert!(docker.contains("https://registry-1.docker.io"), "{docker}");
    let once = tree(&certs);
    run(&configure);
    assert_eq!(
        tree(&certs),
        once,
        "running configure twice writes the same files"
    );

    run(&["cleanup"]);
    assert_eq!(tree(&certs), before);
}

#[test]
fn configure_names_a_directory_it_cannot_write() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let target = file.join("certs.d");
    let out = Command::new(speil())
        .args([
            "configure",
            "--mirror-targets",
            "http://127.0.0.1:5000",
            "--containerd-registry-config-path",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(target.to_str().unwrap()) || err.contains(file.to_str().unwrap()),
        "{err}"
    );
}

#[test]
fn cleanup_wait_returns_once_cleanup_is_done() {
    let dir = tempfile::tempdir().unwrap();
    let addr = Block::random().addr(1, 5010);
    let url = format!("http://{addr}/healthz");
    let wait = |timeout: &str| {
        Command::new(speil())
            .args([
                "cleanup-wait",
                "--probe-endpoint",
                &url,
                "--probe-interval",
                "100ms",
                "--timeout",
                timeout,
            ])
            .output()
            .unwrap()
    };
    let early = wait("300ms");
    assert_eq!(early.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&early.stderr).contains("cleanup not finished"));

    let mut cleanup = Command::new(speil());
    cleanup
        .args([
            "cleanup",
            "--addr",
            &addr.to_string(),
            "--containerd-registry-config-path",
        ])
        .arg(dir.path());
    let _serving = test_support::process::Guard::spawn(&mut cleanup).unwrap();
    let done = wait("10s");
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}
