//! Child processes that are always cleaned up: killed (with their process group) when the guard
//! is dropped, also when a test fails.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::Signal;
use nix::unistd::Pid;

/// Signals tests send to processes.
pub use nix::sys::signal::Signal as Sig;

/// A child process killed with its process group on drop.
pub struct Guard {
    child: Child,
}

impl Guard {
    /// Spawns `cmd` in its own process group.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Guard> {
        cmd.process_group(0);
        Ok(Guard {
            child: cmd.spawn()?,
        })
    }

    /// The child's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(self.pid(), signal);
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).expect("pids fit in i32"))
    }

    /// Waits up to `timeout` for the child to exit; its exit code, or `None` if still running or
    /// killed by a signal.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// The underlying child, e.g. to take its pipes.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // The whole group: the child and anything it started. (Not through the `kill`
            // program: procps-ng 4.0.2 mishandles negative pids and can signal every process.)
            let _ = nix::sys::signal::killpg(self.pid(), Signal::SIGKILL);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A running `speil` node started by a test.
pub struct Node {
    /// The process.
    pub guard: Guard,
    /// Where its registry listens.
    pub registry: SocketAddr,
    /// Where its metrics listen.
    pub metrics: SocketAddr,
    /// Its peer id.
    pub peer_id: String,
    /// Every log line it printed so far (JSON lines).
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    /// Starts `binary run` with `args` plus JSON logs and waits for its "speil started" line,
    /// from which the bound addresses are read (so tests can bind port 0).
    pub fn start(binary: &Path, args: &[&str]) -> Node {
        let mut cmd = Command::new(binary);
        cmd.arg("run").args(args).args(["--log-format", "json"]);
        Self::start_command(cmd)
    }

    /// Starts a prepared command that runs a node with JSON logs and waits for it to start.
    pub fn start_command(mut cmd: Command) -> Node {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut guard = Guard::spawn(&mut cmd).expect("spawning speil");
        let stderr = guard.child().stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    // In the log before it is sent: whoever waits for a line finds it there.
                    log.lock().unwrap().push(line.clone());
                    let _ = tx.send(line);
                }
            });
        }
        let started = loop {
            let line = match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(l) => l,
                Err(_) => panic!(
                    "speil did not start; its log:\n{}",
                    log.lock().unwrap().join("\n")
                ),
            };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if v["message"] == "speil started" {
                break v;
            }
        };
        let addr = |k: &str| -> SocketAddr {
            started[k]
                .as_str()
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("no {k} address in the start line: {started}"))
        };
        let peer_id = started["peer_id"].as_str().unwrap_or_default().to_owned();
        Node {
            registry: addr("registry"),
            metrics: addr("metrics"),
            peer_id,
            guard,
            log,
        }
    }

    /// The registry's base URL, `http://ip:port`.
    pub fn url(&self) -> String {
        format!("http://{}", self.registry)
    }

    /// Log lines at `level` (`"WARN"`, `"ERROR"`) so far.
    pub fn lines_at(&self, level: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v["level"] == level)
            })
            .cloned()
            .collect()
    }
}
