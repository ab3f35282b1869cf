//! The container image as a node runs it: `scripts/image.sh` builds it with buildah, a real
//! containerd (Debian's, private to the test) imports it, and `ctr run` starts it with runc on
//! the host network with containerd's socket, content directory, config and host files mounted.
//! Also what `scripts/image.sh` says about bad input.
//!
//! The image holds the static binary from `scripts/build-static.sh`. `scripts/test.sh` builds it
//! once and passes its path in `SPEIL_STATIC_BINARY`; without it the test builds it into a target
//! directory of its own (a cold release build: minutes).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use test_support::containerd::{Containerd, Version};
use test_support::net::{Block, METRICS_PORT, REGISTRY_PORT, ROUTER_PORT};
use test_support::prereq::require;
use test_support::process::Node;

use crate::cli::top_of;
use crate::cluster::{blobs_in, skopeo_copy, sorted, wait_state};
use crate::containerd::{NAME, import};

/// The tag the test builds, as `scripts/image.sh` names it by default.
const TAG: &str = concat!("localhost/speil:", env!("CARGO_PKG_VERSION"));
/// Where the binary is in the image.
const BINARY: &str = "/usr/local/bin/speil";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The static binary: `SPEIL_STATIC_BINARY`, or built by `scripts/build-static.sh`.
fn static_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("SPEIL_STATIC_BINARY") {
        return path.into();
    }
    // A target directory of its own: the one these tests were built in may be locked by the
    // cargo that runs them.
    let target = std::env::current_exe()
        .unwrap()
        .ancestors()
        .nth(3)
        .unwrap()
        .join("image-test");
    eprintln!(
        "SPEIL_STATIC_BINARY is not set: building the static binary into {} (minutes)",
        target.display()
    );
    let out = Command::new(repo().join("scripts/build-static.sh"))
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(out.status.success(), "build-static.sh: {}", text(&out));
    let stdout = String::from_utf8(out.stdout).unwrap();
    PathBuf::from(stdout.split_whitespace().next().expect("a path"))
}

/// A container in `containerd`, whose task and container are removed on drop, also when the
/// test fails (its `ctr run` process alone would leave both behind when killed).
struct Container<'a> {
    containerd: &'a Containerd,
    id: &'static str,
}

impl Drop for Container<'_> {
    fn drop(&mut self) {
        let ctr = |args: &[&str]| self.containerd.ctr_command().args(args).output().ok();
        for _ in 0..50 {
            let deleted =
                ctr(&["task", "delete", "--force", self.id]).is_some_and(|o| o.status.success());
            let listed = ctr(&["task", "ls", "-q"]).is_some_and(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .any(|t| t.trim() == self.id)
            });
            if deleted || !listed {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = ctr(&["containers", "delete", self.id]);
    }
}

/// `--mount` for `ctr run`: `src` at `dst` in the container.
fn mount(src: &Path, dst: &str, mode: &str) -> String {
    format!(
        "type=bind,src={},dst={dst},options=rbind:{mode}",
        src.display()
    )
}

/// `ctr run --rm --net-host` of the image as container `id` with `mounts`; the binary's arguments
/// are the caller's to add.
fn ctr_run(containerd: &Containerd, id: &str, mounts: &[String]) -> Command {
    let mut cmd = containerd.ctr_command();
    cmd.args(["run", "--rm", "--net-host"]);
    for m in mounts {
        cmd.arg("--mount").arg(m);
    }
    cmd.args([TAG, id, BINARY]);
    cmd
}

/// [`ctr_run`] of the image as container `id` with `mounts`, running `args`, to its end.
fn run_once(containerd: &Containerd, id: &'static str, mounts: &[String], args: &[&str]) -> Output {
    let _container = Container { containerd, id };
    ctr_run(containerd, id, mounts).args(args).output().unwrap()
}

