//! The registry port under abuse, with real nodes and raw sockets: thousands of connections
//! that never finish their headers and keep-alive clients that go quiet are closed by the
//! header and idle timeouts while complete requests keep being served and the node's
//! descriptors and memory stay bounded; a client over the request, connection or mirror
//! transfer limit gets a 503 with an OCI body and `Retry-After` at once, the probes still
//! answer; and containerd (1.6 and 2.x) pulling through a saturated node goes upstream.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use http::{Method, StatusCode};
use test_support::containerd::{Containerd, Version};
use test_support::eventually;
use test_support::http::{Response, get, request};
use test_support::image;
use test_support::metrics::{scrape, value};
use test_support::net::{Block, ROUTER_PORT};
use test_support::process::Node;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::cluster::{speil, start_node, wait_provider, wait_state};
use crate::containerd::write_hosts;

const SLOW: usize = 2000;
const KEEP_ALIVE: usize = 1000;
const MANIFEST: &str = "/v2/team/app/manifests/1.0?ns=example.com";

/// Raises this process's soft limit of open files to its hard limit: the test holds thousands
/// of sockets.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
    assert!(
        hard >= 8192,
        "the test needs 8192 open files, the hard limit is {hard}"
    );
}

/// The number of open descriptors and the resident memory in KiB of process `pid`.
fn fds_and_rss_kib(pid: u32) -> (usize, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    (fds, rss)
}

/// Samples [`fds_and_rss_kib`] of `pid` every 20 ms until `stop` is set: the highest of each.
fn peaks(pid: u32, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, u64)> {
    std::thread::spawn(move || {
        let mut peak = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            let (fds, rss) = fds_and_rss_kib(pid);
            peak = (peak.0.max(fds), peak.1.max(rss));
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    })
}

/// Reads one HTTP/1 response with a `Content-Length` from `stream`: the status and the body.
async fn read_response(stream: &mut TcpStream) -> (u16, Vec<u8>) {
    let mut buf = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed before a response");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
    let status = head[9..12].parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map_or(0, |v| v.trim().parse().unwrap());
    let mut body = buf[end..].to_vec();
    while body.len() < length {
        let mut chunk = vec![0u8; length - body.len()];
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the connection closed in the body");
        body.extend_from_slice(&chunk[..n]);
    }
    (status, body)
}

/// Waits until the server closes `stream` (a read returns end of file); `false` if it is
/// still open after a minute or sends bytes instead.
async fn closed_by_server(mut stream: TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(Duration::from_secs(60), stream.read(&mut byte)).await,
        Ok(Ok(0))
    )
}

