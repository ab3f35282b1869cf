//! The target for `speil configure --prepend-existing`: containerd's original `hosts.toml` read
//! from the file system and merged after Speil's hosts. It runs the real `configure`, `inspect`
//! and `cleanup` on a scratch directory (under `TMPDIR`, a tmpfs when `bench/fuzz.sh` runs it),
//! because the promise is about files: Speil never loses what was there.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use containerd::hosts::{self, Config, MARKER};
use toml_edit::{DocumentMut, Item};

use crate::toml_view;

/// Speil's own hosts, in the order they must come first in every file written.
const SPEIL_HOSTS: [&str; 2] = ["http://127.0.0.1:5000", "http://10.0.0.2:5000"];
/// The registries a configuration may mirror; `None` is every registry, through `_default`.
const REGISTRIES: [Option<&str>; 4] = [
    Some("docker.io"),
    Some("localhost:5000"),
    Some("ghcr.io"),
    None,
];
/// A certificate file beside the original, for relative `ca` references to find.
const CA: &[u8] = b"-----BEGIN CERTIFICATE-----\n";

/// `hosts::configure` with `--prepend-existing`, then `configure` again, `speil_host_files`,
/// `is_configured` and `cleanup`. The first byte chooses the registry (bits 0-1), resolve-tags
/// (bit 2), basic auth (bit 3) and which directory holds the original (bits 4-5); the rest is
/// the original `hosts.toml`. Configuring never fails; the file written is TOML, starts with
/// the marker, lists Speil's hosts first and then every original host table unchanged, and
/// keeps every other original entry unchanged; a second run writes nothing; the status reads
/// back the hosts written; cleanup restores the original directory byte for byte.
pub(crate) fn hosts_merge(data: &[u8]) {
    let Some((&flags, original)) = data.split_first() else {
        return;
    };
    let registry = REGISTRIES[usize::from(flags & 3)];
    let name = registry.unwrap_or("_default");
    let placement = match (flags >> 4) & 3 {
        1 => "localhost_5000_",
        2 => "_default",
        3 => "ghcr.io",
        _ => name,
    };
    let root = scratch();
    let original_dir = root.join(placement);
    fs::create_dir_all(&original_dir).unwrap();
    fs::write(original_dir.join("hosts.toml"), original).unwrap();
    fs::write(original_dir.join("ca.pem"), CA).unwrap();

    let config = Config {
        config_path: root.clone(),
        registries: registry.map(|r| r.parse().unwrap()).into_iter().collect(),
        mirror_targets: SPEIL_HOSTS.map(str::to_owned).to_vec(),
        resolve_tags: flags & 4 != 0,
        prepend_existing: true,
        basic_auth: (flags & 8 != 0).then(|| oci::BasicAuth::parse("user:pass").unwrap()),
        dial_timeout: Duration::from_millis(200),
        plain_http: Vec::new(),
    };
    let report = hosts::configure(&config).unwrap_or_else(|e| panic!("configure: {e}"));
    assert!(report.backed_up);
    let written = fs::read_to_string(root.join(name).join("hosts.toml")).unwrap();
    let kept = containerd_candidates(name)
        .contains(&placement)
        .then(|| {
            std::str::from_utf8(original)
                .ok()?
                .parse::<DocumentMut>()
                .ok()
        })
        .flatten();
    let listed = check_merge(&written, name, &config, kept.as_ref());

    let again = hosts::configure(&config).unwrap_or_else(|e| panic!("second configure: {e}"));
    assert!(!again.backed_up && again.written.is_empty(), "{again:?}");
    let files = hosts::speil_host_files(&root);
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(
        (files[0].registry.as_str(), &files[0].hosts),
        (name, &listed)
    );
    assert!(hosts::is_configured(&root, SPEIL_HOSTS[0]));

    hosts::cleanup(&root).unwrap_or_else(|e| panic!("cleanup: {e}"));
    assert_eq!(names(&root), [placement]);
    assert_eq!(names(&original_dir), ["ca.pem", "hosts.toml"]);
    assert_eq!(fs::read(original_dir.join("hosts.toml")).unwrap(), original);
    assert_eq!(fs::read(original_dir.join("ca.pem")).unwrap(), CA);
    fs::remove_dir_all(root.parent().unwrap()).unwrap();
}

