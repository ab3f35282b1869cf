//! Time helpers shared by the crates that retry or timestamp: [`unix_now`] for the wall clock as
//! the status document and metrics show it, and [`Backoff`] for the delays between retries of
//! something that is down (containerd, the bootstrap source).

mod backoff;

pub use backoff::Backoff;

use std::time::{Duration, SystemTime};

/// Time since the Unix epoch now (zero if the clock is set before 1970).
pub fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Whole seconds since the Unix epoch now.
pub fn unix_now_secs() -> u64 {
    unix_now().as_secs()
}