/// A connection that sends the start of a request and never finishes its headers.
async fn slow_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {MANIFEST} HTTP/1.1\r\nHost: speil\r\nAccept: */*\r\n").as_bytes())
        .await
        .unwrap();
    s
}

/// A keep-alive client that got one manifest and then goes quiet.
async fn keep_alive_client(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(format!("GET {MANIFEST} HTTP/1.1\r\nHost: speil\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let (status, _) = read_response(&mut s).await;
    assert_eq!(status, 200);
    s
}

/// A request to `node` for a blob of `repository` whose response is never read: once its
/// headers are sent, it stays in flight (the blob is larger than the socket buffers), holding
/// a request slot, and a transfer slot when the blob comes from a peer.
async fn stuck_blob_request(node: &Node, repository: &str, digest: &oci::Digest) -> TcpStream {
    let mut s = TcpStream::connect(node.registry).await.unwrap();
    let path = format!("/v2/{repository}/blobs/{digest}?ns=example.com");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: speil\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let sent = r#"speil_http_requests_total{handler="blobs",method="GET",status="200"}"#;
    eventually(
        Duration::from_secs(30),
        "the blob request in flight",
        || async { (value(&scrape(node.metrics).await, sent) >= 1.0).then_some(()) },
    )
    .await;
    s
}

/// Asserts that `r` is the answer over the limit `limit`.
fn assert_busy(r: &Response, limit: &str) {
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{:?}", r.body);
    assert_eq!(r.oci_code(), "TOOMANYREQUESTS");
    assert_eq!(r.json()["errors"][0]["detail"]["limit"], limit);
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!(retry >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_idle_connections_are_closed_and_the_node_stays_bounded() {
    raise_open_files_limit();
    let dir = tempfile::tempdir().unwrap();
    image::write_image(dir.path(), "example.com/team/app:1.0", &[1000], 51).unwrap();
    let flags = [
        "--registry-header-timeout",
        "2s",
        "--registry-idle-timeout",
        "4s",
        "--registry-max-connections",
        "4000",
    ]
    .map(String::from);
    let node = start_node(Block::random(), 1, dir.path(), &flags);
    let pid = node.guard.id();
    let url = format!("{}{MANIFEST}", node.url());
    assert_eq!(get(&url).await.status, StatusCode::OK);
    let (fds_before, rss_before) = fds_and_rss_kib(pid);

    // Complete requests, one after another, for as long as the abuse lasts.
    let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(async move {
        let mut ok = 0u32;
        loop {
            let r = get(&url).await;
            assert_eq!(r.status, StatusCode::OK, "a complete request under abuse");
            ok += 1;
            if stopped.try_recv().is_ok() {
                return ok;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });

    let stop_sampling = Arc::new(AtomicBool::new(false));
    let sampler = peaks(pid, stop_sampling.clone());
    let addr = node.registry;
    let slow = futures::future::join_all((0..SLOW).map(|_| slow_client(addr))).await;
    let idle = futures::future::join_all((0..KEEP_ALIVE).map(|_| keep_alive_client(addr))).await;
    let slow_closed = futures::future::join_all(slow.into_iter().map(closed_by_server));
    let idle_closed = futures::future::join_all(idle.into_iter().map(closed_by_server));
    let (slow_closed, idle_closed) = tokio::join!(slow_closed, idle_closed);
    assert!(
        slow_closed.iter().all(|c| *c),
        "a slow connection stayed open"
    );
    assert!(
        idle_closed.iter().all(|c| *c),
        "an idle connection stayed open"
    );
    stop.send(()).unwrap();
    assert!(served.await.unwrap() > 0);
    stop_sampling.store(true, Ordering::Relaxed);
    let (fds_peak, rss_peak) = sampler.join().unwrap();

    let m = scrape(node.metrics).await;
    let closed = |reason: &str| {
        value(
            &m,
            &format!(r#"speil_registry_connections_closed_total{{reason="{reason}"}}"#),
        )
    };
    assert!(closed("header_timeout") >= SLOW as f64, "{m}");
    assert!(closed("idle_timeout") >= KEEP_ALIVE as f64, "{m}");

    // Every connection costs one descriptor while open, and gives it back.
    assert!(
        fds_peak <= fds_before + SLOW + KEEP_ALIVE + 64,
        "{fds_peak} descriptors at the peak, {fds_before} before"
    );
    let fds_after = eventually(
        Duration::from_secs(10),
        "descriptors given back",
        || async {
            let (fds, _) = fds_and_rss_kib(pid);
            (fds <= fds_before + 8).then_some(fds)
        },
    )
    .await;
    // Measured: about 48 MiB more with 3,000 connections open, 16 KiB each (hyper's read and
    // write buffers; debug build).
    assert!(
        rss_peak <= rss_before + 64 * 1024,
        "RSS {rss_peak} KiB with 3,000 connections open, {rss_before} KiB before"
    );
    eprintln!(
        "descriptors {fds_before} -> {fds_peak} -> {fds_after}; RSS {rss_before} -> {rss_peak} KiB"
    );
}

#[tokio::test]
async fn over_the_request_and_connection_limits_the_client_gets_503_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let img = image::write_image(dir.path(), "example.com/team/app:1.0", &[32 << 20], 52).unwrap();
    let flags = [
        "--registry-max-requests",
        "1",
        "--registry-max-connections",
        "2",
    ]
    .map(String::from);
    let node = start_node(Block::random(), 1, dir.path(), &flags);
    let url = format!("{}{MANIFEST}", node.url());

    // One blob request whose response is never read holds the one request slot.
    let _stuck = stuck_blob_request(&node, "team/app", &img.layers[0].digest).await;
    assert_busy(&get(&url).await, "requests");
    let live = get(&format!("{}/livez", node.url())).await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "the probes are answered over the limit"
    );

    // The stuck request's connection and one more fill the two connections.
    let registry_connections =
        || async { value(&scrape(node.metrics).await, "speil_registry_connections") };
    eventually(Duration::from_secs(10), "the client gone", || async {
        (registry_connections().await == 1.0).then_some(())
    })
    .await;
    let _idle = TcpStream::connect(node.registry).await.unwrap();
    eventually(Duration::from_secs(10), "two connections", || async {
        (registry_connections().await == 2.0).then_some(())
    })
    .await;
    let r = request(Method::HEAD, &url, &[]).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    let r = get(&url).await;
    assert_busy(&r, "connections");
    assert_eq!(r.header("connection"), "close");
    let live = get(&format!("{}/livez", node.url())).await;
    assert_eq!(
        live.status,
        StatusCode::OK,
        "the probes are answered over the limit"
    );

    let m = scrape(node.metrics).await;
    for reason in ["requests", "connections"] {
        let series = format!(r#"speil_registry_rejected_total{{reason="{reason}"}}"#);
        assert!(value(&m, &series) >= 1.0, "{reason}: {m}");
    }
}

#[tokio::test]
async fn over_the_mirror_transfer_limit_the_client_gets_503_at_once() {
    let block = Block::random();
    let (d1, d2) = (tempfile::tempdir().unwrap(), crate::cluster::empty_layout());
    let img = image::write_image(d1.path(), "example.com/team/app:1.0", &[32 << 20], 53).unwrap();
    let holder = start_node(block, 1, d1.path(), &[]);
    let peers = format!("/ip4/{}/tcp/{ROUTER_PORT}", block.ip(1));
    let flags = [
        "--bootstrap-kind",
        "static",
        "--static-bootstrap-peers",
        &peers,
        "--mirror-max-transfers",
        "1",
    ]
    .map(String::from);
    let asker = start_node(block, 2, d2.path(), &flags);
    wait_state(&asker, "connected", Duration::from_secs(15)).await;
    let layer = &img.layers[0].digest;
    wait_provider(&asker, &layer.to_string(), &holder).await;

    // A blob forwarded from the holder, never read, holds the one transfer slot.
    let _stuck = stuck_blob_request(&asker, "team/app", layer).await;
    let r = get(&format!("{}{MANIFEST}", asker.url())).await;
    assert_busy(&r, "mirror_transfers");
    let m = scrape(asker.metrics).await;
    assert!(
        value(
            &m,
            r#"speil_registry_rejected_total{reason="mirror_transfers"}"#
        ) >= 1.0,
        "{m}"
    );
    // Its own content does not need a transfer slot.
    let own = get(&format!("{}/v2/", asker.url())).await;
    assert_eq!(own.status, StatusCode::OK);
}

#[test]
fn a_bound_of_zero_is_refused_naming_the_flag() {
    for (flag, value) in [
        ("--registry-max-requests", "0"),
        ("--registry-max-connections", "0"),
        ("--mirror-max-transfers", "0"),
        ("--registry-header-timeout", "0s"),
        ("--registry-idle-timeout", "soon"),
    ] {
        let out = Command::new(speil())
            .args(["run", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag}: {stderr}");
    }
}

on_each_containerd!(containerd_pulling_through_a_saturated_node_goes_upstream);

/// containerd's host files list a node whose one request slot is taken, then the "upstream"
/// registry (another node, serving the image as a registry would); the pull succeeds from
/// upstream, and the saturated node did refuse it.
async fn containerd_pulling_through_a_saturated_node_goes_upstream(version: Version) {
    let Some(ctd) = Containerd::start(version, false) else {
        return;
    };
    let block = Block::random();
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let big = image::write_image(d1.path(), "example.com/big:1", &[32 << 20], 54).unwrap();
    let saturated = start_node(
        block,
        1,
        d1.path(),
        &["--registry-max-requests".into(), "1".into()],
    );
    // Asked without `ns`, a node takes `team/app` as a docker.io repository.
    image::write_image(d2.path(), "docker.io/team/app:1.0", &[300_000, 2_000], 55).unwrap();
    let upstream = start_node(block, 2, d2.path(), &[]);

    let _stuck = stuck_blob_request(&saturated, "big", &big.layers[0].digest).await;
    let name = format!("{}/team/app:1.0", upstream.registry);
    write_hosts(&ctd.certs_dir(), upstream.registry, &saturated);

    ctd.pull_through_host_files(&name);
    // containerd asked the saturated node first, once per object (manifest HEAD and GET,
    // config, two layers); over a 429 it would have asked each five times before going on.
    let m = scrape(saturated.metrics).await;
    assert!(
        value(&m, r#"speil_registry_rejected_total{reason="requests"}"#) >= 4.0,
        "{m}"
    );
    let m = scrape(upstream.metrics).await;
    assert!(value(&m, r#"speil_mirror_bytes_total{source="local"}"#) >= 300_000.0);
}