/// The directories containerd looks in for `name`, in its order.
fn containerd_candidates(name: &str) -> Vec<&'static str> {
    match name {
        "docker.io" => vec!["docker.io", "_default"],
        "localhost:5000" => vec!["localhost_5000_", "localhost:5000", "_default"],
        "ghcr.io" => vec!["ghcr.io", "_default"],
        _ => vec!["_default"],
    }
}

/// Checks the file Speil wrote for `name` against the `original` containerd would have used
/// (`None` when there is none or it is not TOML, so nothing of it is kept); returns its hosts.
fn check_merge(
    written: &str,
    name: &str,
    config: &Config,
    original: Option<&DocumentMut>,
) -> Vec<String> {
    assert!(written.starts_with(MARKER));
    let doc: DocumentMut = written
        .parse()
        .unwrap_or_else(|e| panic!("Speil wrote a file that is not TOML: {e}\n{written}"));
    let mut expected: Vec<String> = SPEIL_HOSTS.map(str::to_owned).to_vec();
    let mut root_keys = vec!["host", "server"];
    if let Some(original) = original {
        if let Some(hosts) = original.get("host").and_then(Item::as_table_like) {
            for (url, item) in hosts.iter() {
                let table = item.is_table() || item.is_inline_table();
                if table && !SPEIL_HOSTS.contains(&url) {
                    expected.push(url.to_owned());
                    let now = host(&doc, url).unwrap_or(&Item::None);
                    assert_eq!(
                        toml_view::item(item),
                        toml_view::item(now),
                        "host {url:?} changed"
                    );
                }
            }
        }
        for (key, item) in original.iter().filter(|(k, _)| *k != "host") {
            let now = doc.get(key).unwrap_or(&Item::None);
            assert_eq!(
                toml_view::item(item),
                toml_view::item(now),
                "{key:?} changed"
            );
            root_keys.push(key);
        }
    }
    let keys: Vec<&str> = doc.iter().map(|(k, _)| k).collect();
    assert!(keys.iter().all(|k| root_keys.contains(k)), "{keys:?}");
    if original.is_none_or(|o| !o.contains_key("server")) {
        let server = doc.get("server").and_then(Item::as_str);
        let default = match name {
            "docker.io" => Some("https://registry-1.docker.io"),
            "ghcr.io" => Some("https://ghcr.io"),
            _ => None,
        };
        assert_eq!(server, default);
    }
    check_speil_hosts(&doc, config);
    let listed: Vec<String> = doc
        .get("host")
        .and_then(Item::as_table_like)
        .map(|t| t.iter().map(|(k, _)| k.to_owned()).collect())
        .unwrap_or_default();
    assert_eq!(listed, expected);
    listed
}

/// Speil's hosts carry the capabilities, dial timeout and header of the configuration.
fn check_speil_hosts(doc: &DocumentMut, config: &Config) {
    let capabilities = if config.resolve_tags {
        serde_json::json!(["pull", "resolve"])
    } else {
        serde_json::json!(["pull"])
    };
    for url in SPEIL_HOSTS {
        let table = host(doc, url).unwrap_or_else(|| panic!("no host {url}"));
        let view = toml_view::item(table);
        assert_eq!(view["capabilities"], capabilities);
        assert_eq!(view["dial_timeout"], "200ms");
        let header = config.basic_auth.as_ref().map(|a| a.header_value());
        assert_eq!(view["header"]["Authorization"].as_str(), header);
    }
}

fn host<'a>(doc: &'a DocumentMut, url: &str) -> Option<&'a Item> {
    doc.get("host")?.as_table_like()?.get(url)
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An empty `config_path` of this process and thread (the tests run targets on several threads).
fn scratch() -> PathBuf {
    let thread = format!("{:?}", std::thread::current().id());
    let thread: String = thread.chars().filter(char::is_ascii_digit).collect();
    let root = std::env::temp_dir()
        .join(format!("speil-fuzz-hosts-{}-{thread}", std::process::id()))
        .join("certs.d");
    if root.exists() {
        fs::remove_dir_all(&root).unwrap();
    }
    fs::create_dir_all(&root).unwrap();
    root
}
