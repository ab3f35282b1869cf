//! Writing and removing host files without ever leaving containerd half a file or losing the
//! user's: the backup of `config_path` on the first run, atomic writes, and `cleanup`, which
//! puts the directory back exactly as it was.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use super::shared::{BACKUP, BACKUP_PARTIAL, Error, HOSTS_FILE, MARKER, Report, io_err};

/// Undoes [`configure`](super::configure): removes everything in `config_path` except `_backup`, moves the backup's
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

/// Moves every entry of `root` into `_backup`, unless a backup already exists. Returns whether
/// it moved anything.
pub(super) fn back_up(root: &Path) -> Result<bool, Error> {
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
pub(super) fn remove_stale(root: &Path, keep: &[&str]) -> Result<(), Error> {
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
pub(super) fn entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, Error> {
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

pub(super) fn is_speil_file(path: &Path) -> bool {
    fs::read_to_string(path).is_ok_and(|text| text.starts_with(MARKER))
}

/// Copies a certificate file an original host references from the backup into Speil's
/// directory, keeping its permissions (client keys are private).
pub(super) fn copy_referenced(
    from: &Path,
    to: &Path,
    rel: &Path,
    report: &mut Report,
) -> Result<(), Error> {
    if !rel
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
    {
        tracing::warn!(path = %rel.display(), "certificate path leaves its host directory; not copied");
        return Ok(());
    }
    let named: PathBuf = rel
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if named == Path::new(HOSTS_FILE) {
        // The host file itself, which Speil's own file replaces: copying it would overwrite
        // Speil's file at every run.
        return Ok(());
    }
    let source = from.join(rel);
    // An empty path or one naming a directory is no certificate file either (containerd would
    // fail to read it too): warned about, never a reason to fail.
    let permissions = match fs::metadata(&source) {
        Ok(meta) if meta.is_file() => meta.permissions(),
        Ok(_) => {
            tracing::warn!(path = %source.display(), "referenced certificate path is not a file; not copied");
            return Ok(());
        }
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
            ) =>
        {
            tracing::warn!(path = %source.display(), "referenced certificate file is missing; not copied");
            return Ok(());
        }
        Err(e) => return Err(io_err(&source)(e)),
    };
    let bytes = fs::read(&source).map_err(io_err(&source))?;
    let dest = to.join(rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    write_if_changed(&dest, &bytes, Some(permissions), report)
}

/// Writes `bytes` to `path` unless it already holds exactly them, through a temporary file in the
/// same directory and a rename, so containerd never reads half a file.
pub(super) fn write_if_changed(
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
