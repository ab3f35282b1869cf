//! Tests of the host files: exact output, idempotence, prepending, and the configure/cleanup
//! round trip.

use std::collections::BTreeMap;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::render::{format_duration, is_localhost};
use super::shared::BACKUP_PARTIAL;
use super::*;

fn config(root: &Path, registries: &[&str]) -> Config {
    Config {
        config_path: root.to_path_buf(),
        registries: registries.iter().map(|r| r.parse().unwrap()).collect(),
        mirror_targets: vec!["http://127.0.0.1:5000".to_owned()],
        resolve_tags: true,
        prepend_existing: false,
        basic_auth: None,
        dial_timeout: Duration::from_millis(200),
        plain_http: Vec::new(),
    }
}

fn read(path: impl AsRef<Path>) -> String {
    fs::read_to_string(path).unwrap()
}

fn write(path: impl AsRef<Path>, content: &str) {
    let path = path.as_ref();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

/// Every entry under `root`: relative path -> (kind, content or link target, mode).
fn tree(root: &Path) -> BTreeMap<PathBuf, (char, Vec<u8>, u32)> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (char, Vec<u8>, u32)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode();
            if meta.file_type().is_symlink() {
                let target = fs::read_link(&path).unwrap();
                out.insert(rel, ('l', target.into_os_string().into_encoded_bytes(), 0));
            } else if meta.is_dir() {
                out.insert(rel, ('d', Vec::new(), mode));
                walk(root, &path, out);
            } else {
                out.insert(rel, ('f', fs::read(&path).unwrap(), mode));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A config directory as users have them: host files, certificates in nested directories,
/// a private key, a stray file and a symlink.
fn existing_tree(root: &Path) {
    write(
        root.join("docker.io/hosts.toml"),
        "# company mirror\nserver = \"https://registry-1.docker.io\"\n\n[host.\"https://mirror.example.com\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"certs/ca.crt\"\n  client = [[\"client.cert\", \"client.key\"]]\n",
    );
    write(root.join("docker.io/certs/ca.crt"), "CA CERT\n");
    write(root.join("docker.io/client.cert"), "CLIENT CERT\n");
    write(root.join("docker.io/client.key"), "CLIENT KEY\n");
    fs::set_permissions(
        root.join("docker.io/client.key"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    write(
        root.join("_default/hosts.toml"),
        "[host.\"https://fallback.example.com\"]\ncapabilities = [\"pull\"]\nca = \"fallback.crt\"\n",
    );
    write(root.join("_default/fallback.crt"), "FALLBACK CA\n");
    write(root.join("quay.io/nested/deeper/extra.pem"), "PEM\n");
    write(root.join("README"), "not a registry\n");
    symlink("docker.io", root.join("docker-alias")).unwrap();
}

#[test]
fn writes_docker_hub_other_registries_and_default() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("certs.d");
    let report = configure(&config(&root, &["docker.io", "ghcr.io"])).unwrap();
    assert!(report.backed_up);
    assert_eq!(
        report.written,
        vec![
            root.join("docker.io/hosts.toml"),
            root.join("ghcr.io/hosts.toml")
        ]
    );
    assert_eq!(
        read(root.join("docker.io/hosts.toml")),
        "# Written by Speil; restored by speil cleanup.\n\
         server = \"https://registry-1.docker.io\"\n\
         \n\
         [host.\"http://127.0.0.1:5000\"]\n\
         capabilities = [\"pull\", \"resolve\"]\n\
         dial_timeout = \"200ms\"\n"
    );
    assert_eq!(
        read(root.join("ghcr.io/hosts.toml")),
        "# Written by Speil; restored by speil cleanup.\n\
         server = \"https://ghcr.io\"\n\
         \n\
         [host.\"http://127.0.0.1:5000\"]\n\
         capabilities = [\"pull\", \"resolve\"]\n\
         dial_timeout = \"200ms\"\n"
    );

    let other = dir.path().join("other");
    let mut all = config(&other, &[]);
    all.resolve_tags = false;
    all.dial_timeout = Duration::from_secs(2);
    all.mirror_targets.push("http://10.0.0.7:5000".to_owned());
    configure(&all).unwrap();
    assert_eq!(
        read(other.join("_default/hosts.toml")),
        "# Written by Speil; restored by speil cleanup.\n\
         \n\
         [host.\"http://127.0.0.1:5000\"]\n\
         capabilities = [\"pull\"]\n\
         dial_timeout = \"2s\"\n\
         \n\
         [host.\"http://10.0.0.7:5000\"]\n\
         capabilities = [\"pull\"]\n\
         dial_timeout = \"2s\"\n"
    );
}

#[test]
fn local_registry_keeps_containerds_default_server() {
    let dir = tempfile::tempdir().unwrap();
    configure(&config(dir.path(), &["localhost:5000"])).unwrap();
    let text = read(dir.path().join("localhost:5000/hosts.toml"));
    assert!(!text.contains("server"), "{text}");
    assert!(is_localhost("127.0.0.1:5000") && is_localhost("[::1]:5000"));
    assert!(!is_localhost("ghcr.io") && !is_localhost("localhost.example.com"));
}

#[test]
fn a_registry_given_as_plain_http_keeps_its_scheme() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &["198.18.0.2:5000", "ghcr.io"]);
    cfg.plain_http = vec!["198.18.0.2:5000".parse().unwrap()];
    configure(&cfg).unwrap();
    let text = read(dir.path().join("198.18.0.2:5000/hosts.toml"));
    assert!(
        text.contains("server = \"http://198.18.0.2:5000\""),
        "{text}"
    );
    let text = read(dir.path().join("ghcr.io/hosts.toml"));
    assert!(text.contains("server = \"https://ghcr.io\""), "{text}");
}

#[test]
fn basic_auth_becomes_an_authorization_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &["ghcr.io"]);
    cfg.basic_auth = Some(oci::BasicAuth::parse("user:pass\n").unwrap());
    configure(&cfg).unwrap();
    assert_eq!(
        read(dir.path().join("ghcr.io/hosts.toml")),
        "# Written by Speil; restored by speil cleanup.\n\
         server = \"https://ghcr.io\"\n\
         \n\
         [host.\"http://127.0.0.1:5000\"]\n\
         capabilities = [\"pull\", \"resolve\"]\n\
         dial_timeout = \"200ms\"\n\
         \n\
         [host.\"http://127.0.0.1:5000\".header]\n\
         Authorization = \"Basic dXNlcjpwYXNz\"\n"
    );
}

