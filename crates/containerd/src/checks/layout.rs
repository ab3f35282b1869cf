//! containerd's config file parsed once into what the checks read: which config version and
//! plugin names it uses, the registry settings, and the two pull settings. The findings
//! (`findings.rs`) then only look at this view, never at TOML.
//!
//! Where containerd reads the keys, by config `version`:
//! - 1 (no `version` key): the CRI plugin's table is `[plugins.cri]` (containerd 1.x looks plugins
//!   up by short id; 2.x migrates `cri` to `io.containerd.grpc.v1.cri`).
//! - 2 (containerd 1.6, 1.7; 2.x migrates it): `[plugins."io.containerd.grpc.v1.cri".registry]`
//!   and `[plugins."io.containerd.grpc.v1.cri".containerd] discard_unpacked_layers`.
//! - 3 (containerd 2.x): `[plugins."io.containerd.cri.v1.images".registry]` and
//!   `[plugins."io.containerd.cri.v1.images"] discard_unpacked_layers`, `use_local_image_pull`.
//! - 4 (containerd 2.4's own format): the CRI tables of version 3.

use std::fs;
use std::path::{Component, Path, PathBuf};

use toml_edit::{DocumentMut, Item};

/// The CRI images plugin of containerd 2.x (config version 3).
pub(super) const IMAGES: &str = "io.containerd.cri.v1.images";

/// Where one config version keeps the keys this module reads.
pub(super) struct Layout {
    /// Keys leading to the table that holds `registry`.
    cri: &'static [&'static str],
    pub(super) registry_table: &'static str,
    pub(super) mirrors_table: &'static str,
    /// Keys leading to the table that holds `discard_unpacked_layers`.
    discard_parent: &'static [&'static str],
    pub(super) discard_table: &'static str,
}

const V1: Layout = Layout {
    cri: &["plugins", "cri"],
    registry_table: "[plugins.cri.registry]",
    mirrors_table: "[plugins.cri.registry.mirrors]",
    discard_parent: &["plugins", "cri", "containerd"],
    discard_table: "[plugins.cri.containerd]",
};

const V2: Layout = Layout {
    cri: &["plugins", "io.containerd.grpc.v1.cri"],
    registry_table: "[plugins.\"io.containerd.grpc.v1.cri\".registry]",
    mirrors_table: "[plugins.\"io.containerd.grpc.v1.cri\".registry.mirrors]",
    discard_parent: &["plugins", "io.containerd.grpc.v1.cri", "containerd"],
    discard_table: "[plugins.\"io.containerd.grpc.v1.cri\".containerd]",
};

const V3: Layout = Layout {
    cri: &["plugins", IMAGES],
    registry_table: "[plugins.\"io.containerd.cri.v1.images\".registry]",
    mirrors_table: "[plugins.\"io.containerd.cri.v1.images\".registry.mirrors]",
    discard_parent: &["plugins", IMAGES],
    discard_table: "[plugins.\"io.containerd.cri.v1.images\"]",
};

/// What the checks need from containerd's config file and from Speil.
pub(super) struct View<'a> {
    /// The file's `version` (1 when the key is missing).
    pub(super) file_version: i64,
    /// Where this file keeps the keys the checks read.
    pub(super) layout: &'static Layout,
    /// A version 1 file (no `version` key) written with version 2's plugin names.
    pub(super) v2_names_without_version: bool,
    /// containerd's (major, minor), when known.
    pub(super) containerd: Option<(u64, u64)>,
    /// The registry `config_path`, unless missing or blank.
    pub(super) config_path: Option<String>,
    /// `config_path` split at `:`, empty entries dropped.
    pub(super) dirs: Vec<String>,
    /// The index in `dirs` of the directory Speil writes into, if listed.
    pub(super) hosts_position: Option<usize>,
    /// The registry sets a non-empty `mirrors` table.
    pub(super) has_mirrors: bool,
    /// The registries whose `configs.<host>` table has `tls`.
    pub(super) tls_configs: Vec<String>,
    /// The file has a non-empty `imports` list.
    pub(super) imports: bool,
    /// `discard_unpacked_layers = true`.
    pub(super) discard: bool,
    /// containerd 2.x pulls CRI images itself rather than through the transfer service:
    /// `use_local_image_pull = true` under the images plugin, or a setting that makes it fall
    /// back (see [`local_pull`]).
    pub(super) local_pull: bool,
    /// The directory Speil writes host files into.
    pub(super) hosts_dir: &'a Path,
}

