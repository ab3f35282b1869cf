//! A real DNS server for bootstrap tests: dnsmasq (Debian `dnsmasq-base`) answering A records
//! for names from a hosts file, re-read on SIGHUP, with a TTL of 0 so no answer is cached.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::process::{Guard, Sig};

/// A running dnsmasq.
pub struct Dnsmasq {
    program: PathBuf,
    guard: Option<Guard>,
    hosts: PathBuf,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Dnsmasq {
    /// Starts dnsmasq on `addr` answering `name` with `ips`; `None` when dnsmasq is missing
    /// (outside CI; under CI it panics).
    pub fn start(addr: SocketAddr, name: &str, ips: &[IpAddr]) -> Option<Dnsmasq> {
        let program = crate::prereq::require("dnsmasq", "dnsmasq-base")?;
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts");
        let mut d = Dnsmasq {
            program,
            guard: None,
            hosts,
            addr,
            _dir: dir,
        };
        d.write(name, ips);
        d.restart();
        Some(d)
    }

    /// Starts the server again after [`Dnsmasq::stop`], with the records it had.
    pub fn restart(&mut self) {
        let mut cmd = Command::new(&self.program);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            // Authoritative for .test, as cluster DNS is for its domain: a name it does not
            // list is NXDOMAIN, not a refusal.
            "--local=/test/",
            "--bind-interfaces",
            "--user=root",
            "--pid-file=",
            "--local-ttl=0",
            "--log-facility=-",
        ])
        .arg(format!("--listen-address={}", self.addr.ip()))
        .arg(format!("--port={}", self.addr.port()))
        .arg(format!("--addn-hosts={}", self.hosts.display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        self.guard = Some(Guard::spawn(&mut cmd).expect("starting dnsmasq"));
        self.wait_answering();
    }

    /// Where it answers.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the records of `name` and has dnsmasq re-read them.
    pub fn set(&mut self, name: &str, ips: &[IpAddr]) {
        self.write(name, ips);
        if let Some(g) = &self.guard {
            g.signal(Sig::SIGHUP);
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    /// Stops the server (lookups then fail).
    pub fn stop(&mut self) {
        self.guard = None;
    }

    fn write(&self, name: &str, ips: &[IpAddr]) {
        let lines: String = ips.iter().map(|ip| format!("{ip} {name}\n")).collect();
        std::fs::write(&self.hosts, lines).unwrap();
    }

    fn wait_answering(&self) {
        // dnsmasq binds before it forks nothing (foreground); give it a moment to bind.
        for _ in 0..100 {
            if std::net::UdpSocket::bind(self.addr).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("dnsmasq did not bind {}", self.addr);
    }
}
