//! Reading Speil's host files back, for the status and for `speil cleanup-wait`: which
//! registries are configured and which hosts each lists.

use std::fs;
use std::path::Path;

use toml_edit::{DocumentMut, Item};

use super::shared::{BACKUP, BACKUP_PARTIAL, HOSTS_FILE, MARKER};
use super::write::entries;

/// One host file Speil wrote, as [`speil_host_files`] finds it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HostFile {
    /// The directory's name: a registry host (`docker.io`, `ghcr.io`) or `_default`.
    pub registry: String,
    /// The `[host."<url>"]` entries, in the order containerd tries them.
    pub hosts: Vec<String>,
}

/// The host files under `config_path` that Speil wrote (recognised by [`MARKER`]), in directory
/// order; unreadable or foreign files are left out, and an unreadable directory gives none.
pub fn speil_host_files(config_path: &Path) -> Vec<HostFile> {
    let Ok(list) = entries(config_path) else {
        return Vec::new();
    };
    list.into_iter()
        .filter(|(name, _)| name != BACKUP && name != BACKUP_PARTIAL)
        .filter_map(|(registry, dir)| {
            let text = fs::read_to_string(dir.join(HOSTS_FILE)).ok()?;
            if !text.starts_with(MARKER) {
                return None;
            }
            let doc = text.parse::<DocumentMut>().ok()?;
            let hosts = doc
                .get("host")
                .and_then(Item::as_table_like)
                .map(|t| t.iter().map(|(url, _)| url.to_owned()).collect())
                .unwrap_or_default();
            Some(HostFile { registry, hosts })
        })
        .collect()
}

/// Whether `config_path` holds a Speil host file that lists `mirror_target` as a host, i.e.
/// whether containerd on this node is pointed at that Speil. Unreadable files count as no.
pub fn is_configured(config_path: &Path, mirror_target: &str) -> bool {
    speil_host_files(config_path)
        .iter()
        .any(|f| f.hosts.iter().any(|h| h == mirror_target))
}

/// [`speil_host_files`] on the blocking pool, for async callers such as the status endpoint.
pub async fn speil_host_files_async(config_path: &Path) -> Vec<HostFile> {
    let config_path = config_path.to_path_buf();
    crate::blocking(move || speil_host_files(&config_path), Vec::new()).await
}