impl<'a> View<'a> {
    /// Parses containerd's config text; `Err` carries what is malformed.
    pub(super) fn parse(
        config_text: &str,
        hosts_dir: &'a Path,
        containerd_version: Option<&str>,
    ) -> Result<Self, String> {
        let doc = config_text.parse::<DocumentMut>().map_err(|error| {
            format!(
                "containerd's config is not valid TOML: {}",
                error.to_string().trim_end()
            )
        })?;
        let file_version = match doc.get("version") {
            None => 1,
            Some(item) => item
                .as_integer()
                .ok_or_else(|| "`version` is not an integer".to_owned())?,
        };
        let (layout, v2_names_without_version) = choose_layout(&doc, file_version);
        let registry = lookup(&doc, layout.cri).and_then(|cri| cri.get("registry"));
        let config_path = registry
            .and_then(|r| r.get("config_path"))
            .and_then(Item::as_str)
            .filter(|p| !p.trim().is_empty())
            .map(str::to_owned);
        let dirs: Vec<String> = config_path
            .as_deref()
            .map(|p| {
                p.split(':')
                    .filter(|d| !d.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let wanted = normalize(hosts_dir);
        let hosts_position = dirs.iter().position(|d| normalize(Path::new(d)) == wanted);
        Ok(View {
            file_version,
            layout,
            v2_names_without_version,
            containerd: containerd_version.and_then(parse_version),
            config_path,
            dirs,
            hosts_position,
            has_mirrors: registry
                .and_then(|r| r.get("mirrors"))
                .and_then(Item::as_table_like)
                .is_some_and(|t| !t.is_empty()),
            tls_configs: tls_configs(registry),
            imports: doc
                .get("imports")
                .and_then(Item::as_array)
                .is_some_and(|a| !a.is_empty()),
            discard: flag(&doc, layout.discard_parent, "discard_unpacked_layers"),
            local_pull: local_pull(&doc, layout),
            hosts_dir,
        })
    }
}

/// The layout the file's version and plugin names select, and whether it is a version 1 file
/// that uses version 2's names.
fn choose_layout(doc: &DocumentMut, file_version: i64) -> (&'static Layout, bool) {
    if file_version >= 3 {
        (&V3, false)
    } else if file_version == 2 {
        (&V2, false)
    } else if lookup(doc, V1.cri).is_some() {
        (&V1, false)
    } else if lookup(doc, V2.cri).is_some() {
        (&V2, true)
    } else {
        (&V1, false)
    }
}

/// The hosts whose `configs.<host>` table sets `tls`.
fn tls_configs(registry: Option<&Item>) -> Vec<String> {
    registry
        .and_then(|r| r.get("configs"))
        .and_then(Item::as_table_like)
        .map(|configs| {
            configs
                .iter()
                .filter(|(_, c)| c.get("tls").is_some())
                .map(|(host, _)| host.to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether containerd 2.x pulls CRI images itself (the local pull) rather than through the
/// transfer service: `use_local_image_pull = true`, or a setting the transfer service cannot
/// honour, which makes containerd fall back to the local pull (containerd 2.4's
/// `CheckLocalImagePullConfigs`). A version 2 file's settings count from the tables 2.x
/// migrates them from.
///
/// Both pulls read host files, and with a single config_path directory both go through Speil
/// (tested on containerd 2.4.2 in crates/speil/tests/it/containerd2.rs); they differ in that the
/// transfer service takes config_path as one directory.
fn local_pull(doc: &DocumentMut, layout: &Layout) -> bool {
    let cri = lookup(doc, layout.cri);
    let snapshots = lookup(doc, layout.discard_parent);
    let get = |table: Option<&Item>, key: &str| table.and_then(|t| t.get(key)).cloned();
    let registry = cri.and_then(|c| c.get("registry"));
    // (the setting, as containerd's warning names it; whether it makes containerd fall back)
    let fallbacks = [
        (
            "use_local_image_pull",
            flag(doc, &["plugins", IMAGES], "use_local_image_pull"),
        ),
        (
            "discard_unpacked_layers",
            flag(doc, layout.discard_parent, "discard_unpacked_layers"),
        ),
        (
            "disable_snapshot_annotations",
            get(snapshots, "disable_snapshot_annotations").and_then(|i| i.as_bool()) == Some(false),
        ),
        (
            "registry.mirrors, configs or auths",
            ["mirrors", "configs", "auths"].iter().any(|k| {
                registry
                    .and_then(|r| r.get(k))
                    .and_then(Item::as_table_like)
                    .is_some_and(|t| !t.is_empty())
            }),
        ),
        (
            "max_concurrent_downloads",
            get(cri, "max_concurrent_downloads")
                .and_then(|i| i.as_integer())
                .is_some_and(|n| n != 3),
        ),
        (
            "image_pull_with_sync_fs",
            flag(doc, layout.cri, "image_pull_with_sync_fs"),
        ),
    ];
    fallbacks.iter().any(|(_, set)| *set)
}

/// A boolean `key` in the table at `parent`; false when missing or not a boolean.
fn flag(doc: &DocumentMut, parent: &[&str], key: &str) -> bool {
    lookup(doc, parent)
        .and_then(|t| t.get(key))
        .and_then(Item::as_bool)
        .unwrap_or(false)
}

fn lookup<'a>(doc: &'a DocumentMut, keys: &[&str]) -> Option<&'a Item> {
    keys.iter()
        .try_fold(doc.as_item(), |item, key| item.get(*key))
}

/// `"2.1.0"`, `"v2.1.3"`, `"2.1.0-rc.1"` → (major, minor).
pub(super) fn parse_version(text: &str) -> Option<(u64, u64)> {
    let text = text.trim();
    let text = text.strip_prefix('v').unwrap_or(text);
    let mut parts = text.split('.');
    let number = |part: Option<&str>| -> Option<u64> {
        let part = part?;
        let end = part
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(part.len());
        part[..end].parse().ok()
    };
    let major = number(parts.next())?;
    let minor = number(parts.next()).unwrap_or(0);
    Some((major, minor))
}

/// The path with symlinks resolved when it exists, else with `.`, `..` and repeated or
/// trailing separators removed.
fn normalize(path: &Path) -> PathBuf {
    if let Ok(real) = fs::canonicalize(path) {
        return real;
    }
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other),
        }
    }
    out
}
