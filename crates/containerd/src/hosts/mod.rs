//! containerd's registry host files (`<config_path>/<registry>/hosts.toml`): Speil writes them so
//! containerd asks the local Speil first, and `cleanup` puts the directory back exactly as it was.
//!
//! containerd (1.6 and later, CRI `config_path`) looks up a registry's host directory under each
//! configured root in this order: `<host>_<port>_`, `<host>:<port>` (or `<host>`), `_default`; the
//! first directory that exists wins. In `hosts.toml` the `[host."<url>"]` tables are tried in file
//! order, then `server` (or containerd's default upstream when `server` is absent). Relative `ca`
//! and `client` paths are relative to the directory holding `hosts.toml`.
//!
//! The first run moves everything in `config_path` into `<config_path>/_backup/` by rename (so
//! every byte, mode and timestamp survives) before anything is written; later runs leave the backup
//! alone, because it is the original state. Every file is written to a temporary file in the same
//! directory and renamed into place.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use toml_edit::{DocumentMut, Item, Table};

/// The first line of every `hosts.toml` Speil writes. `cleanup` and `is_configured` recognise
/// Speil's files by it, so it never changes.
pub const MARKER: &str = "# Written by Speil; restored by speil cleanup.";

/// Where the original contents of `config_path` are kept while Speil's files are in place.
const BACKUP: &str = "_backup";
/// The backup while it is being filled; renamed to [`BACKUP`] once every entry has moved, so an
/// interrupted first run is resumed instead of being mistaken for a finished backup.
const BACKUP_PARTIAL: &str = "_backup.partial";
/// containerd's fallback directory for registries without a directory of their own.
const DEFAULT_DIR: &str = "_default";
const HOSTS_FILE: &str = "hosts.toml";

/// What to write: the containerd side of Speil's command-line flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--containerd-registry-config-path`, e.g. `/etc/containerd/certs.d`. Created when missing:
    /// containerd treats a missing directory as "no host configuration".
    pub config_path: PathBuf,
    /// `--mirrored-registries` as registry hosts (`docker.io`, `ghcr.io`, `localhost:5000`);
    /// empty means every registry, through `_default`.
    pub registries: Vec<oci::Registry>,
    /// `--mirror-targets`, in the order containerd should try them, e.g.
    /// `["http://127.0.0.1:5000"]` (the local Speil first); full `http://` or `https://` URLs.
    pub mirror_targets: Vec<String>,
    /// `--resolve-tags`: Speil's hosts get capabilities `["pull", "resolve"]` when true, `["pull"]`
    /// when false (containerd then resolves tags upstream).
    pub resolve_tags: bool,
    /// `--prepend-existing`: keep each registry's original hosts after Speil's instead of
    /// replacing them (with the certificate files they reference by relative path).
    pub prepend_existing: bool,
    /// Contents of a basic-auth file (`user:password`), when given; becomes an
    /// `Authorization = "Basic <base64>"` header on Speil's hosts.
    pub basic_auth: Option<String>,
    /// `dial_timeout` on Speil's hosts, e.g. 200ms, so an absent Speil costs little
    /// (containerd 1.7 and later honour it; 1.6 ignores the key).
    pub dial_timeout: Duration,
}

/// What [`configure`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Whether this run moved the original contents of `config_path` into `_backup`.
    pub backed_up: bool,
    /// Files whose content changed, in the order they were written; empty when everything was
    /// already in place.
    pub written: Vec<PathBuf>,
}

/// Why the host files could not be written, removed or restored.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory the operation was on.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A file Speil generated did not parse back as TOML (a bug in Speil, never the input).
    #[error("{}: generated text is not valid TOML: {source}", path.display())]
    Generated {
        /// The file that was about to be written.
        path: PathBuf,
        /// The parser's complaint.
        source: toml_edit::TomlError,
    },
    /// `mirror_targets` is empty: there is nothing to point containerd at.
    #[error("no mirror targets given")]
    NoMirrorTargets,
    /// A mirror target is not a plain `http://` or `https://` URL.
    #[error("mirror target {0:?} is not an http:// or https:// URL")]
    MirrorTarget(String),
    /// The basic-auth content is not `user:password` (the content itself is never shown).
    #[error("basic-auth content is not of the form user:password")]
    BasicAuth,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes Speil's host files into `config.config_path`, backing up what was there on the first
