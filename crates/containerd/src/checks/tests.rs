//! Unit tests of the configuration checks: one test per finding, by config version.

use std::fs;
use std::path::Path;

use super::layout::parse_version;
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