/// [`run_once`], which must succeed; its standard output.
fn run_ok(containerd: &Containerd, id: &'static str, mounts: &[String], args: &[&str]) -> String {
    let out = run_once(containerd, id, mounts, args);
    assert!(out.status.success(), "{id}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `speil run` in `cmd` (a [`ctr_run`]) as node `n` of `block`, with `extra` flags and JSON logs.
fn start_node_in(mut cmd: Command, block: Block, n: u8, extra: &[&str]) -> Node {
    cmd.args(["run", "--registry-addr"])
        .arg(block.addr(n, REGISTRY_PORT).to_string())
        .arg("--metrics-addr")
        .arg(block.addr(n, METRICS_PORT).to_string())
        .arg("--router-addr")
        .arg(block.addr(n, ROUTER_PORT).to_string())
        .args(extra)
        .args(["--log-format", "json"]);
    Node::start_command(cmd)
}

/// `scripts/image.sh` builds the image into `archive` from the static binary, under its tag
/// and at most 25 MiB.
fn build_image(archive: &Path) {
    let built = Command::new(repo().join("scripts/image.sh"))
        .arg(archive)
        .env("SPEIL_BINARY", static_binary())
        .output()
        .unwrap();
    assert!(built.status.success(), "image.sh: {}", text(&built));
    assert!(
        String::from_utf8_lossy(&built.stdout).contains(TAG),
        "{}",
        text(&built)
    );
    let size = std::fs::metadata(archive).unwrap().len();
    assert!(size < 25 << 20, "the image is {size} bytes");
}

/// The image config in `archive`, as skopeo reads it: its labels and its entrypoint.
fn assert_image_config(skopeo: &Path, archive: &Path) {
    let inspected = Command::new(skopeo)
        .args(["inspect", "--config"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(inspected.status.success(), "{}", text(&inspected));
    let config: serde_json::Value = serde_json::from_slice(&inspected.stdout).unwrap();
    let labels = &config["config"]["Labels"];
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(labels["org.opencontainers.image.licenses"], "Apache-2.0");
    assert!(
        labels["org.opencontainers.image.source"]
            .as_str()
            .is_some_and(|s| s.starts_with("https://")),
        "{labels}"
    );
    assert_eq!(config["config"]["Entrypoint"][0], BINARY);
}

/// The mounts a DaemonSet gives the node: containerd's socket, content directory and config at
/// their usual places, its host-file directory where containerd's config says it is.
fn daemonset_mounts(ctd: &Containerd) -> [String; 4] {
    let certs = ctd.certs_dir();
    [
        mount(&ctd.socket(), "/run/containerd/containerd.sock", "rw"),
        mount(
            &ctd.content_path(),
            "/var/lib/containerd/io.containerd.content.v1.content",
            "ro",
        ),
        mount(&ctd.config_file(), "/etc/containerd/config.toml", "ro"),
        mount(&certs, certs.to_str().unwrap(), "rw"),
    ]
}

/// `speil configure` run from the image writes the host file containerd reads, naming `node`.
fn assert_configure_from_the_image(ctd: &Containerd, node: &Node) {
    let certs = ctd.certs_dir();
    let certs_str = certs.to_str().unwrap();
    run_ok(
        ctd,
        "speil-configure",
        &[mount(&certs, certs_str, "rw")],
        &[
            "configure",
            "--containerd-registry-config-path",
            certs_str,
            "--mirrored-registries",
            "https://example.com",
            "--mirror-targets",
            &node.url(),
        ],
    );
    let hosts = std::fs::read_to_string(certs.join("example.com/hosts.toml")).unwrap();
    assert!(hosts.contains(&node.url()), "{hosts}");
}

/// A node started without containerd's socket names `socket` in its log and in `speil status`
/// (run from the image too), which says broken; nothing panics.
fn assert_the_bare_node_names_the_socket(ctd: &Containerd, bare: &Node, socket: &str) {
    let warns = bare.lines_at("WARN");
    assert!(
        warns
            .iter()
            .any(|l| l.contains("containerd does not answer") && l.contains(socket)),
        "{warns:?}"
    );
    let status = run_once(
        ctd,
        "speil-status",
        &[],
        &["status", "--addr", &format!("http://{}", bare.metrics)],
    );
    assert_eq!(status.status.code(), Some(2), "{}", text(&status));
    assert!(text(&status).contains(socket), "{}", text(&status));
    assert!(!text(&status).contains("panicked"), "{}", text(&status));
    assert!(bare.lines_at("ERROR").is_empty());
}

#[tokio::test]
async fn the_image_runs_as_a_node_under_containerd() {
    let (Some(_), Some(_), Some(skopeo)) = (
        require("buildah", "buildah"),
        require("runc", "runc"),
        require("skopeo", "skopeo"),
    ) else {
        return;
    };
    let Some(ctd) = Containerd::start(Version::V1_6, false) else {
        return;
    };
    let work = tempfile::tempdir().unwrap();

    // Build the image and load it into containerd, as a node's operator would.
    let archive = work.path().join("speil.tar");
    build_image(&archive);
    assert_image_config(&skopeo, &archive);
    ctd.ctr(&["images", "import", archive.to_str().unwrap()]);
    let img = import(&ctd, 44);

    let version = run_ok(&ctd, "speil-version", &[], &["version"]);
    assert_eq!(version.trim(), concat!("speil ", env!("CARGO_PKG_VERSION")));

    // `speil run` in the image, mounted as a DaemonSet mounts it.
    let certs = ctd.certs_dir();
    let block = Block::random();
    let registry = block.addr(1, REGISTRY_PORT).to_string();
    let _node_container = Container {
        containerd: &ctd,
        id: "speil-node",
    };
    let node = start_node_in(
        ctr_run(&ctd, "speil-node", &daemonset_mounts(&ctd)),
        block,
        1,
        &["--containerd-registry-config-path", certs.to_str().unwrap()],
    );
    wait_state(&node, "standalone", Duration::from_secs(10)).await;

    // It serves what containerd holds, byte for byte.
    let dest = work.path().join("copy");
    skopeo_copy(
        &skopeo,
        &format!("docker://{registry}/{NAME}"),
        &dest,
        false,
    );
    assert_eq!(top_of(&dest), img.top.digest);
    assert_eq!(blobs_in(&dest), sorted(img.digests.clone()));

    assert_configure_from_the_image(&ctd, &node);

    let loud: Vec<String> = [node.lines_at("WARN"), node.lines_at("ERROR")].concat();
    assert!(loud.is_empty(), "{loud:?}");

    // Started without containerd's socket mounted, a node runs anyway and names the socket it
    // cannot reach, in its log and in `speil status` (run from the image too); nothing panics.
    let _bare_container = Container {
        containerd: &ctd,
        id: "speil-bare",
    };
    let bare = start_node_in(ctr_run(&ctd, "speil-bare", &[]), block, 2, &[]);
    assert_the_bare_node_names_the_socket(&ctd, &bare, "/run/containerd/containerd.sock");
}

/// `scripts/image.sh` with `args` and `PATH`; its exit code and output.
fn image_sh(args: &[&Path], path: &std::ffi::OsStr) -> (Option<i32>, String) {
    let out = Command::new("/bin/bash")
        .arg(repo().join("scripts/image.sh"))
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap();
    (out.status.code(), text(&out))
}

#[test]
fn image_sh_names_what_is_wrong_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = std::env::var_os("PATH").unwrap_or_default();

    // An output path that cannot be written.
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    let out = file.join("speil.tar");
    let (code, said) = image_sh(&[&out], &path);
    assert_eq!(code, Some(1), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains(out.to_str().unwrap()), "{said}");

    // A machine without buildah: every program on PATH but buildah.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for d in std::env::split_paths(&path) {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let name = entry.file_name();
            if name != "buildah" && !bin.join(&name).exists() {
                std::os::unix::fs::symlink(entry.path(), bin.join(&name)).unwrap();
            }
        }
    }
    let (code, said) = image_sh(&[&dir.path().join("speil.tar")], bin.as_os_str());
    assert_eq!(code, Some(1), "{said}");
    assert_eq!(said.lines().count(), 1, "{said}");
    assert!(said.contains("buildah not found"), "{said}");
}
