//! `speil status`, `--cluster`, the status document, identify metrics and the debug page, on
//! real nodes: a healthy three-node cluster, a standalone node, an isolated node, a node whose
//! containerd is misconfigured, and a node that is down.

use std::process::Command;
use std::time::Duration;

use test_support::containerd::{Containerd, Version};
use test_support::eventually;
use test_support::http::get;
use test_support::image;
use test_support::metrics::{scrape, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::prereq::require;
use test_support::process::Node;

use crate::cluster::{
    assert_quiet, cluster, dns_for, empty_layout, skopeo_copy, speil, start_node, start_on,
    wait_provider, wait_state,
};
use crate::containerd::configure;

/// What `speil status` printed and its exit code.
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

/// `speil status` with `args`.
pub(crate) fn status(args: &[&str]) -> Run {
    let out = Command::new(speil())
        .arg("status")
        .args(args)
        .output()
        .expect("running speil status");
    Run {
        code: out
            .status
            .code()
            .expect("speil status exits, never dies of a signal"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Fails unless every key of the status document `doc` is named in docs/status.md, so a field
/// cannot be added without documenting it.
fn assert_documented(doc: &serde_json::Value) {
    fn keys(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    out.push((k.clone(), format!("{path}.{k}")));
                    keys(v, &format!("{path}.{k}"), out);
                }
            }
            serde_json::Value::Array(a) => {
                for v in a {
                    keys(v, &format!("{path}[]"), out);
                }
            }
            _ => {}
        }
    }
    let guide =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/status.md"))
            .unwrap();
    let mut all = Vec::new();
    keys(doc, "", &mut all);
    assert!(all.len() > 30, "{doc}");
    for (key, path) in all {
        assert!(
            [
                format!("`{key}`"),
                format!(".{key}`"),
                format!("`{key}."),
                format!("`{key}[]"),
                format!(".{key}[]"),
            ]
            .iter()
            .any(|form| guide.contains(form)),
            "{path} is not documented in docs/status.md"
        );
    }
}

/// `url` rendered in headless Chromium, which must have written nothing to the console.
fn quiet_page(url: &str, budget: Duration) -> Option<test_support::browser::Rendered> {
    let page = test_support::browser::render(url, budget)?;
    assert!(
        page.console.is_empty(),
        "console of {url}:\n{}",
        page.console.join("\n")
    );
    Some(page)
}

/// The node's metrics address as `speil status --addr` takes it.
pub(crate) fn addr_of(node: &Node) -> String {
    format!("http://{}", node.metrics)
}

/// The line of check `name` in `speil status` text output.
fn line<'a>(run: &'a Run, name: &str) -> &'a str {
    run.stdout
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{}", run.stdout))
}

