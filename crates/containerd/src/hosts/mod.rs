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
//!
//! This file holds the configuration and the steps of [`configure`]; `render.rs` makes the text,
//! `write.rs` the backup, atomic writes and [`cleanup`], `original.rs` reads the original host
//! files for `--prepend-existing`, and `inspect.rs` reads Speil's files back for the status.

mod inspect;
mod original;
mod render;
mod write;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml_edit::DocumentMut;

pub use inspect::{HostFile, is_configured, speil_host_files, speil_host_files_async};
pub use write::cleanup;

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
    pub basic_auth: Option<oci::BasicAuth>,
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
    let backed_up = write::back_up(root)?;
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
    write::remove_stale(root, &dirs)?;

    let mut report = Report {
        backed_up,
        written: Vec::new(),
    };
    for name in dirs {
        let dir = root.join(name);
        let original = if config.prepend_existing {
            original::original_hosts(&backup, name)?
        } else {
            None
        };
        let text = render::render(config, name, authorization.as_deref(), original.as_ref());
        let path = dir.join(HOSTS_FILE);
        if let Err(source) = text.parse::<DocumentMut>() {
            return Err(Error::Generated { path, source });
        }
        fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        if let Some(original) = &original {
            for rel in original::referenced_files(&original.doc) {
                write::copy_referenced(&original.dir, &dir, &rel, &mut report)?;
            }
        }
        write::write_if_changed(&path, text.as_bytes(), None, &mut report)?;
    }
    Ok(report)
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
    Ok(config
        .basic_auth
        .as_ref()
        .map(|auth| auth.header_value().to_owned()))
}

#[cfg(test)]
mod tests;
