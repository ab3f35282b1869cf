//! Everything Speil knows about containerd: a [`store::ContentStore`] over containerd's content
//! store (gRPC for metadata and events, the content directory on disk for bytes), the registry
//! host files (`certs.d/<registry>/hosts.toml`) that make containerd ask Speil first, and checks
//! of containerd's own configuration for the known ways a mirror ends up unused.

pub mod checks;
mod content;
pub mod hosts;
pub use content::{Config, Containerd};

/// Runs blocking `work` (file reads) on tokio's blocking pool and awaits it; `fallback` when the
/// runtime is shutting down. A panic in `work` resumes in the caller.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static, fallback: T) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => fallback,
    }
}
