//! Shared by the multi-node tests: nodes on `127.A.B.n` with the same ports, DNS bootstrap
//! flags, empty layouts, and waiting for a bootstrap state.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use test_support::dns::Dnsmasq;
use test_support::eventually;
use test_support::metrics::status;
use test_support::net::{Block, METRICS_PORT, REGISTRY_PORT, ROUTER_PORT};
use test_support::process::Node;

pub(crate) const NAME: &str = "speil-nodes.test";

pub(crate) fn speil() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_speil"))
}

/// A node on `127.A.B.n` serving `dir`, with `extra` flags.
pub(crate) fn start_node(block: Block, n: u8, dir: &Path, extra: &[String]) -> Node {
    let store = ["--oci-dir".to_owned(), dir.display().to_string()];
    let poll = ["--store-poll-interval".to_owned(), "200ms".to_owned()];
    start_on(block, n, &store, &[&poll[..], extra].concat())
}

/// A node on `127.A.B.n` with the store chosen by `store` flags, and `extra` flags; JSON logs.
pub(crate) fn start_on(block: Block, n: u8, store: &[String], extra: &[String]) -> Node {
    let mut cmd = Command::new(speil());
    cmd.arg("run")
        .args(store)
        .arg("--registry-addr")
        .arg(block.addr(n, REGISTRY_PORT).to_string())
        .arg("--metrics-addr")
        .arg(block.addr(n, METRICS_PORT).to_string())
        .arg("--router-addr")
        .arg(block.addr(n, ROUTER_PORT).to_string())
        .args(["--log-format", "json"])
        .args(extra);
    Node::start_command(cmd)
}

pub(crate) fn dns_flags(dns: &Dnsmasq) -> Vec<String> {
    vec![
        "--bootstrap-kind".into(),
        "dns".into(),
        "--dns-bootstrap-domain".into(),
        NAME.into(),
        "--dns-bootstrap-nameserver".into(),
        dns.addr().to_string(),
    ]
}

pub(crate) fn empty_layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    store::layout::LayoutWriter::open(dir.path()).unwrap();
    dir
}

pub(crate) async fn state_of(node: &Node) -> String {
    status(node.metrics).await["bootstrap"]["state"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

pub(crate) async fn wait_state(node: &Node, want: &str, timeout: Duration) {
    eventually(
        timeout,
        &format!("state {want} on {}", node.registry),
        || async { (state_of(node).await == want).then_some(()) },
    )
    .await;
}

pub(crate) fn assert_quiet(nodes: &[&Node]) {
    for n in nodes {
        let loud: Vec<String> = n
            .lines_at("WARN")
            .into_iter()
            .chain(n.lines_at("ERROR"))
            .collect();
        assert!(
            loud.is_empty(),
            "node {} logged:\n{}",
            n.registry,
            loud.join("\n")
        );
    }
}

/// Starts dnsmasq listing `127.A.B.1..=n`; `None` when dnsmasq is missing outside CI.
pub(crate) fn dns_for(block: Block, n: u8) -> Option<Dnsmasq> {
    let ips: Vec<std::net::IpAddr> = (1..=n).map(|i| block.ip(i)).collect();
    Dnsmasq::start(block.addr(53, 53), NAME, &ips)
}

/// Starts one node per layout on `127.A.B.1..`, with DNS bootstrap and `extra` flags, and waits
/// until all are connected.
pub(crate) async fn cluster(
    block: Block,
    dns: &Dnsmasq,
    dirs: &[&Path],
    extra: &[String],
) -> Vec<Node> {
    let mut flags = dns_flags(dns);
    flags.extend(extra.iter().cloned());
    let nodes: Vec<Node> = dirs
        .iter()
        .enumerate()
        .map(|(i, d)| start_node(block, i as u8 + 1, d, &flags))
        .collect();
    for n in &nodes {
        wait_state(n, "connected", Duration::from_secs(20)).await;
    }
    nodes
}

/// Waits until `asker` finds `holder` among the providers of `key`.
pub(crate) async fn wait_provider(asker: &Node, key: &str, holder: &Node) {
    eventually(
        Duration::from_secs(15),
        &format!("{key} found at {}", holder.registry),
        || async {
            test_support::metrics::lookup(asker.metrics, key)
                .await
                .contains(&holder.peer_id)
                .then_some(())
        },
    )
    .await;
}

/// `skopeo copy` (with `--all` for an index) from `from` into the OCI layout `to`.
pub(crate) fn skopeo_copy(skopeo: &Path, from: &str, to: &Path, all: bool) {
    let mut cmd = Command::new(skopeo);
    cmd.args(["copy", "--src-tls-verify=false"]);
    if all {
        cmd.arg("--all");
    }
    let out = cmd
        .arg(from)
        .arg(format!("oci:{}", to.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The digests of every blob in an OCI layout, sorted, each checked against its content.
pub(crate) fn blobs_in(layout: &Path) -> Vec<oci::Digest> {
    let mut out: Vec<oci::Digest> = std::fs::read_dir(layout.join("blobs/sha256"))
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name().unwrap().to_str().unwrap();
            let d: oci::Digest = format!("sha256:{name}").parse().unwrap();
            assert_eq!(
                oci::Digest::sha256_of(&std::fs::read(&path).unwrap()),
                d,
                "{path:?}"
            );
            d
        })
        .collect();
    out.sort();
    out
}

/// `v` sorted without repeats.
pub(crate) fn sorted(mut v: Vec<oci::Digest>) -> Vec<oci::Digest> {
    v.sort();
    v.dedup();
    v
}
