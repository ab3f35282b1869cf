//! What the parts of `hosts` share: the configuration of [`configure`](super::configure), its
//! report and errors, and the names of the files and directories in `config_path`. The parts
//! (`render.rs`, `write.rs`, `original.rs`, `inspect.rs`) import from here and `mod.rs` from
//! them, so imports point one way.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The first line of every `hosts.toml` Speil writes. `cleanup` and `is_configured` recognise
/// Speil's files by it, so it never changes.
pub const MARKER: &str = "# Written by Speil; restored by speil cleanup.";

/// Where the original contents of `config_path` are kept while Speil's files are in place.
pub(super) const BACKUP: &str = "_backup";
/// The backup while it is being filled; renamed to [`BACKUP`] once every entry has moved, so an
/// interrupted first run is resumed instead of being mistaken for a finished backup.
pub(super) const BACKUP_PARTIAL: &str = "_backup.partial";
/// containerd's fallback directory for registries without a directory of their own.
pub(super) const DEFAULT_DIR: &str = "_default";
pub(super) const HOSTS_FILE: &str = "hosts.toml";

/// What to write: the containerd side of Speil's command-line flags.
#[derive(Debug, Clone)]
pub struct Config {
    /// `--containerd-registry-config-path`, e.g. `/etc/containerd/certs.d`. Created when missing:
    /// containerd treats a missing directory as "no host configuration".
    pub config_path: PathBuf,
    /// `--mirrored-registries` as registry hosts (`docker.io`, `ghcr.io`, `localhost:5000`);
    /// empty means every registry, through `_default`.
    pub registries: Vec<oci::Registry>,
    /// The registries of `registries` given as `http://`: their upstream `server` is written
    /// as plain HTTP.
    pub plain_http: Vec<oci::Registry>,
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

pub(super) fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
