//! Shared by Speil's tests and benchmarks: generated images, launchers of the real programs
//! tests run (the `speil` binary, skopeo), an HTTP client, and the prerequisite check that makes
//! a missing tool fail under CI instead of passing silently.

pub mod http;
pub mod image;
pub mod prereq;
pub mod process;
