//! Checks of containerd's own configuration for the known ways a mirror ends up unused: host
//! files not enabled or in another directory, legacy mirror settings, layers discarded after
//! unpacking, and containerd 2.1's transfer-service pulls with a `config_path` list.
//!
//! Where containerd reads the keys, by config `version`:
//! - 1 (no `version` key): the CRI plugin's table is `[plugins.cri]` (containerd 1.x looks plugins
//!   up by short id; 2.x migrates `cri` to `io.containerd.grpc.v1.cri`).
//! - 2 (containerd 1.6, 1.7; 2.x migrates it): `[plugins."io.containerd.grpc.v1.cri".registry]`
//!   and `[plugins."io.containerd.grpc.v1.cri".containerd] discard_unpacked_layers`.
//! - 3 (containerd 2.x): `[plugins."io.containerd.cri.v1.images".registry]` and
//!   `[plugins."io.containerd.cri.v1.images"] discard_unpacked_layers`, `use_local_image_pull`.

use std::fs;
use std::path::{Component, Path, PathBuf};

use toml_edit::{DocumentMut, Item};

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

/// Checks the text of containerd's config file. `hosts_dir` is the directory Speil writes host
/// files into; `containerd_version` (`"2.1.0"`, `"v1.7.27"`) enables version-specific checks
/// when known.
pub fn check_str(
    config_text: &str,
    hosts_dir: &Path,
    containerd_version: Option<&str>,
) -> Vec<Finding> {
    let doc = match config_text.parse::<DocumentMut>() {
        Ok(doc) => doc,
        Err(error) => {
            return vec![malformed(format!(
                "containerd's config is not valid TOML: {}",
                error.to_string().trim_end()
            ))];
        }
    };
    let file_version = match doc.get("version") {
        None => 1,
        Some(item) => match item.as_integer() {
            Some(v) => v,
            None => return vec![malformed("`version` is not an integer".to_owned())],
        },
    };
    let containerd = containerd_version.and_then(parse_version);
    let mut findings = Vec::new();

    let layout = if file_version >= 3 {
        &V3
    } else if file_version == 2 || lookup(&doc, V1.cri).is_some() {
        if file_version == 2 { &V2 } else { &V1 }
    } else if lookup(&doc, V2.cri).is_some() {
        // A version 1 file written with version 2's plugin names.
        if containerd.is_none_or(|v| v < (2, 0)) {
            findings.push(version_missing(containerd.is_some()));
        }
        &V2
    } else {
        &V1
    };

    let registry = lookup(&doc, layout.cri).and_then(|cri| cri.get("registry"));
    let config_path = registry
        .and_then(|r| r.get("config_path"))
        .and_then(Item::as_str)
        .filter(|p| !p.trim().is_empty());
    let dirs: Vec<&str> = config_path
        .map(|p| p.split(':').filter(|d| !d.is_empty()).collect())
        .unwrap_or_default();
    let has_mirrors = registry
        .and_then(|r| r.get("mirrors"))
        .and_then(Item::as_table_like)
        .is_some_and(|t| !t.is_empty());
    let tls_configs: Vec<&str> = registry
        .and_then(|r| r.get("configs"))
        .and_then(Item::as_table_like)
        .map(|configs| {
            configs
                .iter()
                .filter(|(_, c)| c.get("tls").is_some())
                .map(|(host, _)| host)
                .collect()
        })
        .unwrap_or_default();
    let hosts = hosts_dir.display();
    let registry_table = layout.registry_table;

    match config_path {
        None => {
            let mut message = format!(
                "{registry_table} config_path is not set, so containerd never reads registry host \
                 files and pulls bypass Speil"
            );
            if doc
                .get("imports")
                .and_then(Item::as_array)
                .is_some_and(|a| !a.is_empty())
            {
                message.push_str(
                    " (this file imports others; only this file was checked, and an import may \
                     set it)",
                );
            }
            let mut fix = format!(
                "Set config_path = \"{hosts}\" under {registry_table} and restart containerd."
            );
            if has_mirrors {
                fix.push_str(" Remove the registry.mirrors tables first: containerd refuses both.");
            }
            findings.push(Finding::new(
                "config_path_unset",
                Severity::Error,
                message,
                fix,
            ));
        }
        Some(value) => {
            let wanted = normalize(hosts_dir);
            let position = dirs.iter().position(|d| normalize(Path::new(d)) == wanted);
            match position {
                None => findings.push(Finding::new(
                    "config_path_mismatch",
                    Severity::Error,
                    format!(
                        "{registry_table} config_path = \"{value}\" does not include {hosts}, \
                         where Speil writes its host files, so containerd never sees them"
                    ),
                    format!(
                        "Either set config_path = \"{hosts}\" under {registry_table} and restart \
                         containerd, or start Speil with --containerd-registry-config-path {}.",
                        dirs.first().copied().unwrap_or(value)
                    ),
                )),
                Some(i) => {
                    let shadowing: Vec<&str> = dirs[..i]
                        .iter()
                        .copied()
                        .filter(|d| has_subdirectory(Path::new(d)))
                        .collect();
                    if !shadowing.is_empty() {
                        findings.push(Finding::new(
                            "config_path_shadowed",
                            Severity::Warn,
                            format!(
                                "config_path lists {} before {hosts}; containerd uses the first \
                                 directory that has a directory for the registry (or _default), \
                                 so registries configured there never reach Speil",
                                shadowing.join(", ")
                            ),
                            format!(
                                "Put {hosts} first in config_path under {registry_table}, or \
                                 remove the registry directories from {}.",
                                shadowing.join(", ")
                            ),
                        ));
                    }
                }
            }
        }
    }

    if has_mirrors {
        let (severity, message) = if config_path.is_some() {
            (
                Severity::Error,
                format!(
                    "{registry_table} has both config_path and mirrors; containerd (1.6 and \
                     later) refuses this combination (\"`mirrors` cannot be set when \
                     `config_path` is provided\") and does not load its CRI plugin, so kubelet \
                     can neither pull nor start pods"
                ),
            )
        } else {
            (
                Severity::Warn,
                format!(
                    "{registry_table} sets the deprecated mirrors tables; containerd uses them \
                     instead of host files, and setting config_path while they remain stops \
                     its CRI plugin from loading"
                ),
            )
        };
        findings.push(Finding::new(
            "legacy_mirrors",
            severity,
            message,
            format!(
                "Remove the {registry_table_mirrors} tables (move any mirrors you need into \
                 host files under {hosts}) and restart containerd.",
                registry_table_mirrors = layout.mirrors_table
            ),
        ));
    }
    if !tls_configs.is_empty() && config_path.is_some() && file_version <= 2 {
        findings.push(Finding::new(
            "legacy_mirrors",
            Severity::Error,
            format!(
                "{registry_table} sets configs.tls for {} alongside config_path; containerd 1.6 \
                 and 1.7 refuse this combination (\"`configs.tls` cannot be set when \
                 `config_path` is provided\") and do not load the CRI plugin",
                tls_configs.join(", ")
            ),
            format!(
                "Move the TLS settings into the registries' hosts.toml under {hosts} (ca, client, \
                 skip_verify) and remove the configs.<host>.tls tables."
            ),
        ));
    }

    let discard = lookup(&doc, layout.discard_parent)
        .and_then(|t| t.get("discard_unpacked_layers"))
        .and_then(Item::as_bool)
        .unwrap_or(false);
    if discard {
        findings.push(Finding::new(
            "discard_unpacked_layers",
            Severity::Warn,
            format!(
                "discard_unpacked_layers = true under {}: containerd deletes layer blobs from \
                 its content store after unpacking them, so this node cannot serve them to peers",
                layout.discard_table
            ),
            format!(
                "Set discard_unpacked_layers = false under {} and restart containerd; images \
                 pulled before keep missing layers until pulled again.",
                layout.discard_table
            ),
        ));
    }

    if containerd.is_some_and(|v| v >= (2, 1)) && dirs.len() > 1 && !local_pull(&doc, layout) {
        findings.push(Finding::new(
            "transfer_service",
            Severity::Error,
            format!(
                "containerd 2.1 and later pull CRI images through the transfer service unless \
                 use_local_image_pull = true; the transfer service reads config_path as one \
                 directory, not as a colon-separated list, so with config_path = \"{}\" it finds \
                 no host files and pulls bypass Speil",
                config_path.unwrap_or_default()
            ),
            format!(
                "Set use_local_image_pull = true under [plugins.\"{IMAGES}\"] and restart \
                 containerd, or make config_path the single directory {hosts}."
            ),
        ));
    }

    findings
}