#[test]
fn durations_read_like_go() {
    assert_eq!(format_duration(Duration::from_millis(200)), "200ms");
    assert_eq!(format_duration(Duration::from_secs(2)), "2s");
    assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
    assert_eq!(format_duration(Duration::from_micros(10)), "10us");
    assert_eq!(format_duration(Duration::ZERO), "0s");
}

#[test]
fn rejects_bad_targets() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), &[]);
    cfg.mirror_targets.clear();
    assert!(matches!(configure(&cfg), Err(Error::NoMirrorTargets)));
    for bad in ["127.0.0.1:5000", "ftp://x", "http://", "http://a\"b"] {
        cfg.mirror_targets = vec![bad.to_owned()];
        assert!(
            matches!(configure(&cfg), Err(Error::MirrorTarget(_))),
            "{bad}"
        );
    }
}

#[test]
fn second_run_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    existing_tree(dir.path());
    let mut cfg = config(dir.path(), &["docker.io", "ghcr.io", "localhost:5000"]);
    cfg.prepend_existing = true;
    cfg.basic_auth = Some(oci::BasicAuth::parse("a:b").unwrap());
    let first = configure(&cfg).unwrap();
    assert!(first.backed_up && !first.written.is_empty());
    let before = tree(dir.path());
    let second = configure(&cfg).unwrap();
    assert_eq!(second, Report::default());
    assert_eq!(tree(dir.path()), before);
}

