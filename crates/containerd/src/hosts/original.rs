//! The registry's original host configuration, for `--prepend-existing`: the `hosts.toml`
//! containerd used before Speil (found in the backup) and the certificate files it references.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use toml_edit::{DocumentMut, Item};

use super::shared::{DEFAULT_DIR, Error, HOSTS_FILE, io_err};

/// A registry's original host configuration, as found in the backup.
pub(super) struct Original {
    /// The backed-up directory containerd would have used; relative paths resolve against it.
    pub(super) dir: PathBuf,
    pub(super) doc: DocumentMut,
}

/// Finds the `hosts.toml` containerd would have used for `name` before Speil: the first existing
/// directory of `<host>_<port>_`, `<host>`, `_default` in the backup.
pub(super) fn original_hosts(backup: &Path, name: &str) -> Result<Option<Original>, Error> {
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
        let bytes = match fs::read(&file) {
            Ok(bytes) => bytes,
            // A directory of Docker-style certificate files only: containerd stops here too.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&file)(e)),
        };
        // TOML is UTF-8: other bytes are as invalid as a syntax error, not a reason to fail.
        let parsed = std::str::from_utf8(&bytes)
            .map_err(|e| e.to_string())
            .and_then(|text| text.parse::<DocumentMut>().map_err(|e| e.to_string()));
        return match parsed {
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

/// Relative file paths that `ca` and `client` keys reference, at the root and in every host.
pub(super) fn referenced_files(doc: &DocumentMut) -> Vec<PathBuf> {
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