const IMAGES: &str = "io.containerd.cri.v1.images";

/// Where one config version keeps the keys this module reads.
struct Layout {
    /// Keys leading to the table that holds `registry`.
    cri: &'static [&'static str],
    registry_table: &'static str,
    mirrors_table: &'static str,
    /// Keys leading to the table that holds `discard_unpacked_layers`.
    discard_parent: &'static [&'static str],
    discard_table: &'static str,
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

/// Whether containerd 2.x pulls CRI images itself (the local pull) rather than through the
/// transfer service: `use_local_image_pull = true`, or a setting the transfer service cannot
/// honour, which makes containerd fall back to the local pull (containerd 2.4's
/// `CheckLocalImagePullConfigs`).
///
/// Both pulls read host files, and with a single config_path directory both go through Speil
/// (tested on containerd 2.4.2 in crates/speil/tests/it/containerd2.rs); they differ in that the
/// transfer service takes config_path as one directory.
fn local_pull(doc: &DocumentMut, layout: &Layout) -> bool {
    let images = lookup(doc, &["plugins", IMAGES]);
    let cri = lookup(doc, layout.cri);
    let snapshots = lookup(doc, layout.discard_parent);
    let get = |table: Option<&Item>, key: &str| table.and_then(|t| t.get(key)).cloned();
    let is_true = |item: Option<Item>| item.and_then(|i| i.as_bool()) == Some(true);
    if is_true(get(images, "use_local_image_pull")) {
        return true;
    }
    let registry = cri.and_then(|c| c.get("registry"));
    // (the setting, as containerd's warning names it; whether it makes containerd fall back)
    let fallbacks = [
        (
            "discard_unpacked_layers",
            is_true(get(snapshots, "discard_unpacked_layers")),
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
            is_true(get(cri, "image_pull_with_sync_fs")),
        ),
    ];
    fallbacks.iter().any(|(_, set)| *set)
}