#[test]
fn prepend_existing_keeps_original_hosts_and_their_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    existing_tree(root);
    let mut cfg = config(root, &["docker.io", "ghcr.io"]);
    cfg.prepend_existing = true;
    configure(&cfg).unwrap();

    assert_eq!(
        read(root.join("docker.io/hosts.toml")),
        "# Written by Speil; restored by speil cleanup.\n\
         # company mirror\n\
         server = \"https://registry-1.docker.io\"\n\
         \n\
         [host.\"http://127.0.0.1:5000\"]\n\
         capabilities = [\"pull\", \"resolve\"]\n\
         dial_timeout = \"200ms\"\n\
         \n\
         [host.\"https://mirror.example.com\"]\n  \
         capabilities = [\"pull\", \"resolve\"]\n  \
         ca = \"certs/ca.crt\"\n  \
         client = [[\"client.cert\", \"client.key\"]]\n"
    );
    assert_eq!(read(root.join("docker.io/certs/ca.crt")), "CA CERT\n");
    assert_eq!(read(root.join("docker.io/client.cert")), "CLIENT CERT\n");
    let key = root.join("docker.io/client.key");
    assert_eq!(read(&key), "CLIENT KEY\n");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // ghcr.io had no directory: containerd used `_default`, so its hosts carry over.
    let ghcr = read(root.join("ghcr.io/hosts.toml"));
    let speil = ghcr.find("http://127.0.0.1:5000").unwrap();
    let fallback = ghcr.find("https://fallback.example.com").unwrap();
    assert!(speil < fallback, "{ghcr}");
    assert!(ghcr.contains("server = \"https://ghcr.io\""), "{ghcr}");
    assert_eq!(read(root.join("ghcr.io/fallback.crt")), "FALLBACK CA\n");

    // Without prepend_existing the originals are replaced.
    cfg.prepend_existing = false;
    configure(&cfg).unwrap();
    assert!(!read(root.join("docker.io/hosts.toml")).contains("mirror.example.com"));
}

#[test]
fn prepend_skips_an_original_host_speil_now_owns() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path().join("ghcr.io/hosts.toml"),
        "[host.\"http://127.0.0.1:5000\"]\ncapabilities = [\"pull\"]\n",
    );
    let mut cfg = config(dir.path(), &["ghcr.io"]);
    cfg.prepend_existing = true;
    configure(&cfg).unwrap();
    let text = read(dir.path().join("ghcr.io/hosts.toml"));
    assert_eq!(text.matches("127.0.0.1:5000").count(), 1, "{text}");
}

#[test]
fn prepend_skips_an_original_that_is_not_utf8() {
    // Found by fuzzing (crates/fuzz/regressions/hosts_merge/original_not_utf8): such a file
    // failed the whole configure, where a file that is not TOML is skipped with a warning.
    let dir = tempfile::tempdir().unwrap();
    let original = b"[host.\"https://m\xff\"]\ncapabilities = [\"pull\"]\n";
    fs::create_dir_all(dir.path().join("ghcr.io")).unwrap();
    fs::write(dir.path().join("ghcr.io/hosts.toml"), original).unwrap();
    let mut cfg = config(dir.path(), &["ghcr.io"]);
    cfg.prepend_existing = true;
    configure(&cfg).unwrap();
    let text = read(dir.path().join("ghcr.io/hosts.toml"));
    assert!(!text.contains("https://m"), "{text}");
    cleanup(dir.path()).unwrap();
    assert_eq!(
        fs::read(dir.path().join("ghcr.io/hosts.toml")).unwrap(),
        original
    );
}

#[test]
fn prepend_skips_references_that_are_no_certificate_file() {
    // Found by fuzzing (crates/fuzz/regressions/hosts_merge/reference_*): an empty path or one
    // through a file failed the whole configure, and `ca = "hosts.toml"` copied the original
    // over Speil's file at every run.
    for reference in [
        "",
        ".",
        "./ca.pem/",
        "ca.pem/x",
        "hosts.toml",
        "./hosts.toml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let original = format!("[host.\"https://m\"]\nca = {reference:?}\n");
        write(dir.path().join("ghcr.io/hosts.toml"), &original);
        write(dir.path().join("ghcr.io/ca.pem"), "cert");
        let mut cfg = config(dir.path(), &["ghcr.io"]);
        cfg.prepend_existing = true;
        configure(&cfg).unwrap_or_else(|e| panic!("{reference:?}: {e}"));
        let again = configure(&cfg).unwrap();
        assert!(again.written.is_empty(), "{reference:?}: {again:?}");
        assert!(read(dir.path().join("ghcr.io/hosts.toml")).starts_with(MARKER));
    }
}

