//! A real containerd for tests, in either of the versions Speil is tested on: Debian's package
//! (1.6, config version 2) or containerd 2.x built by scripts/containerd2.sh (config version 3,
//! 2.x's plugin names). Each runs as a private daemon with its own root, state and socket in a
//! temp dir, the CRI plugin on and its registry `config_path` pointing at the test's host-file
//! directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Guard, Sig};

/// The containerd 2.x release scripts/containerd2.sh builds (a test keeps the two in step).
pub const V2_RELEASE: &str = "v2.4.2";

/// The containerd a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// Debian's `containerd` package (1.6.20 on bookworm), configured with config version 2.
    V1_6,
    /// containerd [`V2_RELEASE`], configured with config version 3 and 2.x's plugin names.
    V2,
}

impl Version {
    /// `containerd` and `ctr` of this version; `None` when missing outside CI (under CI it
    /// panics).
    fn programs(self) -> Option<(PathBuf, PathBuf)> {
        match self {
            Version::V1_6 => Some((
                crate::prereq::require("containerd", "containerd")?,
                crate::prereq::require("ctr", "containerd")?,
            )),
            Version::V2 => {
                let bin = v2_bin();
                let (containerd, ctr) = (bin.join("containerd"), bin.join("ctr"));
                if containerd.is_file() && ctr.is_file() {
                    Some((containerd, ctr))
                } else {
                    crate::prereq::missing(&format!(
                        "containerd {V2_RELEASE} at {} (SPEIL_CONTAINERD2_BIN); \
                         run ./scripts/containerd2.sh, which builds it with Go",
                        bin.display()
                    ))
                }
            }
        }
    }
}

/// Where scripts/containerd2.sh puts containerd 2.x: `SPEIL_CONTAINERD2_BIN`, else its cache.
fn v2_bin() -> PathBuf {
    if let Some(dir) = std::env::var_os("SPEIL_CONTAINERD2_BIN") {
        return PathBuf::from(dir);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/root/.cache"));
    cache.join("speil-containerd").join(V2_RELEASE).join("bin")
}

/// What a test sets in containerd's configuration; the default is a configuration Speil
/// works with.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The CRI setting of that name.
    pub discard_unpacked_layers: bool,
    /// containerd 2.x's `use_local_image_pull`; `None` leaves it out (the transfer service).
    pub use_local_image_pull: Option<bool>,
    /// A directory listed after the test's host-file directory in `config_path`, making it a
    /// colon-separated list.
    pub config_path_also: Option<PathBuf>,
}

/// A running private containerd.
pub struct Containerd {
    version: Version,
    program: PathBuf,
    ctr: PathBuf,
    dir: tempfile::TempDir,
    guard: Option<Guard>,
}

impl Containerd {
    /// Starts containerd `version` with the CRI's `discard_unpacked_layers` as given; `None`
    /// when it is missing outside CI (under CI it panics).
    pub fn start(version: Version, discard_unpacked_layers: bool) -> Option<Containerd> {
        Self::start_with(
            version,
            &Settings {
                discard_unpacked_layers,
                ..Settings::default()
            },
        )
    }

    /// Starts containerd `version` configured with `settings`.
    pub fn start_with(version: Version, settings: &Settings) -> Option<Containerd> {
        let (program, ctr) = version.programs()?;
        let dir = tempfile::Builder::new()
            .prefix("speil-containerd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["root", "state", "certs.d", "cni/net.d", "cni/bin", "opt"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let config = match version {
            Version::V1_6 => config_v2(d, settings),
            Version::V2 => config_v3(d, settings),
        };
        std::fs::write(d.join("config.toml"), config).unwrap();
        let mut c = Containerd {
            version,
            program,
            ctr,
            dir,
            guard: None,
        };
        c.restart();
        Some(c)
    }

    /// The version this daemon is.
    pub fn version(&self) -> Version {
        self.version
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log.txt")).unwrap_or_default()
    }