/// run. Running it again with the same config changes nothing (byte-identical files).
pub fn configure(config: &Config) -> Result<Report, Error> {
    let authorization = validate(config)?;
    let root = &config.config_path;
    fs::create_dir_all(root).map_err(io_err(root))?;
    let backed_up = back_up(root)?;
    let backup = root.join(BACKUP);

    let mut dirs: Vec<&str> = Vec::new();
    if config.registries.is_empty() {
        dirs.push(DEFAULT_DIR);
    } else {
        for registry in &config.registries {
            if !dirs.contains(&registry.as_str()) {
                dirs.push(registry.as_str());
            }
        }
    }
    remove_stale(root, &dirs)?;

    let mut report = Report {
        backed_up,
        written: Vec::new(),
    };
    for name in dirs {
        let dir = root.join(name);
        let original = if config.prepend_existing {
            original_hosts(&backup, name)?
        } else {
            None
        };
        let text = render(config, name, authorization.as_deref(), original.as_ref());
        let path = dir.join(HOSTS_FILE);
        if let Err(source) = text.parse::<DocumentMut>() {
            return Err(Error::Generated { path, source });
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if let Some(original) = &original {
            for rel in referenced_files(&original.doc) {
                copy_referenced(&original.dir, &dir, &rel, &mut report)?;
            }
        }
        write_if_changed(&path, text.as_bytes(), None, &mut report)?;
    }
    Ok(report)
}

/// Undoes [`configure`]: removes everything in `config_path` except `_backup`, moves the backup's
/// entries back and removes `_backup`, restoring the directory exactly as it was. Without a backup
/// it removes only the `hosts.toml` files that carry Speil's [`MARKER`]. A missing `config_path`
/// is not an error.
pub fn cleanup(config_path: &Path) -> Result<(), Error> {
    if !exists(config_path)? {
        return Ok(());
    }
    let backup = config_path.join(BACKUP);
    let partial = config_path.join(BACKUP_PARTIAL);
    if exists(&backup)? {
        for (name, path) in entries(config_path)? {
            if name != BACKUP {
                remove_any(&path)?;
            }
        }
        restore(&backup, config_path)?;
        fs::remove_dir(&backup).map_err(io_err(&backup))
    } else if exists(&partial)? {
        // The first backup was interrupted: nothing of Speil's was written yet, and the entries
        // still outside the partial backup are originals.
        restore(&partial, config_path)?;
        fs::remove_dir(&partial).map_err(io_err(&partial))
    } else {
        for (_, dir) in entries(config_path)? {
            let file = dir.join(HOSTS_FILE);
            if is_speil_file(&file) {
                fs::remove_file(&file).map_err(io_err(&file))?;
                match fs::remove_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::DirectoryNotEmpty => {}
                    Err(e) => return Err(io_err(&dir)(e)),
                }
            }
        }
        Ok(())
    }
}

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

/// Checks the config and returns the `Authorization` header value, if any.
fn validate(config: &Config) -> Result<Option<String>, Error> {
    if config.mirror_targets.is_empty() {
        return Err(Error::NoMirrorTargets);
    }
    for target in &config.mirror_targets {
        let rest = target
            .strip_prefix("http://")
            .or_else(|| target.strip_prefix("https://"));
        let plain = |c: char| !c.is_whitespace() && !c.is_control() && c != '"' && c != '\\';
        if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/') && r.chars().all(plain)) {
            return Err(Error::MirrorTarget(target.clone()));
        }
    }
    config
        .basic_auth
        .as_deref()
        .map(|content| {
            let content = content.trim();
            match content.split_once(':') {
                Some((user, _)) if !user.is_empty() => {
                    Ok(format!("Basic {}", base64(content.as_bytes())))
                }
                _ => Err(Error::BasicAuth),
            }
        })
        .transpose()
}

