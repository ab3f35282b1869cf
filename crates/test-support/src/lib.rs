//! Shared by Speil's tests and benchmarks: generated images, launchers of the real programs
//! tests run (the `speil` binary, skopeo), an HTTP client, a rogue P2P peer (`rogue`), and the
//! prerequisite check that makes a missing tool fail under CI instead of passing silently.

pub mod browser;
pub mod containerd;
pub mod dns;
pub mod http;
pub mod image;
pub mod metrics;
pub mod net;
pub mod prereq;
pub mod process;
pub mod rogue;
pub mod throttle;

/// Polls `check` every 100 ms until it returns `Some`, or panics after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: std::time::Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
