//! The README's shell blocks, run as a new user pastes them: taken from README.md by this test,
//! so a README edit that breaks them fails here. Only what must not clash with other tests is
//! substituted: the `/tmp` paths (a temporary directory), the cargo commands (the binary the
//! tests built) and, in the two-node block, the loopback addresses (a random `127.A.B.n` block
//! instead of 127.0.0.1 and 127.0.0.2). The quick start runs on the addresses it names; no other
//! test binds 127.0.0.1's fixed ports.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use test_support::metrics::value;
use test_support::net::Block;
use test_support::prereq::require;
use test_support::process::Guard;

use crate::cluster::speil;

const README: &str = include_str!("../../../../README.md");

/// The ```sh blocks of the README, each as one string.
fn shell_blocks() -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in README.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(_), "```") => blocks.extend(current.take()),
            (Some(block), l) => {
                block.push_str(l);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// The one block that contains `marker`.
fn block_with(marker: &str) -> String {
    let found: Vec<String> = shell_blocks()
        .into_iter()
        .filter(|b| b.contains(marker))
        .collect();
    assert_eq!(found.len(), 1, "README blocks with {marker:?}: {found:#?}");
    found.into_iter().next().unwrap()
}

/// The block as this test runs it: this test's paths and binary, and `net`'s addresses.
fn localise(block: &str, net: Option<Block>, tmp: &Path) -> String {
    let bin = speil().display().to_string();
    // The paths first: the binary's own path may be under /tmp too.
    let mut script = block
        .replace("/tmp/", &format!("{}/", tmp.display()))
        .replace("cargo build --release -p speil", ": already built")
        .replace("cargo run --release -p speil --", &bin)
        .replace("target/release/speil", &bin);
    if let Some(net) = net {
        script = script
            .replace("127.0.0.1", &net.ip(1).to_string())
            .replace("127.0.0.2", &net.ip(2).to_string());
    }
    script
}

/// bash running `script` in `dir`, in its own process group; every job it started in the
/// background is killed when it exits (a terminal's user would press Ctrl-C).
fn bash(script: &str, dir: &Path) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(format!(
            "set -eo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true; wait' EXIT\n{script}"
        ))
        .current_dir(dir);
    cmd
}

#[test]
fn the_quick_start_serves_an_image_that_skopeo_pulls() {
    let Some(_) = require("skopeo", "skopeo") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let block = block_with("demo --registry-addr");
    let script = localise(block.trim(), None, tmp.path());
    let mut cmd = bash(&script, tmp.path());
    cmd.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut demo = Guard::spawn(&mut cmd).unwrap();
    let stderr = demo.child().stderr.take().unwrap();

    // The demo prints how to pull the image once it serves it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    let pull = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("the demo printed no pull command:\n{}", seen.join("\n")));
        if line.trim_start().starts_with("skopeo copy") {
            break line;
        }
        seen.push(line);
    };
    let started = seen
        .iter()
        .find(|l| l.contains("speil started"))
        .unwrap_or_else(|| {
            panic!(
                "the pull command came before the node started:\n{}",
                seen.join("\n")
            )
        });
    // A demo binds loopback only: the router too, though the command does not name it.
    assert!(
        started.contains("router=/ip4/127.0.0.1/tcp/5001"),
        "{started}"
    );
    // Logs to a pipe carry no colour codes.
    assert!(!seen.iter().any(|l| l.contains('\x1b')), "{seen:#?}");
    let dest = tmp.path().join("hello");
    let pull = pull.replace("oci:/tmp/hello", &format!("oci:{}", dest.display()));
    let out = bash(&pull, tmp.path()).output().unwrap();
    assert!(
        out.status.success(),
        "{pull}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dest.join("index.json").is_file());
}

#[test]
fn the_two_node_block_pulls_layers_from_the_peer() {
    let Some(_) = require("skopeo", "skopeo") else {
        return;
    };
    require("curl", "curl");
    let tmp = tempfile::tempdir().unwrap();
    let block = block_with("--no-sample");
    let script = localise(&block, Some(Block::random()), tmp.path());
    let (out, err) = (tmp.path().join("stdout"), tmp.path().join("stderr"));
    let mut cmd = bash(&script, tmp.path());
    cmd.stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let mut run = Guard::spawn(&mut cmd).unwrap();
    let code = run.wait_timeout(Duration::from_secs(90));
    drop(run);
    let stdout = std::fs::read_to_string(&out).unwrap();
    let stderr = std::fs::read_to_string(&err).unwrap();
    assert_eq!(
        code,
        Some(0),
        "{script}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );

    // `speil status --cluster` found both nodes, and the metric line counts layer bytes.
    assert!(
        stdout.contains("2 nodes seen, 0 not ready, 0 isolated, 0 unreachable; result: ok"),
        "{stdout}"
    );
    let series = r#"speil_mirror_bytes_total{source="peer"}"#;
    assert!(value(&stdout, series) > 0.0, "{stdout}");
    assert!(tmp.path().join("hello-from-peer/index.json").is_file());
}