/// Moves every entry of `root` into `_backup`, unless a backup already exists. Returns whether
/// it moved anything.
fn back_up(root: &Path) -> Result<bool, Error> {
    if exists(&root.join(BACKUP))? {
        return Ok(false);
    }
    let partial = root.join(BACKUP_PARTIAL);
    match fs::create_dir(&partial) {
        Ok(()) => {}
        // A previous first run stopped half way: carry on filling the same partial backup.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io_err(&partial)(e)),
    }
    for (name, path) in entries(root)? {
        if name == BACKUP || name == BACKUP_PARTIAL {
            continue;
        }
        let to = partial.join(&name);
        fs::rename(&path, &to).map_err(io_err(&path))?;
    }
    let backup = root.join(BACKUP);
    fs::rename(&partial, &backup).map_err(io_err(&backup))?;
    Ok(true)
}

/// Removes Speil's directories for registries no longer mirrored (the config changed).
fn remove_stale(root: &Path, keep: &[&str]) -> Result<(), Error> {
    for (name, path) in entries(root)? {
        if name == BACKUP || name == BACKUP_PARTIAL || keep.contains(&name.as_str()) {
            continue;
        }
        if is_speil_file(&path.join(HOSTS_FILE)) {
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

/// Moves every entry of `from` into `to`.
fn restore(from: &Path, to: &Path) -> Result<(), Error> {
    for (name, path) in entries(from)? {
        fs::rename(&path, to.join(&name)).map_err(io_err(&path))?;
    }
    Ok(())
}

/// The entries of a directory as (name, path), sorted by name so every run does the same thing.
/// Names that are not UTF-8 are kept as lossy strings for comparison only; the path is exact.
fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
    let mut list = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        list.push((
            entry.file_name().to_string_lossy().into_owned(),
            entry.path(),
        ));
    }
    list.sort();
    Ok(list)
}

fn exists(path: &Path) -> Result<bool, Error> {
    match fs::symlink_metadata(path) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(io_err(path)(e)),
    }
}

fn remove_any(path: &Path) -> Result<(), Error> {
    let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
    if meta.is_dir() {
        fs::remove_dir_all(path).map_err(io_err(path))
    } else {
        fs::remove_file(path).map_err(io_err(path))
    }
}

fn is_speil_file(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.starts_with(MARKER))
}

/// A registry's original host configuration, as found in the backup.
struct Original {
    /// The backed-up directory containerd would have used; relative paths resolve against it.
    dir: PathBuf,
    doc: DocumentMut,
}

/// Finds the `hosts.toml` containerd would have used for `name` before Speil: the first existing
/// directory of `<host>_<port>_`, `<host>`, `_default` in the backup.
fn original_hosts(backup: &Path, name: &str) -> Result<Option<Original>, Error> {
    let mut candidates = Vec::new();
    if name != DEFAULT_DIR {
        if let Some(i) = name.rfind(':').filter(|&i| i > 0) {
            candidates.push(format!("{}_{}_", &name[..i], &name[i + 1..]));
        }
        candidates.push(name.to_owned());
    }
    candidates.push(DEFAULT_DIR.to_owned());
    for candidate in candidates {
        let dir = backup.join(candidate);
        if !fs::metadata(&dir).is_ok_and(|m| m.is_dir()) {
            continue;
        }
        let file = dir.join(HOSTS_FILE);
        let text = match fs::read_to_string(&file) {
            Ok(text) => text,
            // A directory of Docker-style certificate files only: containerd stops here too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&file)(e)),
        };
        return match text.parse::<DocumentMut>() {
            Ok(doc) => Ok(Some(Original { dir, doc })),
            Err(error) => {
                // containerd itself ignores such a file; so does Speil, but says so.
                tracing::warn!(path = %file.display(), %error, "existing hosts.toml is not valid TOML; its hosts are not kept");
                Ok(None)
            }
        };
    }
    Ok(None)
}

/// The upstream `server` line Speil writes for a host directory, if any.
fn default_server(name: &str) -> Option<String> {
    match name {
        DEFAULT_DIR => None,
        "docker.io" => Some("https://registry-1.docker.io".to_owned()),
        // containerd's own default for a loopback registry is plain HTTP (with a TLS fallback);
        // an explicit https:// server would break a local plain-HTTP registry, so leave it out.
        host if is_localhost(host) => None,
        host => Some(format!("https://{host}")),
    }
}

