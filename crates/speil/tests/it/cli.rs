//! The `speil` binary as users run it: flags, serving with skopeo, signals, the demo.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use oci::Digest;
use test_support::http::get;
use test_support::image;
use test_support::prereq::require;
use test_support::process::{Guard, Node, Sig};

use crate::cluster::{blobs_in, skopeo_copy, sorted};

fn speil() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_speil"))
}

/// Every listener of a node on 127.0.0.1, on a port the system chooses.
const ANY_PORT: [&str; 6] = [
    "--registry-addr",
    "127.0.0.1:0",
    "--metrics-addr",
    "127.0.0.1:0",
    "--router-addr",
    "127.0.0.1:0",
];

/// A node on 127.0.0.1 with every port chosen by the system, serving the layout `dir`.
pub(crate) fn node(dir: &Path) -> Node {
    let store = [
        "--oci-dir",
        dir.to_str().unwrap(),
        "--store-poll-interval",
        "100ms",
    ];
    Node::start(speil(), &[&store[..], &ANY_PORT].concat())
}

pub(crate) fn top_of(layout: &Path) -> Digest {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn skopeo_copies_an_image_and_an_index_byte_for_byte() {
    let Some(skopeo) = require("skopeo", "skopeo") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let img = image::write_image(
        src.path(),
        "example.com/team/app:1.0",
        &[1 << 20, 3 << 20, 1000],
        11,
    )
    .unwrap();
    let idx =
        image::write_index(src.path(), "example.com/team/multi:2.0", &[500_000, 20], 12).unwrap();
    let node = node(src.path());
    let out = tempfile::tempdir().unwrap();

    let dest = out.path().join("app");
    skopeo_copy(
        &skopeo,
        &format!("docker://{}/example.com/team/app:1.0", node.registry),
        &dest,
        false,
    );
    assert_eq!(top_of(&dest), img.top.digest);
    assert_eq!(blobs_in(&dest), sorted(img.digests.clone()));

    let dest = out.path().join("multi");
    skopeo_copy(
        &skopeo,
        &format!("docker://{}/example.com/team/multi:2.0", node.registry),
        &dest,
        true,
    );
    assert_eq!(top_of(&dest), idx.top.digest);
    assert_eq!(
        blobs_in(&dest),
        sorted(idx.digests.clone()),
        "every manifest, config and layer of both platforms"
    );

    let metrics = String::from_utf8(
        get(&format!("http://{}/metrics", node.metrics))
            .await
            .body
            .to_vec(),
    )
    .unwrap();
    assert!(
        metrics.contains(r#"speil_http_requests_total{handler="blobs",method="GET",status="200"}"#),
        "{metrics}"
    );
    assert!(metrics.contains("speil_build_info{"), "{metrics}");
    assert!(node.lines_at("WARN").is_empty() && node.lines_at("ERROR").is_empty());
}

#[tokio::test]
async fn images_added_while_running_are_served() {
    let src = tempfile::tempdir().unwrap();
    image::write_image(src.path(), "example.com/first:1", &[10], 13).unwrap();
    let node = node(src.path());
    let url = format!("{}/v2/example.com/later/manifests/1", node.url());
    assert_eq!(get(&url).await.status, 404);
    let later = image::write_image(src.path(), "example.com/later:1", &[10], 14).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = get(&url).await;
        if r.status == 200 {
            assert_eq!(Digest::sha256_of(&r.body), later.top.digest);
            break;
        }
        assert!(Instant::now() < deadline, "new image not served within 5 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn sigterm_lets_an_in_flight_download_finish() {
    let Some(curl) = require("curl", "curl") else {
        return;
    };
    let src = tempfile::tempdir().unwrap();
    let blob = image::write_random_blob(src.path(), 24 << 20, 15).unwrap();
    let mut node = node(src.path());
    let out = src.path().join("download");
    let mut download = Guard::spawn(
        Command::new(curl)
            .args(["-sf", "--limit-rate", "16M", "-o"])
            .arg(&out)
            .arg(format!("{}/v2/x/blobs/{}", node.url(), blob.digest)),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    node.guard.signal(Sig::SIGTERM);
    assert_eq!(
        download.wait_timeout(Duration::from_secs(20)),
        Some(0),
        "download failed"
    );
    assert_eq!(
        Digest::sha256_of(&std::fs::read(&out).unwrap()),
        blob.digest
    );
    assert_eq!(node.guard.wait_timeout(Duration::from_secs(10)), Some(0));
    let log = node.log.lock().unwrap().join("\n");
    assert!(
        log.contains("shutting down") && log.contains("speil stopped"),
        "{log}"
    );
}

fn run_speil(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let out = Command::new(speil())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `speil run FLAG FILE` with every port chosen by the system, where FILE is refused: exit 2,
/// the message names the flag and the file and says `why`, and never shows `secret`, a piece
/// of the file's content.
pub(crate) fn assert_file_refused(flag: &str, file: &Path, why: &str, secret: &str) {
    let run = [&["run", flag, file.to_str().unwrap()][..], &ANY_PORT].concat();
    let (code, err) = run_speil(&run, &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("{flag} {}", file.display())), "{err}");
    assert!(err.contains(why) && !err.contains(secret), "{err}");
}

#[test]
fn bad_flags_exit_nonzero_naming_the_flag() {
    let (code, err) = run_speil(&["run", "--registry-addr", "nowhere"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("--registry-addr"), "{err}");

    let (code, err) = run_speil(&["run"], &[("SPEIL_METRICS_ADDR", "not-an-address")]);
    assert_eq!(code, 2);
    assert!(err.contains("--metrics-addr"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let dir = empty.path().to_str().unwrap();
    let (code, err) = run_speil(&[&["run", "--oci-dir", dir][..], &ANY_PORT].concat(), &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--oci-dir") && err.contains("oci-layout"),
        "{err}"
    );

    // A mistyped log level is refused instead of silencing the node.
    let (code, err) = run_speil(&["run", "--log-level", "debgu"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("--log-level") && err.contains("'debgu'"),
        "{err}"
    );

    // So is a file that cannot be read, in every command.
    let certs = empty.path().join("certs.d");
    let (code, err) = run_speil(
        &[
            "configure",
            "--containerd-registry-config-path",
            certs.to_str().unwrap(),
            "--mirror-targets",
            "http://127.0.0.1:5000",
            "--basic-auth-file",
            "/nonexistent/auth",
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--basic-auth-file /nonexistent/auth"), "{err}");
    assert!(!certs.exists(), "nothing written after a refusal");
}

#[test]
fn a_router_port_in_use_is_refused() {
    let src = tempfile::tempdir().unwrap();
    image::write_image(src.path(), "example.com/app:1", &[10], 17).unwrap();
    let block = test_support::net::Block::random();
    let router = block.addr(1, 5001).to_string();
    let flags = |n: u8| {
        vec![
            "run".to_owned(),
            "--oci-dir".into(),
            src.path().display().to_string(),
            "--registry-addr".into(),
            block.addr(n, 5000).to_string(),
            "--metrics-addr".into(),
            block.addr(n, 9090).to_string(),
            "--router-addr".into(),
            router.clone(),
        ]
    };
    let first = flags(1);
    let _first = Node::start(
        speil(),
        &first[1..].iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let second = flags(2);
    let (code, err) = run_speil(&second.iter().map(String::as_str).collect::<Vec<_>>(), &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains(&format!("--router-addr {router}")) && err.contains("in use"),
        "{err}"
    );
}

/// `speil run` with its defaults on a machine whose containerd is not running: the endpoints
/// answer at once and say what is wrong, and the log says what to do.
#[tokio::test]
async fn containerd_down_is_reported_from_the_first_second() {
    let tmp = tempfile::tempdir().unwrap();
    let socket = tmp.path().join("containerd.sock");
    let started = Instant::now();
    let (config, certs) = (tmp.path().join("config.toml"), tmp.path().join("certs.d"));
    let containerd = [
        "--containerd-sock",
        socket.to_str().unwrap(),
        "--containerd-config",
        config.to_str().unwrap(),
        "--containerd-registry-config-path",
        certs.to_str().unwrap(),
    ];
    let node = Node::start(speil(), &[&containerd[..], &ANY_PORT].concat());
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let readyz = format!("{}/readyz", node.url());
    test_support::eventually(Duration::from_secs(2), "readyz 200", || async {
        (get(&readyz).await.status == 200).then_some(())
    })
    .await;
    let status = test_support::metrics::status(node.metrics).await;
    let error = status["store"]["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("does not answer") && error.contains("containerd.sock"),
        "{status}"
    );

    let run = crate::status::status(&["--addr", &crate::status::addr_of(&node)]);
    let text = run.stdout;
    assert_eq!(run.code, 2, "{text}");
    assert!(text.lines().any(|l| l.starts_with("fail  store")), "{text}");
    assert!(text.contains("containerd does not answer at"), "{text}");

    let warns = node.lines_at("WARN");
    assert!(
        warns
            .iter()
            .any(|l| l.contains("start containerd") && l.contains("--oci-dir")),
        "{warns:#?}"
    );
    assert!(
        !warns.iter().any(|l| l.contains("last listed")),
        "{warns:#?}"
    );
}

#[test]
fn flags_come_from_the_environment_too() {
    let src = tempfile::tempdir().unwrap();
    image::write_image(src.path(), "example.com/app:1", &[10], 16).unwrap();
    let mut cmd = Command::new(speil());
    cmd.args(["run", "--log-format", "json"])
        .env("SPEIL_OCI_DIR", src.path())
        .env("SPEIL_REGISTRY_ADDR", "127.0.0.1:0")
        .env("SPEIL_METRICS_ADDR", "127.0.0.1:0")
        .env("SPEIL_ROUTER_ADDR", "127.0.0.1:0");
    let node = Node::start_command(cmd);
    assert_eq!(node.registry.ip().to_string(), "127.0.0.1");
}

#[tokio::test]
async fn demo_serves_a_sample_image() {
    let work = tempfile::tempdir().unwrap();
    let dir: PathBuf = work.path().join("demo");
    let mut cmd = Command::new(speil());
    cmd.args([
        "demo",
        "--log-format",
        "json",
        "--registry-addr",
        "127.0.0.1:0",
    ])
    .args([
        "--metrics-addr",
        "127.0.0.1:0",
        "--router-addr",
        "127.0.0.1:0",
        "--dir",
    ])
    .arg(&dir);
    let node = Node::start_command(cmd);
    let r = get(&format!(
        "{}/v2/speil/hello/manifests/1.0?ns=example.com",
        node.url()
    ))
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 2);
}

#[test]
fn version_prints_the_version() {
    let (code, _) = run_speil(&["version"], &[]);
    assert_eq!(code, 0);
    let out = Command::new(speil()).arg("version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("speil {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A registry given as http:// is written with a plain-HTTP upstream `server`, so containerd
/// can still reach it after a miss; one given as https:// (or bare) keeps HTTPS.
#[test]
fn configure_keeps_a_plain_http_registrys_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(speil())
        .args([
            "configure",
            "--mirrored-registries",
            "http://198.18.0.2:5000,ghcr.io",
            "--mirror-targets",
            "http://127.0.0.1:5000",
            "--containerd-registry-config-path",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read =
        |name: &str| std::fs::read_to_string(dir.path().join(name).join("hosts.toml")).unwrap();
    let plain = read("198.18.0.2:5000");
    assert!(
        plain.contains("server = \"http://198.18.0.2:5000\""),
        "{plain}"
    );
    let tls = read("ghcr.io");
    assert!(tls.contains("server = \"https://ghcr.io\""), "{tls}");
}