#[test]
fn cleanup_restores_the_directory_byte_for_byte() {
    for prepend in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        existing_tree(root);
        let original = tree(root);
        let mut cfg = config(root, &["docker.io", "ghcr.io", "quay.io"]);
        cfg.prepend_existing = prepend;
        configure(&cfg).unwrap();
        assert!(is_configured(root, "http://127.0.0.1:5000"));
        assert_ne!(tree(root), original);
        cleanup(root).unwrap();
        assert_eq!(tree(root), original, "prepend_existing = {prepend}");
        assert!(!is_configured(root, "http://127.0.0.1:5000"));
    }
}

#[test]
fn cleanup_without_backup_removes_only_speils_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    configure(&config(root, &["docker.io", "ghcr.io"])).unwrap();
    fs::remove_dir(root.join(BACKUP)).unwrap();
    write(
        root.join("quay.io/hosts.toml"),
        "server = \"https://quay.io\"\n",
    );
    write(root.join("ghcr.io/ca.crt"), "someone else's\n");
    cleanup(root).unwrap();
    assert!(!root.join("docker.io").exists());
    assert!(!root.join("ghcr.io/hosts.toml").exists());
    assert_eq!(read(root.join("ghcr.io/ca.crt")), "someone else's\n");
    assert_eq!(
        read(root.join("quay.io/hosts.toml")),
        "server = \"https://quay.io\"\n"
    );
}

#[test]
fn cleanup_finishes_an_interrupted_first_backup() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    existing_tree(root);
    let original = tree(root);
    fs::create_dir(root.join(BACKUP_PARTIAL)).unwrap();
    fs::rename(
        root.join("docker.io"),
        root.join(BACKUP_PARTIAL).join("docker.io"),
    )
    .unwrap();
    cleanup(root).unwrap();
    assert_eq!(tree(root), original);

    // ... and configure resumes it instead of treating it as the finished backup.
    fs::create_dir(root.join(BACKUP_PARTIAL)).unwrap();
    fs::rename(
        root.join("README"),
        root.join(BACKUP_PARTIAL).join("README"),
    )
    .unwrap();
    configure(&config(root, &["docker.io"])).unwrap();
    cleanup(root).unwrap();
    assert_eq!(tree(root), original);
}

#[test]
fn stale_registry_directories_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    configure(&config(root, &["docker.io", "ghcr.io"])).unwrap();
    configure(&config(root, &["docker.io"])).unwrap();
    assert!(root.join("docker.io/hosts.toml").exists());
    assert!(!root.join("ghcr.io").exists());
}

#[test]
fn is_configured_looks_for_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert!(!is_configured(
        &root.join("missing"),
        "http://127.0.0.1:5000"
    ));
    configure(&config(root, &[])).unwrap();
    assert!(is_configured(root, "http://127.0.0.1:5000"));
    assert!(!is_configured(root, "http://127.0.0.2:5000"));
}

#[test]
fn errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let root = file.join("certs.d");
    let error = configure(&config(&root, &["docker.io"])).unwrap_err();
    assert!(matches!(error, Error::Io { .. }));
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("{}: ", root.display())),
        "{message}"
    );
    let error = cleanup(&root).unwrap_err();
    assert!(
        error.to_string().contains(&*root.to_string_lossy()),
        "{error}"
    );
}

#[test]
fn speil_host_files_lists_speils_files_and_their_hosts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("quay.io")).unwrap();
    fs::write(
        root.join("quay.io/hosts.toml"),
        "server = \"https://quay.io\"\n",
    )
    .unwrap();
    configure(&Config {
        config_path: root.to_owned(),
        registries: vec!["docker.io".parse().unwrap()],
        mirror_targets: vec![
            "http://127.0.0.1:5000".into(),
            "http://10.0.0.2:5000".into(),
        ],
        resolve_tags: true,
        prepend_existing: false,
        basic_auth: None,
        dial_timeout: Duration::from_millis(200),
        plain_http: Vec::new(),
    })
    .unwrap();
    let files = speil_host_files(root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(files[0].registry, "docker.io");
    assert_eq!(
        files[0].hosts,
        ["http://127.0.0.1:5000", "http://10.0.0.2:5000"]
    );
    assert!(speil_host_files(&root.join("missing")).is_empty());
}
