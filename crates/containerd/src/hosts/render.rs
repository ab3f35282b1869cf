//! The text of one `hosts.toml`: Speil's hosts first, then, with `--prepend-existing`, the
//! original file's settings and hosts. Values and keys are quoted by `toml_edit`.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use toml_edit::{DocumentMut, Item, Table};

use super::original::Original;
use super::shared::{Config, DEFAULT_DIR, MARKER};

/// The upstream `server` line Speil writes for a host directory, if any; `plain_http` for a
/// registry given as `http://`.
fn default_server(name: &str, plain_http: bool) -> Option<String> {
    match name {
        DEFAULT_DIR => None,
        "docker.io" => Some("https://registry-1.docker.io".to_owned()),
        host if plain_http => Some(format!("http://{host}")),
        // containerd's own default for a loopback registry is plain HTTP (with a TLS fallback);
        // an explicit https:// server would break a local plain-HTTP registry, so leave it out.
        host if is_localhost(host) => None,
        host => Some(format!("https://{host}")),
    }
}

/// Whether containerd treats `host` (with an optional port) as local: `localhost` or a loopback
/// address.
pub(super) fn is_localhost(host: &str) -> bool {
    let bare = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else {
        match host.split_once(':') {
            Some((h, port)) if !port.contains(':') => h,
            _ => host,
        }
    };
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The text of one `hosts.toml`.
pub(super) fn render(
    config: &Config,
    name: &str,
    authorization: Option<&str>,
    original: Option<&Original>,
) -> String {
    let mut out = String::new();
    out.push_str(MARKER);
    out.push('\n');

    // Root key-values: the upstream server and, with --prepend-existing, the original file's own
    // root settings (its server wins over Speil's default).
    let original_root = original.map(|o| root_values(&o.doc));
    let has_server = original.is_some_and(|o| o.doc.contains_key("server"));
    let plain_http = config.plain_http.iter().any(|r| r.as_str() == name);
    if !has_server && let Some(server) = default_server(name, plain_http) {
        let _ = writeln!(out, "server = {}", value(&server));
    }
    if let Some(part) = original_root.as_ref().map(ToString::to_string) {
        out.push_str(&part);
    }

    let capabilities = capabilities(config.resolve_tags);
    let timeout = value(&format_duration(config.dial_timeout));
    for target in &config.mirror_targets {
        let key = key(target);
        let _ = write!(
            out,
            "\n[host.{key}]\ncapabilities = {capabilities}\ndial_timeout = {timeout}\n"
        );
        if let Some(authorization) = authorization {
            let _ = write!(
                out,
                "\n[host.{key}.header]\nAuthorization = {}\n",
                value(authorization)
            );
        }
    }

    if let Some(original) = original {
        for part in [
            original_host_tables(&original.doc, &config.mirror_targets),
            root_tables(&original.doc),
        ] {
            let text = part.to_string();
            let text = text.trim_start_matches(['\n', '\r']);
            if !text.is_empty() {
                out.push('\n');
                out.push_str(text);
            }
        }
    }
    out
}

/// The original's root key-values (and dotted keys), which must precede every table header.
fn root_values(doc: &DocumentMut) -> DocumentMut {
    let mut part = DocumentMut::new();
    for (name, item) in doc.iter() {
        let dotted = item.as_table().is_some_and(Table::is_dotted);
        if name != "host" && (item.is_value() || dotted) {
            insert_like(&mut part, doc, name, item.clone());
        }
    }
    part
}

/// The original's root tables other than `host` (e.g. a `[header]` for the server).
fn root_tables(doc: &DocumentMut) -> DocumentMut {
    let mut part = DocumentMut::new();
    for (name, item) in doc.iter() {
        let table = item.as_table().is_some_and(|t| !t.is_dotted()) || item.is_array_of_tables();
        if name != "host" && table {
            insert_like(&mut part, doc, name, item.clone());
        }
    }
    part
}

/// The original's `[host."<url>"]` tables, except those Speil now writes itself, as standard
/// tables under an implicit `host` (so they render after Speil's, never as root keys).
fn original_host_tables(doc: &DocumentMut, speil_targets: &[String]) -> DocumentMut {
    let mut part = DocumentMut::new();
    let mut hosts = Table::new();
    hosts.set_implicit(true);
    if let Some(Item::Table(original)) = doc.get("host") {
        for (url, item) in original.iter() {
            if speil_targets.iter().any(|t| t == url) {
                continue;
            }
            let Ok(mut table) = item.clone().into_table() else {
                continue;
            };
            table.set_dotted(false);
            table.set_implicit(false);
            match original.key(url) {
                Some(key) => hosts.insert_formatted(key, Item::Table(table)),
                None => hosts.insert(url, Item::Table(table)),
            };
        }
    } else if let Some(original) = doc.get("host").and_then(Item::as_table_like) {
        // `host = { ... }` as an inline table.
        for (url, item) in original.iter() {
            if let Ok(table) = item.clone().into_table()
                && !speil_targets.iter().any(|t| t == url)
            {
                hosts.insert(url, Item::Table(table));
            }
        }
    }
    if !hosts.is_empty() {
        part.insert("host", Item::Table(hosts));
    }
    part
}

/// Inserts `item` under `name`, keeping the key's formatting (and comments) from `from`.
fn insert_like(part: &mut DocumentMut, from: &DocumentMut, name: &str, item: Item) {
    match from.as_table().key(name) {
        Some(key) => part.as_table_mut().insert_formatted(key, item),
        None => part.insert(name, item),
    };
}

/// A duration as Go's `time.ParseDuration` reads it: `200ms`, `2s`, `1500us`.
pub(super) fn format_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos.is_multiple_of(1_000_000_000) {
        format!("{}s", nanos / 1_000_000_000)
    } else if nanos.is_multiple_of(1_000_000) {
        format!("{}ms", nanos / 1_000_000)
    } else if nanos.is_multiple_of(1_000) {
        format!("{}us", nanos / 1_000)
    } else {
        format!("{nanos}ns")
    }
}

/// The capabilities of Speil's hosts: `["pull", "resolve"]`, or `["pull"]` when containerd
/// resolves tags upstream.
fn capabilities(resolve_tags: bool) -> String {
    let names: &[&str] = if resolve_tags {
        &["pull", "resolve"]
    } else {
        &["pull"]
    };
    let mut array: toml_edit::Array = names.iter().copied().collect();
    array.fmt();
    array.to_string()
}

/// A string as a TOML value, quoted the way `toml_edit` writes it.
fn value(s: &str) -> String {
    toml_edit::Value::from(s).to_string()
}

/// A string as a TOML key, quoted only when it must be.
fn key(s: &str) -> String {
    toml_edit::Key::new(s).display_repr().into_owned()
}