fn malformed(message: String) -> Finding {
    Finding::new(
        "config_malformed",
        Severity::Error,
        message,
        "Fix the file so that containerd can start (`containerd config dump` shows what it \
         reads), then run the check again."
            .to_owned(),
    )
}

fn version_missing(known_1x: bool) -> Finding {
    Finding::new(
        "config_version_missing",
        if known_1x {
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
    )
}

fn lookup<'a>(doc: &'a DocumentMut, keys: &[&str]) -> Option<&'a Item> {
    keys.iter()
        .try_fold(doc.as_item(), |item, key| item.get(*key))
}

/// `"2.1.0"`, `"v2.1.3"`, `"2.1.0-rc.1"` → (major, minor).
fn parse_version(text: &str) -> Option<(u64, u64)> {
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

fn has_subdirectory(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| e.file_type().is_ok_and(|t| t.is_dir()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTS: &str = "/etc/containerd/certs.d";

    fn ids(findings: &[Finding]) -> Vec<&'static str> {
        findings.iter().map(|f| f.id).collect()
    }

    fn run(text: &str, version: Option<&str>) -> Vec<Finding> {
        check_str(text, Path::new(HOSTS), version)
    }

    const CLEAN_V2: &str = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".containerd]
  discard_unpacked_layers = false
"#;

    const CLEAN_V3: &str = r#"
version = 3
[plugins.'io.containerd.cri.v1.images']
  use_local_image_pull = true
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = '/etc/containerd/certs.d/'
"#;

    #[test]
    fn clean_configs_have_no_findings() {
        assert_eq!(run(CLEAN_V2, None), vec![]);
        assert_eq!(run(CLEAN_V2, Some("1.7.27")), vec![]);
        assert_eq!(run(CLEAN_V3, Some("v2.1.3")), vec![]);
        // containerd 2.4 writes version 4; its CRI tables are version 3's.
        let v4 = CLEAN_V3.replace("version = 3", "version = 4");
        assert_eq!(run(&v4, Some("2.4.2+unknown")), vec![]);
        let discard = v4.replace(
            "use_local_image_pull = true",
            "discard_unpacked_layers = true",
        );
        let findings = run(&discard, Some("2.4.2"));
        assert_eq!(ids(&findings), ["discard_unpacked_layers"]);
        assert!(findings[0].fix.contains("io.containerd.cri.v1.images"));
        let v1 = "[plugins.cri.registry]\nconfig_path = \"/etc/containerd/certs.d\"\n";
        assert_eq!(run(v1, Some("1.6.0")), vec![]);
    }

    #[test]
    fn unreadable_and_malformed_are_findings() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("config.toml");
        let findings = check(&missing, Path::new(HOSTS), None);
        assert_eq!(ids(&findings), ["config_unreadable"]);
        assert!(findings[0].message.contains(&*missing.to_string_lossy()));

        assert_eq!(
            ids(&run("version = 2\n[plugins\n", None)),
            ["config_malformed"]
        );
        assert_eq!(ids(&run("version = \"2\"\n", None)), ["config_malformed"]);

        fs::write(&missing, CLEAN_V2).unwrap();
        assert_eq!(check(&missing, Path::new(HOSTS), None), vec![]);
    }

    #[test]
    fn config_path_unset_names_the_table_and_directory() {
        let v2 = run(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\n",
            None,
        );
        assert_eq!(ids(&v2), ["config_path_unset"]);
        assert_eq!(v2[0].severity, Severity::Error);
        assert!(
            v2[0]
                .fix
                .contains("[plugins.\"io.containerd.grpc.v1.cri\".registry]")
        );
        assert!(v2[0].fix.contains(HOSTS));

        let v3 = run(
            "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = ''\n",
            None,
        );
        assert_eq!(ids(&v3), ["config_path_unset"]);
        assert!(
            v3[0]
                .fix
                .contains("[plugins.\"io.containerd.cri.v1.images\".registry]")
        );

        let v1 = run("", None);
        assert_eq!(ids(&v1), ["config_path_unset"]);
        assert!(v1[0].fix.contains("[plugins.cri.registry]"));
    }

    #[test]
    fn config_path_mismatch_and_lists() {
        let other = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/docker/certs.d\"\n";
        let findings = run(other, None);
        assert_eq!(ids(&findings), ["config_path_mismatch"]);
        assert!(findings[0].message.contains(HOSTS));

        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/somewhere/else'\n";
        assert_eq!(ids(&run(v3, None)), ["config_path_mismatch"]);

        for listed in [
            "/etc/docker/certs.d:/etc/containerd/certs.d",
            "/etc/containerd/./certs.d/:/etc/docker/certs.d",
            "/etc/containerd/x/../certs.d",
        ] {
            let text = format!(
                "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"{listed}\"\n"
            );
            assert_eq!(run(&text, None), vec![], "{listed}");
        }
    }

    #[test]
    fn an_earlier_directory_in_the_list_shadows_speil() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("first");
        fs::create_dir_all(first.join("_default")).unwrap();
        let hosts = dir.path().join("speil");
        let text = format!(
            "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"{}:{}\"\n",
            first.display(),
            hosts.display()
        );
        let findings = check_str(&text, &hosts, None);
        assert_eq!(ids(&findings), ["config_path_shadowed"]);
        assert_eq!(findings[0].severity, Severity::Warn);
    }

    #[test]
    fn legacy_mirrors_with_config_path_stop_the_cri_plugin() {
        let v2 = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
    endpoint = ["https://mirror.example.com"]
"#;
        let findings = run(v2, None);
        assert_eq!(ids(&findings), ["legacy_mirrors"]);
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].message.contains("cannot be set"));

        let v3 = r#"