    /// Starts the daemon again (after [`Containerd::stop`]) with the same root and state.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log.txt"))
            .unwrap();
        let mut cmd = Command::new(&self.program);
        cmd.arg("--config")
            .arg(self.config_file())
            .stdout(Stdio::null())
            .stderr(log);
        self.guard = Some(Guard::spawn(&mut cmd).expect("starting containerd"));
        for _ in 0..100 {
            if self.socket().exists() && self.ctr_ok(&["version"]) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "containerd {:?} did not start: {}",
            self.version,
            self.log()
        );
    }

    /// Stops the daemon gracefully (its content stays).
    pub fn stop(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.signal(Sig::SIGTERM);
            g.wait_timeout(Duration::from_secs(10));
        }
    }

    /// The gRPC socket.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    /// The daemon's config file.
    pub fn config_file(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    /// The content directory.
    pub fn content_path(&self) -> PathBuf {
        self.dir
            .path()
            .join("root/io.containerd.content.v1.content")
    }

    /// The registry host-file directory the CRI reads.
    pub fn certs_dir(&self) -> PathBuf {
        self.dir.path().join("certs.d")
    }

    /// The flags that point `speil run` at this containerd.
    pub fn speil_flags(&self) -> Vec<String> {
        vec![
            "--containerd-sock".into(),
            self.socket().display().to_string(),
            "--containerd-content-path".into(),
            self.content_path().display().to_string(),
            "--containerd-config".into(),
            self.config_file().display().to_string(),
            "--containerd-registry-config-path".into(),
            self.certs_dir().display().to_string(),
        ]
    }

    /// `ctr --address <socket> -n k8s.io`, to add a subcommand to.
    pub fn ctr_command(&self) -> Command {
        let mut cmd = Command::new(&self.ctr);
        cmd.arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io"]);
        cmd
    }

    /// Runs `ctr -n k8s.io ARGS` and returns its output; panics on failure.
    pub fn ctr(&self, args: &[&str]) -> String {
        let out = self.ctr_command().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "ctr {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ctr images pull --hosts-dir` of `name` through this containerd's host files (as
    /// `speil configure` wrote them); panics unless the pull succeeds and the image is listed.
    pub fn pull_through_host_files(&self, name: &str) {
        let certs = self.certs_dir();
        self.ctr(&[
            "images",
            "pull",
            "--hosts-dir",
            certs.to_str().unwrap(),
            name,
        ]);
        assert!(self.ctr(&["images", "ls", "-q"]).contains(name));
    }

    fn ctr_ok(&self, args: &[&str]) -> bool {
        Command::new(&self.ctr)
            .arg("--address")
            .arg(self.socket())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Imports the OCI layout at `layout` (as a tar archive) into the k8s.io namespace.
    pub fn import_layout(&self, layout: &Path) {
        let archive = self.dir.path().join("import.tar");
        let mut builder = tar::Builder::new(std::fs::File::create(&archive).unwrap());
        builder.append_dir_all(".", layout).unwrap();
        builder.finish().unwrap();
        self.ctr(&["images", "import", archive.to_str().unwrap()]);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.stop();
        // Unmount anything the snapshotter left mounted under the root before the dir goes.
        let root = self.dir.path().join("root");
        if let Ok(mounts) = std::fs::read_to_string("/proc/mounts") {
            for line in mounts.lines() {
                if let Some(target) = line.split_whitespace().nth(1)
                    && target.starts_with(root.to_str().unwrap_or("\u{0}"))
                {
                    let _ = Command::new("umount").arg(target).status();
                }
            }
        }
    }
}

/// `config_path` as `settings` want it under the test dir `d`.
fn config_path(d: &Path, settings: &Settings) -> String {
    match &settings.config_path_also {
        Some(also) => format!("{}/certs.d:{}", d.display(), also.display()),
        None => format!("{}/certs.d", d.display()),
    }
}

/// containerd 1.6's configuration: version 2, the CRI plugin's tables under
/// `io.containerd.grpc.v1.cri`.
fn config_v2(d: &Path, settings: &Settings) -> String {
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".containerd]
      snapshotter = "overlayfs"
      discard_unpacked_layers = {discard}
    [plugins."io.containerd.grpc.v1.cri".cni]
      conf_dir = "{d}/cni/net.d"
      bin_dir = "{d}/cni/bin"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "{config_path}"
"#,
        d = d.display(),
        discard = settings.discard_unpacked_layers,
        config_path = config_path(d, settings),
    )
}

/// containerd 2.x's configuration: version 3, the CRI split into `io.containerd.cri.v1.images`
/// (registry, layers, how to pull) and `io.containerd.cri.v1.runtime` (CNI), with
/// `io.containerd.grpc.v1.cri` only serving. NRI is off: its socket is one fixed path for the
/// whole machine, and tests run several daemons at once.
fn config_v3(d: &Path, settings: &Settings) -> String {
    let local_pull = settings
        .use_local_image_pull
        .map(|v| format!("    use_local_image_pull = {v}\n"))
        .unwrap_or_default();
    format!(
        r#"version = 3
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.nri.v1.nri",
]

[grpc]
  address = "{d}/containerd.sock"

[ttrpc]
  address = "{d}/containerd.sock.ttrpc"

# Tests read how the CRI pulled (transfer service or local pull) from the debug log.
[debug]
  level = "debug"

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = "{d}/opt"
  [plugins."io.containerd.cri.v1.images"]
    snapshotter = "overlayfs"
    discard_unpacked_layers = {discard}
{local_pull}    [plugins."io.containerd.cri.v1.images".registry]
      config_path = "{config_path}"
  [plugins."io.containerd.cri.v1.runtime"]
    [plugins."io.containerd.cri.v1.runtime".cni]
      conf_dir = "{d}/cni/net.d"
      bin_dirs = ["{d}/cni/bin"]
  [plugins."io.containerd.grpc.v1.cri"]
    disable_tcp_service = true
"#,
        d = d.display(),
        discard = settings.discard_unpacked_layers,
        config_path = config_path(d, settings),
    )
}

/// A gRPC channel to the containerd listening on `socket` (its API and the CRI), the way kubelet
/// and ctr reach it (the URI is a placeholder tonic requires).
pub async fn grpc_channel(socket: &Path) -> Result<tonic::transport::Channel, String> {
    let shown = socket.display().to_string();
    let socket = socket.to_owned();
    let endpoint =
        tonic::transport::Endpoint::try_from("http://[::]").map_err(|e| e.to_string())?;
    endpoint
        .connect_with_connector(tower::service_fn(move |_| {
            let socket = socket.clone();
            async move {
                let stream = tokio::net::UnixStream::connect(socket).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            }
        }))
        .await
        .map_err(|e| format!("connecting to containerd at {shown}: {e}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_pinned_release_is_the_one_the_build_script_builds() {
        let script = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/containerd2.sh"
        ))
        .unwrap();
        assert!(
            script
                .lines()
                .any(|l| l == format!("VERSION={}", super::V2_RELEASE)),
            "scripts/containerd2.sh does not pin {}",
            super::V2_RELEASE
        );
    }
}