/// The node that pulled through a peer: every check ok, the mirror line names the peer `holder`.
fn assert_ok_on_the_node_that_pulled(puller: &Node, holder: &Node) {
    let run = status(&["--addr", &addr_of(puller)]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(line(&run, "bootstrap").starts_with("ok    bootstrap    connected for "));
    assert!(line(&run, "peers").contains("2 connected, 2 in the routing table"));
    let mirror = line(&run, "mirror");
    assert!(
        mirror.contains("last served from a peer") && mirror.contains(&holder.peer_id),
        "{mirror}"
    );
    assert!(line(&run, "containerd").starts_with("skip"));
    assert!(
        run.stdout.ends_with("result: ok (0 failing, 0 warnings)\n"),
        "{}",
        run.stdout
    );
}

/// --json on `node`, which pulled through its two peers: the same checks and the whole
/// document, documented and free of credentials.
fn assert_the_json_document(node: &Node) {
    let run = status(&["--addr", &addr_of(node), "--json"]);
    assert_eq!(run.code, 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verdict"], "ok");
    assert_eq!(v["status"]["node"]["peer_id"], node.peer_id);
    assert!(v["status"]["mirror"]["served_from_peers"].as_u64().unwrap() >= 3);
    let peers = v["status"]["peers"]["list"].as_array().unwrap();
    assert_eq!(peers.len(), 2);
    assert!(
        peers
            .iter()
            .all(|p| p["connected"] == true && !p["addrs"].as_array().unwrap().is_empty())
    );
    assert_eq!(v["status"]["bootstrap"]["last_round"]["self_dropped"], 1);
    assert_documented(&v["status"]);
    assert!(!run.stdout.contains("password") && !run.stdout.contains("Authorization"));
}

/// --cluster from any node lists all three, as a table and as JSON.
fn assert_the_cluster_lists_all_three(nodes: &[Node]) {
    let run = status(&["--addr", &addr_of(&nodes[1]), "--cluster"]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    for n in nodes {
        // The table shortens ids to their first 12 and last 4 characters.
        let id = &n.peer_id;
        let short = format!("{}…{}", &id[..12], &id[id.len() - 4..]);
        let row = run
            .stdout
            .lines()
            .find(|l| l.starts_with(&short))
            .unwrap_or_else(|| panic!("no row for {}:\n{}", n.peer_id, run.stdout));
        assert!(row.contains("connected") && row.contains("2/2"), "{row}");
    }
    assert!(
        run.stdout
            .contains("3 nodes seen, 0 not ready, 0 isolated, 0 unreachable; result: ok"),
        "{}",
        run.stdout
    );
    let run = status(&["--addr", &addr_of(&nodes[0]), "--cluster", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["summary"]["nodes_seen"], 3);
    assert_eq!(v["nodes"][0]["peer_id"], nodes[0].peer_id);
}

/// Peers exchange identify both ways, and nobody dialed itself.
async fn assert_identify_both_ways_and_no_self_dials(nodes: &[Node]) {
    for n in nodes {
        let m = scrape(n.metrics).await;
        for dir in ["inbound", "outbound"] {
            let series = format!(r#"libp2p_identify_identify_total{{dir="{dir}"}}"#);
            assert!(value(&m, &series) > 0.0, "{series} on {}:\n{m}", n.registry);
        }
        assert_eq!(value(&m, "speil_p2p_self_dials_total"), 0.0);
    }
}

/// The debug page of node 3 after a measured pull: verdict ok, the peer table lists nodes 1 and
/// 2, and every part of the image came from node 1, which holds it.
fn assert_the_measured_pull(
    page: &test_support::browser::Rendered,
    nodes: &[Node],
    img: &image::Written,
) {
    assert!(
        page.dom.contains(r#"id="verdict" class="ok""#),
        "{}",
        page.dom
    );
    for n in [&nodes[0], &nodes[1]] {
        assert!(page.dom.contains(&format!(r#"data-peer="{}""#, n.peer_id)));
    }
    assert!(page.dom.contains(r#"data-state="done""#), "{}", page.dom);
    let from_peer = format!("peer {}", nodes[0].peer_id);
    for d in &img.digests {
        let row = page
            .dom
            .split("<tr")
            .find(|r| r.contains(&d.to_string()) && r.contains("data-kind"))
            .unwrap_or_else(|| panic!("no measured part {d} in {}", page.dom));
        assert!(row.contains(&from_peer), "{d} not from {from_peer}: {row}");
    }
}

#[tokio::test]
async fn a_healthy_three_node_cluster_says_ok_everywhere() {
    let Some(skopeo) = require("skopeo", "skopeo") else {
        return;
    };
    let block = Block::random();
    let Some(dns) = dns_for(block, 3) else { return };
    let (d1, d2, d3) = (empty_layout(), empty_layout(), empty_layout());
    let img = image::write_image(d1.path(), "example.com/team/app:1.0", &[400_000], 41).unwrap();
    let nodes = cluster(block, &dns, &[d1.path(), d2.path(), d3.path()], &[]).await;
    let (n1, n3) = (&nodes[0], &nodes[2]);
    wait_provider(n3, "example.com/team/app:1.0", n1).await;
    let out = tempfile::tempdir().unwrap();
    skopeo_copy(
        &skopeo,
        &format!("docker://{}/example.com/team/app:1.0", n3.registry),
        &out.path().join("app"),
        false,
    );

    assert_ok_on_the_node_that_pulled(n3, n1);
    // The node that holds the image advertises it.
    let run = status(&["--addr", &addr_of(n1)]);
    assert_eq!(run.code, 0, "{}", run.stdout);
    assert!(line(&run, "advertising").contains("1 image tags, 1 images, 3 digests"));

    assert_the_json_document(n3);
    assert_the_cluster_lists_all_three(&nodes);
    assert_identify_both_ways_and_no_self_dials(&nodes).await;

    // The debug page in a real browser: no console message, the peer table, and a measured
    // pull whose parts came from the peer that holds them.
    let reference = "example.com/team/app:1.0";
    let Some(page) = quiet_page(
        &format!("http://{}/debug/web/?measure={reference}", n3.metrics),
        Duration::from_secs(10),
    ) else {
        return;
    };
    assert_the_measured_pull(&page, &nodes, &img);
    assert_quiet(&nodes.iter().collect::<Vec<_>>());
}

#[tokio::test]
async fn a_standalone_node_is_ok_and_its_debug_page_lists_its_images() {
    let block = Block::random();
    let dir = empty_layout();
    image::write_image(dir.path(), "example.com/solo/app:2.0", &[1000], 42).unwrap();
    let node = start_node(block, 1, dir.path(), &[]);
    wait_state(&node, "standalone", Duration::from_secs(10)).await;
    eventually(Duration::from_secs(10), "the image advertised", || async {
        (test_support::metrics::status(node.metrics).await["advertised"]["image_digests"] == 1)
            .then_some(())
    })
    .await;
    let run = status(&["--addr", &addr_of(&node)]);
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(line(&run, "bootstrap").contains("standalone"));
    assert!(line(&run, "peers").contains("none expected: a single-node cluster"));
    assert!(line(&run, "containerd").contains("not checked: this node serves oci-dir"));

    let Some(page) = quiet_page(
        &format!("http://{}/debug/web/", node.metrics),
        Duration::from_secs(5),
    ) else {
        return;
    };
    assert!(
        page.dom.contains("example.com/solo/app:2.0"),
        "{}",
        page.dom
    );
    assert!(page.dom.contains(&node.peer_id));

    // The measure action refuses what is not a full reference, saying what it expects.
    let r = get(&format!("http://{}/debug/measure?ref=alpine", node.metrics)).await;
    assert_eq!(r.status, 400);
    let error = r.json()["error"].as_str().unwrap().to_owned();
    assert!(error.contains("<registry>/<repository>:<tag>"), "{error}");
    // What nobody has ends at the manifest, with the reason.
    let r = get(&format!(
        "http://{}/debug/measure?ref=example.com/solo/app:9.9",
        node.metrics
    ))
    .await;
    let m = r.json();
    assert_eq!(m["parts"][0]["status"], 404, "{m}");
    assert!(
        m["error"]
            .as_str()
            .unwrap()
            .contains("neither this node nor a peer has it")
    );
}

#[tokio::test]
async fn the_debug_page_can_be_turned_off() {
    let dir = empty_layout();
    let node = start_node(
        Block::random(),
        1,
        dir.path(),
        &["--debug-web".into(), "false".into()],
    );
    let r = get(&format!("http://{}/debug/web/", node.metrics)).await;
    assert_eq!(r.status, 404);
    // The status endpoint stays: `speil status` needs it.
    assert_eq!(
        get(&format!("http://{}/status", node.metrics)).await.status,
        200
    );
}

#[tokio::test]
async fn an_isolated_node_fails_with_the_reason_and_a_fix() {
    let block = Block::random();
    let dir = empty_layout();
    // Nothing listens at .9: every round fails.
    let nobody = format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(9));
    let node = start_node(
        block,
        1,
        dir.path(),
        &[
            "--bootstrap-kind".into(),
            "static".into(),
            "--static-bootstrap-peers".into(),
            nobody,
        ],
    );
    wait_state(&node, "isolated", Duration::from_secs(15)).await;
    let run = status(&["--addr", &addr_of(&node)]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let bootstrap = line(&run, "bootstrap");
    assert!(
        bootstrap.starts_with("fail  bootstrap") && bootstrap.contains("isolated"),
        "{bootstrap}"
    );
    assert!(
        bootstrap.contains(&block.ip(9).to_string()),
        "names the failed candidate: {bootstrap}"
    );
    assert!(run.stdout.contains("fix: check that the other nodes run"));
    assert!(
        run.stdout
            .contains("see: docs/troubleshooting.md#an-isolated-node")
    );
    assert!(
        run.stdout
            .ends_with("result: broken (1 failing, 1 warning)\n"),
        "{}",
        run.stdout
    );
    let run = status(&["--addr", &addr_of(&node), "--cluster"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stdout.contains("1 node seen, 1 not ready, 1 isolated"),
        "{}",
        run.stdout
    );
}

on_each_containerd!(a_misconfigured_containerd_is_named_check_by_check);

/// A node on a containerd that discards unpacked layers and has no Speil host file: both named,
/// with the fix in this `version`'s config format; config_path and the transfer service pass.
fn assert_the_misconfiguration_is_named(node: &Node, version: Version) {
    let run = status(&["--addr", &addr_of(node)]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let hosts = line(&run, "host_files");
    assert!(
        hosts.starts_with("fail") && hosts.contains("no Speil host file"),
        "{hosts}"
    );
    let discard = line(&run, "containerd:discard_unpacked_layers");
    assert!(
        discard.starts_with("warn") || discard.starts_with("fail"),
        "{discard}"
    );
    assert!(run.stdout.contains(
        "see: docs/troubleshooting.md#layers-missing-because-of-discard_unpacked_layers"
    ));
    // The fix names the table of this version's config format, and config_path is found there.
    let table = match version {
        Version::V1_6 => r#"[plugins."io.containerd.grpc.v1.cri".containerd]"#,
        Version::V2 => r#"[plugins."io.containerd.cri.v1.images"]"#,
    };
    assert!(
        run.stdout
            .contains(&format!("discard_unpacked_layers = false under {table}")),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("containerd:config_path"),
        "{}",
        run.stdout
    );
    assert!(
        !run.stdout.contains("containerd:transfer_service"),
        "{}",
        run.stdout
    );
}

/// Host files that lead to this node fix the first finding; the discard finding stays. Their
/// basic-auth credentials never show in the status.
async fn assert_host_files_to_this_node_pass_without_their_credentials(
    ctd: &Containerd,
    node: &Node,
) {
    let secret = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(secret.path(), "speil:s3cret-passw0rd\n").unwrap();
    let auth = secret.path().to_str().unwrap();
    configure(
        ctd,
        &["--mirror-targets", &node.url(), "--basic-auth-file", auth],
    );
    let run = status(&["--addr", &addr_of(node)]);
    let hosts = line(&run, "host_files");
    assert!(
        hosts.starts_with("ok") && hosts.contains(&node.url()),
        "{hosts}"
    );
    assert!(run.code >= 1, "the discard finding remains: {}", run.stdout);
    let doc = test_support::metrics::status(node.metrics).await;
    assert_eq!(
        doc["containerd"]["host_files"][0]["hosts"][0]["this_node"],
        true
    );
    let text = doc.to_string();
    // "speil:s3cret-passw0rd" in base64, as the host file's Authorization header holds it.
    for leak in ["s3cret", "c3BlaWw6czNjcmV0LXBhc3N3MHJk", "Basic "] {
        assert!(!text.contains(leak), "{leak} in {text}");
    }
    assert!(!run.stdout.contains("s3cret"));
    assert_documented(&doc);
}

async fn a_misconfigured_containerd_is_named_check_by_check(version: Version) {
    let Some(mut ctd) = Containerd::start(version, true) else {
        return;
    };
    let node = start_on(Block::random(), 1, &ctd.speil_flags(), &[]);
    assert_the_misconfiguration_is_named(&node, version);
    assert_host_files_to_this_node_pass_without_their_credentials(&ctd, &node).await;

    // Host files that lead to another Speil are called out.
    configure(&ctd, &["--mirror-targets", "http://127.0.0.1:9"]);
    let run = status(&["--addr", &addr_of(&node)]);
    let hosts = line(&run, "host_files");
    assert!(
        hosts.starts_with("fail") && hosts.contains("http://127.0.0.1:9 is unreachable"),
        "{hosts}"
    );

    // containerd gone: named, with its socket, and broken.
    ctd.stop();
    let run = status(&["--addr", &addr_of(&node)]);
    assert_eq!(run.code, 2, "{}", run.stdout);
    let down = line(&run, "containerd");
    assert!(
        down.starts_with("fail")
            && down.contains("does not answer")
            && down.contains(&ctd.socket().display().to_string()),
        "{down}"
    );
    assert!(
        run.stdout
            .contains("see: docs/troubleshooting.md#containerd-does-not-answer")
    );
}

#[tokio::test]
async fn a_node_that_is_down_or_the_wrong_port_gives_a_clear_message() {
    let block = Block::random();
    let dir = empty_layout();
    let mut node = start_node(block, 1, dir.path(), &[]);
    // The registry port is not the status endpoint.
    let run = status(&["--addr", &node.url()]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("answered 404") && run.stderr.contains("--metrics-addr"),
        "{}",
        run.stderr
    );

    let addr = addr_of(&node);
    node.guard.signal(test_support::process::Sig::SIGKILL);
    node.guard.wait_timeout(Duration::from_secs(5));
    for extra in [&[][..], &["--cluster"][..]] {
        let run = status(&[&["--addr", addr.as_str()][..], extra].concat());
        assert_eq!(run.code, 2);
        assert!(run.stdout.is_empty());
        assert!(
            run.stderr.contains("is unreachable: Connection refused"),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr
                .contains("see: docs/troubleshooting.md#speil-status-cannot-reach-the-node")
        );
        assert!(!run.stderr.contains("panicked"));
    }
    let run = status(&["--addr", &addr, "--json"]);
    assert_eq!(run.code, 2);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["verdict"], "unreachable");

    let run = status(&["--addr", "127.0.0.1:9090"]);
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("--addr") && run.stderr.contains("http://127.0.0.1:9090"),
        "{}",
        run.stderr
    );
}