version = 3
[plugins.'io.containerd.cri.v1.images'.registry]
  config_path = '/etc/containerd/certs.d'
  [plugins.'io.containerd.cri.v1.images'.registry.mirrors.'docker.io']
    endpoint = ['https://mirror.example.com']
"#;
        assert_eq!(ids(&run(v3, None)), ["legacy_mirrors"]);

        let without_path = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
  endpoint = ["https://mirror.example.com"]
"#;
        let findings = run(without_path, None);
        assert_eq!(ids(&findings), ["config_path_unset", "legacy_mirrors"]);
        assert_eq!(findings[1].severity, Severity::Warn);
        assert!(findings[0].fix.contains("Remove the registry.mirrors"));
    }

    #[test]
    fn legacy_tls_configs_conflict_but_auth_does_not() {
        let tls = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example.com".tls]
  insecure_skip_verify = true
"#;
        let findings = run(tls, None);
        assert_eq!(ids(&findings), ["legacy_mirrors"]);
        assert!(findings[0].message.contains("registry.example.com"));

        let auth = r#"
version = 2
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "/etc/containerd/certs.d"
[plugins."io.containerd.grpc.v1.cri".registry.configs."registry.example.com".auth]
  username = "u"
"#;
        assert_eq!(run(auth, None), vec![]);
    }

    #[test]
    fn discarded_layers_cannot_be_served() {
        let v2 = format!(
            "{}\n",
            CLEAN_V2.replace(
                "discard_unpacked_layers = false",
                "discard_unpacked_layers = true"
            )
        );
        let findings = run(&v2, None);
        assert_eq!(ids(&findings), ["discard_unpacked_layers"]);
        assert!(
            findings[0]
                .fix
                .contains("[plugins.\"io.containerd.grpc.v1.cri\".containerd]")
        );

        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images']\ndiscard_unpacked_layers = true\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d'\n";
        let findings = run(v3, Some("2.1.0"));
        assert_eq!(ids(&findings), ["discard_unpacked_layers"]);
        assert!(
            findings[0]
                .fix
                .contains("[plugins.\"io.containerd.cri.v1.images\"]")
        );
    }

    #[test]
    fn transfer_service_on_containerd_2_1() {
        // One directory: the transfer service reads its host files (tested on 2.4.2).
        let v3 = "version = 3\n[plugins.'io.containerd.cri.v1.images'.registry]\nconfig_path = '/etc/containerd/certs.d'\n";
        assert_eq!(run(v3, None), vec![]);
        assert_eq!(run(v3, Some("2.0.5")), vec![]);
        assert_eq!(run(v3, Some("2.1.0")), vec![]);
        assert_eq!(run(v3, Some("2.4.2+unknown")), vec![]);

        // A list: the transfer service finds nothing.
        let list = v3.replace(
            "'/etc/containerd/certs.d'",
            "'/etc/containerd/certs.d:/etc/docker/certs.d'",
        );
        assert_eq!(run(&list, Some("2.0.5")), vec![]);
        let findings = run(&list, Some("v2.2.1"));
        assert_eq!(ids(&findings), ["transfer_service"]);
        assert_eq!(findings[0].severity, Severity::Error);
        assert!(findings[0].fix.contains("use_local_image_pull = true"));

        // ... unless containerd pulls locally: asked to, or falling back.
        let local = list.replace(
            "[plugins.'io.containerd.cri.v1.images'.registry]",
            "[plugins.'io.containerd.cri.v1.images']\nuse_local_image_pull = true\n[plugins.'io.containerd.cri.v1.images'.registry]",
        );
        assert_eq!(run(&local, Some("2.1.3")), vec![]);
        for (setting, value) in [
            ("max_concurrent_downloads", "5"),
            ("disable_snapshot_annotations", "false"),
            ("image_pull_with_sync_fs", "true"),
        ] {
            let text = local.replace(
                "use_local_image_pull = true",
                &format!("{setting} = {value}"),
            );
            assert_eq!(run(&text, Some("2.4.2")), vec![], "{setting}");
        }
        let discard = local.replace(
            "use_local_image_pull = true",
            "discard_unpacked_layers = true",
        );
        assert_eq!(
            ids(&run(&discard, Some("2.4.2"))),
            ["discard_unpacked_layers"]
        );
        let annotations = local.replace(
            "use_local_image_pull = true",
            "disable_snapshot_annotations = true",
        );
        assert_eq!(ids(&run(&annotations, Some("2.4.2"))), ["transfer_service"]);

        // A version 2 file on containerd 2.x: the same, from the migrated tables.
        let v2 = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d:/etc/docker/certs.d\"\n";
        assert_eq!(ids(&run(v2, Some("2.1.0"))), ["transfer_service"]);
        let v2_downloads =
            format!("{v2}[plugins.\"io.containerd.grpc.v1.cri\"]\nmax_concurrent_downloads = 10\n");
        assert_eq!(run(&v2_downloads, Some("2.1.0")), vec![]);
    }

    #[test]
    fn version_1_files_with_version_2_names() {
        let text = "[plugins.\"io.containerd.grpc.v1.cri\".registry]\nconfig_path = \"/etc/containerd/certs.d\"\n";
        let findings = run(text, Some("1.7.2"));
        assert_eq!(ids(&findings), ["config_version_missing"]);
        assert_eq!(findings[0].severity, Severity::Error);
        assert_eq!(run(text, None)[0].severity, Severity::Warn);
        assert_eq!(run(text, Some("2.0.0")), vec![]);
    }

    #[test]
    fn versions_parse() {
        assert_eq!(parse_version("2.1.0"), Some((2, 1)));
        assert_eq!(parse_version("v2.1.3"), Some((2, 1)));
        assert_eq!(parse_version("2.1.0-rc.1"), Some((2, 1)));
        assert_eq!(parse_version("1.7.27~ds1"), Some((1, 7)));
        assert_eq!(parse_version("garbage"), None);
    }

    #[test]
    fn findings_serialize_with_stable_names() {
        let json = serde_json::to_value(&run("", None)[0]).unwrap();
        assert_eq!(json["id"], "config_path_unset");
        assert_eq!(json["severity"], "error");
    }
}
