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
//! This file holds the steps of [`configure`]; `shared.rs` its configuration, report and errors;
//! `render.rs` makes the text, `write.rs` the backup, atomic writes and [`cleanup`],
//! `original.rs` reads the original host files for `--prepend-existing`, and `inspect.rs` reads
//! Speil's files back for the status.

mod inspect;
mod original;
mod render;
mod shared;
mod write;

use std::fs;

use toml_edit::DocumentMut;

pub use inspect::{HostFile, is_configured, speil_host_files, speil_host_files_async};
use shared::{BACKUP, DEFAULT_DIR, HOSTS_FILE, io_err};
pub use shared::{Config, Error, MARKER, Report};
pub use write::cleanup;

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
