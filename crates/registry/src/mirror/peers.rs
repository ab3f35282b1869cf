//! What the mirror remembers about peers: which are quarantined after failing, and how long a
//! healthy peer takes to answer (for the hedge delay).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use p2p::{PeerId, Provider};

/// The hedge delay until enough answers have been timed.
const INITIAL_HEDGE: Duration = Duration::from_millis(50);
/// Answers timed before the hedge delay adapts.
const SAMPLES_BEFORE_ADAPTING: u32 = 8;
const MIN_HEDGE: Duration = Duration::from_millis(5);
const MAX_HEDGE: Duration = Duration::from_millis(500);
/// Most peers remembered as quarantined.
const QUARANTINE_MAX: usize = 4096;

/// Quarantine and answer times, shared by all requests.
pub(crate) struct Peers {
    quarantine_for: Duration,
    quarantined: Mutex<HashMap<PeerId, Instant>>,
    timing: Mutex<Timing>,
}

struct Timing {
    samples: u32,
    /// Exponentially weighted mean time to response headers, in seconds.
    mean: f64,
}

impl Peers {
    pub(crate) fn new(quarantine_for: Duration) -> Self {
        Peers {
            quarantine_for,
            quarantined: Mutex::new(HashMap::new()),
            timing: Mutex::new(Timing {
                samples: 0,
                mean: 0.0,
            }),
        }
    }

    /// Keeps `peer` out of every request for the quarantine period.
    pub(crate) fn quarantine(&self, peer: PeerId) {
        let mut q = self.quarantined.lock().expect("quarantine lock poisoned");
        let now = Instant::now();
        if q.len() >= QUARANTINE_MAX {
            q.retain(|_, until| *until > now);
        }
        q.insert(peer, now + self.quarantine_for);
    }

    /// Whether `peer` is quarantined now.
    pub(crate) fn is_quarantined(&self, peer: &PeerId) -> bool {
        let q = self.quarantined.lock().expect("quarantine lock poisoned");
        q.get(peer).is_some_and(|until| *until > Instant::now())
    }

    /// Records how long a peer took to send response headers.
    pub(crate) fn observe(&self, elapsed: Duration) {
        let mut t = self.timing.lock().expect("timing lock poisoned");
        let x = elapsed.as_secs_f64();
        t.mean = if t.samples == 0 {
            x
        } else {
            0.8 * t.mean + 0.2 * x
        };
        t.samples = t.samples.saturating_add(1);
    }

    /// How long to wait for one peer's headers before also asking the next: twice the usual
    /// answer time once known, 50 ms before.
    pub(crate) fn hedge_delay(&self) -> Duration {
        let t = self.timing.lock().expect("timing lock poisoned");
        if t.samples < SAMPLES_BEFORE_ADAPTING {
            return INITIAL_HEDGE;
        }
        Duration::from_secs_f64(t.mean * 2.0).clamp(MIN_HEDGE, MAX_HEDGE)
    }
}

/// The registry addresses of a provider: each of its router IPs at `port`, IPv6 and IPv4.
pub(crate) fn registry_addrs(provider: &Provider, port: u16) -> Vec<SocketAddr> {
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in &provider.addrs {
        if let Some(s) = p2p::bootstrap::socket_addr(a)
            && !ips.contains(&s.ip())
            && !s.ip().is_unspecified()
        {
            ips.push(s.ip());
        }
    }
    ips.into_iter()
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quarantine_expires() {
        let peers = Peers::new(Duration::from_millis(30));
        let p = PeerId::random();
        assert!(!peers.is_quarantined(&p));
        peers.quarantine(p);
        assert!(peers.is_quarantined(&p));
        std::thread::sleep(Duration::from_millis(40));
        assert!(!peers.is_quarantined(&p));
    }

    #[test]
    fn hedge_delay_adapts_within_bounds() {
        let peers = Peers::new(Duration::from_secs(1));
        assert_eq!(peers.hedge_delay(), INITIAL_HEDGE);
        for _ in 0..20 {
            peers.observe(Duration::from_millis(4));
        }
        assert_eq!(peers.hedge_delay(), Duration::from_millis(8));
        for _ in 0..40 {
            peers.observe(Duration::from_secs(5));
        }
        assert_eq!(peers.hedge_delay(), MAX_HEDGE);
    }

    #[test]
    fn registry_addresses_come_from_router_addresses() {
        let p = Provider {
            peer: PeerId::random(),
            addrs: vec![
                "/ip4/10.0.0.7/tcp/5001".parse().unwrap(),
                "/ip6/fd00::7/tcp/5001".parse().unwrap(),
                "/ip4/10.0.0.7/tcp/6001".parse().unwrap(),
            ],
        };
        let addrs = registry_addrs(&p, 5000);
        assert_eq!(
            addrs,
            vec![
                "10.0.0.7:5000".parse().unwrap(),
                "[fd00::7]:5000".parse().unwrap()
            ]
        );
    }
}
