//! Everything Speil knows about containerd: a [`store::ContentStore`] over containerd's content
//! store (gRPC for metadata and events, the content directory on disk for bytes), the registry
//! host files (`certs.d/<registry>/hosts.toml`) that make containerd ask Speil first, and checks
//! of containerd's own configuration for the known ways a mirror ends up unused.

pub mod checks;
mod content;
pub mod hosts;
pub use content::{Config, Containerd};
