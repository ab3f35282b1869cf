//! Checks of containerd's own configuration for the known ways a mirror ends up unused: host
//! files not enabled or in another directory, legacy mirror settings, layers discarded after
//! unpacking, and containerd 2.1's transfer-service pulls with a `config_path` list.
//!
//! The config is parsed once into a view of what the checks read (`layout.rs`, which also says
//! where each config version keeps its keys); each finding is one function over that view
//! (`findings.rs`). A new check is a new function in that list.

mod findings;
mod layout;
#[cfg(test)]
mod tests;

use std::fs;
use std::path::Path;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Speil works, but less well than it could (for example, peers cannot be served).
    Warn,
    /// containerd will not use Speil, or will not run pods at all.
    Error,
}

/// One problem found in containerd's configuration.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Finding {
    /// Stable snake_case identifier, for scripts and documentation.
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong and what containerd does because of it.
    pub message: String,
    /// What to change, naming the exact table and key.
    pub fix: String,
}

impl Finding {
    fn new(id: &'static str, severity: Severity, message: String, fix: String) -> Self {
        Finding {
            id,
            severity,
            message,
            fix,
        }
    }
}

/// Reads containerd's config file and checks it; see [`check_str`]. A file that cannot be read
/// is a `config_unreadable` finding, never an error.
pub fn check(
    config_file: &Path,
    hosts_dir: &Path,
    containerd_version: Option<&str>,
) -> Vec<Finding> {
    match fs::read_to_string(config_file) {
        Ok(text) => check_str(&text, hosts_dir, containerd_version),
        Err(error) => vec![Finding::new(
            "config_unreadable",
            Severity::Error,
            format!(
                "{}: {error}; containerd's registry settings cannot be checked",
                config_file.display()
            ),
            "Point Speil at containerd's config file (usually /etc/containerd/config.toml) and \
             mount it read-only into Speil's pod."
                .to_owned(),
        )],
    }
}

/// [`check`] on the blocking pool, for async callers such as the status endpoint.
pub async fn check_async(
    config_file: &Path,
    hosts_dir: &Path,
    containerd_version: Option<&str>,
) -> Vec<Finding> {
    let config_file = config_file.to_path_buf();
    let hosts_dir = hosts_dir.to_path_buf();
    let version = containerd_version.map(str::to_owned);
    crate::blocking(
        move || check(&config_file, &hosts_dir, version.as_deref()),
        Vec::new(),
    )
    .await
}

/// Checks the text of containerd's config file. `hosts_dir` is the directory Speil writes host
/// files into; `containerd_version` (`"2.1.0"`, `"v1.7.27"`) enables version-specific checks
/// when known.
pub fn check_str(
    config_text: &str,
    hosts_dir: &Path,
    containerd_version: Option<&str>,
) -> Vec<Finding> {
    match layout::View::parse(config_text, hosts_dir, containerd_version) {
        Ok(view) => findings::ALL
            .iter()
            .filter_map(|check| check(&view))
            .collect(),
        Err(message) => vec![findings::config_malformed(message)],
    }
}