/// Whether containerd treats `host` (with an optional port) as local: `localhost` or a loopback
/// address.
fn is_localhost(host: &str) -> bool {
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
fn render(
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
    if !has_server && let Some(server) = default_server(name) {
        let _ = writeln!(out, "server = {}", quote(&server));
    }
    if let Some(part) = original_root.as_ref().map(ToString::to_string) {
        out.push_str(&part);
    }

    let capabilities = if config.resolve_tags {
        r#"["pull", "resolve"]"#
    } else {
        r#"["pull"]"#
    };
    let timeout = quote(&format_duration(config.dial_timeout));
    for target in &config.mirror_targets {
        let key = quote(target);
        let _ = write!(
            out,
            "\n[host.{key}]\ncapabilities = {capabilities}\ndial_timeout = {timeout}\n"
        );
        if let Some(value) = authorization {
            let _ = write!(
                out,
                "\n[host.{key}.header]\nAuthorization = {}\n",
                quote(value)
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

/// Relative file paths that `ca` and `client` keys reference, at the root and in every host.
fn referenced_files(doc: &DocumentMut) -> Vec<PathBuf> {
    let mut paths = Vec::new();
    let mut tables: Vec<&dyn toml_edit::TableLike> = vec![doc.as_table()];
    if let Some(hosts) = doc.get("host").and_then(Item::as_table_like) {
        tables.extend(hosts.iter().filter_map(|(_, item)| item.as_table_like()));
    }
    for table in tables {
        for key in ["ca", "client"] {
            if let Some(item) = table.get(key) {
                collect_strings(item.as_value(), &mut paths);
            }
        }
    }
    let mut seen = HashSet::new();
    paths.retain(|p| seen.insert(p.clone()));
    paths
}

fn collect_strings(value: Option<&toml_edit::Value>, out: &mut Vec<PathBuf>) {
    match value {
        Some(toml_edit::Value::String(s)) => {
            let path = PathBuf::from(s.value());
            if path.is_relative() {
                out.push(path);
            }
        }
        Some(toml_edit::Value::Array(array)) => {
            for v in array.iter() {
                collect_strings(Some(v), out);
            }
        }
        _ => {}
    }
}

/// Copies a certificate file an original host references from the backup into Speil's
/// directory, keeping its permissions (client keys are private).
fn copy_referenced(from: &Path, to: &Path, rel: &Path, report: &mut Report) -> Result<(), Error> {
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        tracing::warn!(path = %rel.display(), "certificate path leaves its host directory; not copied");
        return Ok(());
    }
    let source = from.join(rel);
    let bytes = match fs::read(&source) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            tracing::warn!(path = %source.display(), "referenced certificate file is missing; not copied");
            return Ok(());
        }
        Err(e) => return Err(io_err(&source)(e)),
    };
    let permissions = fs::metadata(&source)
        .map_err(io_err(&source))?
        .permissions();
    let dest = to.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    write_if_changed(&dest, &bytes, Some(permissions), report)
}

/// Writes `bytes` to `path` unless it already holds exactly them, through a temporary file in the
/// same directory and a rename, so containerd never reads half a file.
fn write_if_changed(
    path: &Path,
    bytes: &[u8],
    permissions: Option<fs::Permissions>,
    report: &mut Report,
) -> Result<(), Error> {
    if fs::read(path).is_ok_and(|current| current == bytes)
        && permissions
            .as_ref()
            .is_none_or(|p| fs::metadata(path).is_ok_and(|m| m.permissions() == *p))
    {
        return Ok(());
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or(OsStr::new(HOSTS_FILE));
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".speil-tmp");
    let tmp = dir.join(tmp_name);
    let result = (|| {
        let mut file = fs::File::create(&tmp)?;
        if let Some(permissions) = permissions {
            file.set_permissions(permissions)?;
        }
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if let Err(source) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::Io {
            path: path.to_path_buf(),
            source,
        });
    }
    report.written.push(path.to_path_buf());
    Ok(())
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration as Go's `time.ParseDuration` reads it: `200ms`, `2s`, `1500us`.
fn format_duration(d: Duration) -> String {
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

/// Standard base64 (RFC 4648, with padding).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
