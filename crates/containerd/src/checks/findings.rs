//! One function per known way containerd's configuration leaves the mirror unused. Each reads
//! the parsed [`View`] and returns its finding, if any; [`ALL`] lists them in the order they are
//! reported.

use std::fs;
use std::path::Path;

use super::layout::{IMAGES, View};
use super::{Finding, Severity};

/// A check of one finding.
pub(super) type Check = fn(&View<'_>) -> Option<Finding>;

/// Every check, in the order their findings are reported.
pub(super) const ALL: &[Check] = &[
    config_version_missing,
    config_path_unset,
    config_path_mismatch,
    config_path_shadowed,
    legacy_mirrors,
    legacy_tls_configs,
    discard_unpacked_layers,
    transfer_service,
];

/// The file could not be parsed, so nothing else can be checked.
pub(super) fn config_malformed(message: String) -> Finding {
    Finding::new(
        "config_malformed",
        Severity::Error,
        message,
        "Fix the file so that containerd can start (`containerd config dump` shows what it \
         reads), then run the check again."
            .to_owned(),
    )
}

/// A version 1 file with version 2's plugin names: containerd 1.x ignores those tables.
fn config_version_missing(view: &View<'_>) -> Option<Finding> {
    if !view.v2_names_without_version || view.containerd.is_some_and(|v| v >= (2, 0)) {
        return None;
    }
    Some(Finding::new(
        "config_version_missing",
        if view.containerd.is_some() {
            Severity::Error
        } else {
            Severity::Warn
        },
        "the file has no `version` key, so containerd reads it as version 1, where containerd \
         1.x finds the CRI plugin under [plugins.cri] and ignores the \
         [plugins.\"io.containerd.grpc.v1.cri\"] tables written here (containerd 2.x migrates \
         them)"
            .to_owned(),
        "Add `version = 2` at the top of the file and restart containerd.".to_owned(),
    ))
}

/// No `config_path`: containerd never reads host files.
fn config_path_unset(view: &View<'_>) -> Option<Finding> {
    if view.config_path.is_some() {
        return None;
    }
    let registry_table = view.layout.registry_table;
    let hosts = view.hosts_dir.display();
    let mut message = format!(
        "{registry_table} config_path is not set, so containerd never reads registry host \
         files and pulls bypass Speil"
    );
    if view.imports {
        message.push_str(
            " (this file imports others; only this file was checked, and an import may set it)",
        );
    }
    let mut fix =
        format!("Set config_path = \"{hosts}\" under {registry_table} and restart containerd.");
    if view.has_mirrors {
        fix.push_str(" Remove the registry.mirrors tables first: containerd refuses both.");
    }
    Some(Finding::new(
        "config_path_unset",
        Severity::Error,
        message,
        fix,
    ))
}

/// `config_path` does not list the directory Speil writes into.
fn config_path_mismatch(view: &View<'_>) -> Option<Finding> {
    let value = view.config_path.as_deref()?;
    if view.hosts_position.is_some() {
        return None;
    }
    let registry_table = view.layout.registry_table;
    let hosts = view.hosts_dir.display();
    Some(Finding::new(
        "config_path_mismatch",
        Severity::Error,
        format!(
            "{registry_table} config_path = \"{value}\" does not include {hosts}, where Speil \
             writes its host files, so containerd never sees them"
        ),
        format!(
            "Either set config_path = \"{hosts}\" under {registry_table} and restart \
             containerd, or start Speil with --containerd-registry-config-path {}.",
            view.dirs.first().map_or(value, String::as_str)
        ),
    ))
}

/// An earlier directory in `config_path` has registry directories, which containerd uses first.
fn config_path_shadowed(view: &View<'_>) -> Option<Finding> {
    let position = view.hosts_position?;
    let shadowing: Vec<&str> = view.dirs[..position]
        .iter()
        .map(String::as_str)
        .filter(|d| has_subdirectory(Path::new(d)))
        .collect();
    if shadowing.is_empty() {
        return None;
    }
    let hosts = view.hosts_dir.display();
    Some(Finding::new(
        "config_path_shadowed",
        Severity::Warn,
        format!(
            "config_path lists {} before {hosts}; containerd uses the first directory that has \
             a directory for the registry (or _default), so registries configured there never \
             reach Speil",
            shadowing.join(", ")
        ),
        format!(
            "Put {hosts} first in config_path under {}, or remove the registry directories \
             from {}.",
            view.layout.registry_table,
            shadowing.join(", ")
        ),
    ))
}

/// The deprecated `registry.mirrors` tables: used instead of host files, and fatal to the CRI
/// plugin next to `config_path`.
fn legacy_mirrors(view: &View<'_>) -> Option<Finding> {
    if !view.has_mirrors {
        return None;
    }
    let registry_table = view.layout.registry_table;
    let (severity, message) = if view.config_path.is_some() {
        (
            Severity::Error,
            format!(
                "{registry_table} has both config_path and mirrors; containerd (1.6 and later) \
                 refuses this combination (\"`mirrors` cannot be set when `config_path` is \
                 provided\") and does not load its CRI plugin, so kubelet can neither pull nor \
                 start pods"
            ),
        )
    } else {
        (
            Severity::Warn,
            format!(
                "{registry_table} sets the deprecated mirrors tables; containerd uses them \
                 instead of host files, and setting config_path while they remain stops its \
                 CRI plugin from loading"
            ),
        )
    };
    Some(Finding::new(
        "legacy_mirrors",
        severity,
        message,
        format!(
            "Remove the {} tables (move any mirrors you need into host files under {}) and \
             restart containerd.",
            view.layout.mirrors_table,
            view.hosts_dir.display()
        ),
    ))
}

/// `configs.<host>.tls` next to `config_path`: containerd 1.6 and 1.7 refuse to load CRI.
fn legacy_tls_configs(view: &View<'_>) -> Option<Finding> {
    if view.tls_configs.is_empty() || view.config_path.is_none() || view.file_version > 2 {
        return None;
    }
    Some(Finding::new(
        "legacy_mirrors",
        Severity::Error,
        format!(
            "{} sets configs.tls for {} alongside config_path; containerd 1.6 and 1.7 refuse \
             this combination (\"`configs.tls` cannot be set when `config_path` is provided\") \
             and do not load the CRI plugin",
            view.layout.registry_table,
            view.tls_configs.join(", ")
        ),
        format!(
            "Move the TLS settings into the registries' hosts.toml under {} (ca, client, \
             skip_verify) and remove the configs.<host>.tls tables.",
            view.hosts_dir.display()
        ),
    ))
}

/// Layers deleted after unpacking cannot be served to peers.
fn discard_unpacked_layers(view: &View<'_>) -> Option<Finding> {
    if !view.discard {
        return None;
    }
    let discard_table = view.layout.discard_table;
    Some(Finding::new(
        "discard_unpacked_layers",
        Severity::Warn,
        format!(
            "discard_unpacked_layers = true under {discard_table}: containerd deletes layer \
             blobs from its content store after unpacking them, so this node cannot serve them \
             to peers"
        ),
        format!(
            "Set discard_unpacked_layers = false under {discard_table} and restart containerd; \
             images pulled before keep missing layers until pulled again."
        ),
    ))
}

/// containerd 2.1 and later pull CRI images through the transfer service, which reads
/// `config_path` as one directory: a list finds no host files. With one directory it reads
/// Speil's host files like the local pull (a CRI pull on containerd 2.4.2 goes through Speil
/// either way), so that is no finding.
fn transfer_service(view: &View<'_>) -> Option<Finding> {
    if view.containerd.is_none_or(|v| v < (2, 1)) || view.local_pull || view.dirs.len() < 2 {
        return None;
    }
    Some(Finding::new(
        "transfer_service",
        Severity::Error,
        format!(
            "containerd 2.1 and later pull CRI images through the transfer service unless \
             use_local_image_pull = true; the transfer service reads config_path as one \
             directory, not as a colon-separated list, so with config_path = \"{}\" it finds \
             no host files and pulls bypass Speil",
            view.config_path.as_deref().unwrap_or_default()
        ),
        format!(
            "Set use_local_image_pull = true under [plugins.\"{IMAGES}\"] and restart \
             containerd, or make config_path the single directory {}.",
            view.hosts_dir.display()
        ),
    ))
}

fn has_subdirectory(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}
