//! A real containerd for tests (Debian's `containerd`, 1.6): a private daemon with its own root,
//! state and socket in a temp dir, the CRI plugin on and its registry `config_path` pointing at
//! the test's host-file directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Guard, Sig};

/// A running private containerd.
pub struct Containerd {
    program: PathBuf,
    ctr: PathBuf,
    dir: tempfile::TempDir,
    guard: Option<Guard>,
}

impl Containerd {
    /// Starts containerd; `None` when it is missing outside CI (under CI it panics).
    /// `discard_unpacked_layers` is the CRI setting of that name.
    pub fn start(discard_unpacked_layers: bool) -> Option<Containerd> {
        let program = crate::prereq::require("containerd", "containerd")?;
        let ctr = crate::prereq::require("ctr", "containerd")?;
        let dir = tempfile::Builder::new()
            .prefix("speil-containerd")
            .tempdir()
            .unwrap();
        let d = dir.path();
        for sub in ["root", "state", "certs.d", "cni/net.d", "cni/bin", "opt"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let config = format!(
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
      discard_unpacked_layers = {discard_unpacked_layers}
    [plugins."io.containerd.grpc.v1.cri".cni]
      conf_dir = "{d}/cni/net.d"
      bin_dir = "{d}/cni/bin"
    [plugins."io.containerd.grpc.v1.cri".registry]
      config_path = "{d}/certs.d"
"#,
            d = d.display()
        );
        std::fs::write(d.join("config.toml"), config).unwrap();
        let mut c = Containerd {
            program,
            ctr,
            dir,
            guard: None,
        };
        c.restart();
        Some(c)
    }

    /// Starts the daemon again (after [`Containerd::stop`]) with the same root and state.
    pub fn restart(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("log.txt")).unwrap();
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
            "containerd did not start: {}",
            std::fs::read_to_string(self.dir.path().join("log.txt")).unwrap_or_default()
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
