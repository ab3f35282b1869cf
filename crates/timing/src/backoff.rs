//! Exponential backoff with jitter: the delay doubles from `min` up to `max` with each failure,
//! and each delay is spread by ±20% so that nodes which failed together (a DaemonSet starting at
//! once, a containerd restart on every node) do not retry in lockstep.

use std::time::Duration;

use rand::Rng as _;

/// Delays between retries; [`Backoff::reset`] after a success.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
}

/// Doublings after which the delay has reached any sensible `max` (2^10 × `min`).
const MAX_DOUBLINGS: u32 = 10;

impl Backoff {
    /// A backoff whose first delay is about `min` and whose delays never exceed `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            attempt: 0,
        }
    }

    /// The delay before the next retry; each call counts one more failure.
    pub fn next_delay(&mut self) -> Duration {
        let base = self
            .min
            .saturating_mul(1 << self.attempt.min(MAX_DOUBLINGS))
            .min(self.max);
        self.attempt = self.attempt.saturating_add(1);
        base.mul_f64(rand::rng().random_range(0.8..1.2))
            .min(self.max)
    }

    /// Starts again from `min` (after a success).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_within_jitter_and_stops_at_max() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
        let first = b.next_delay();
        assert!(first >= Duration::from_millis(400) && first <= Duration::from_millis(600));
        let second = b.next_delay();
        assert!(second >= Duration::from_millis(800) && second <= Duration::from_millis(1200));
        for _ in 0..20 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        assert!(b.next_delay() >= Duration::from_secs(24), "stays near max");
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(600));
    }

    #[test]
    fn a_max_below_min_is_min() {
        let mut b = Backoff::new(Duration::from_secs(2), Duration::from_secs(1));
        assert!(b.next_delay() <= Duration::from_secs(2));
    }
}
