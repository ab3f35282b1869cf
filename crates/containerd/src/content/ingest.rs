//! Downloads containerd has under way, read from its content directory: each is a directory
//! under `ingest/` holding `ref` (`<namespace>/<n>/<kind>-<digest>`), `total` (the size, when
//! known) and `data`, which containerd writes strictly in order and at commit renames to
//! `blobs/<algorithm>/<hex>` (the same inode, so a file opened during the download stays
//! whole). containerd's API lists ingests but cannot read their bytes, and sends no event
//! when one starts, so they are found here, by digest, when asked for.

use std::fs;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci::Digest;
use store::{Content, Error, Follow, Ingest, Writer};

use super::shared::Inner;

/// Most ingest directories looked at in one search.
const MAX_INGESTS: usize = 4096;
/// The longest `ref` or `total` file read.
const MAX_SMALL_FILE: u64 = 1024;

/// One download under way.
struct Found {
    dir: PathBuf,
    total: u64,
    written: u64,
}

impl Inner {
    /// The download of `digest` in this store's namespace, when one is under way with a known
    /// size. Blocking: call it on the blocking pool.
    fn find_ingest(&self, digest: &Digest) -> Option<Found> {
        let entries = fs::read_dir(self.config.content_path.join("ingest")).ok()?;
        entries.take(MAX_INGESTS).flatten().find_map(|entry| {
            let dir = entry.path();
            let named = ref_digest(&read_small(&dir.join("ref"))?, &self.config.namespace)?;
            if named != *digest {
                return None;
            }
            let total = read_small(&dir.join("total"))?.trim().parse().ok()?;
            let written = fs::metadata(dir.join("data")).map_or(0, |m| m.len());
            Some(Found {
                dir,
                total,
                written,
            })
        })
    }

    /// [`Inner::find_ingest`] on the blocking pool, as a store answer.
    pub(super) async fn ingest(self: &Arc<Self>, digest: &Digest) -> Result<Option<Ingest>, Error> {
        let (inner, digest) = (self.clone(), digest.clone());
        let found = tokio::task::spawn_blocking(move || inner.find_ingest(&digest))
            .await
            .map_err(|e| self.ingest_error(io::Error::other(e)))?;
        Ok(found.map(|f| Ingest {
            total: f.total,
            written: f.written,
        }))
    }

    /// Opens the download of `digest` under way, to be streamed as it grows; `None` when
    /// there is none (or it was committed or abandoned in between).
    pub(super) async fn open_in_flight(
        self: &Arc<Self>,
        digest: &Digest,
    ) -> Result<Option<Content>, Error> {
        let (inner, owned) = (self.clone(), digest.clone());
        let opened = tokio::task::spawn_blocking(move || {
            let Some(found) = inner.find_ingest(&owned) else {
                return Ok(None);
            };
            match fs::File::open(found.dir.join("data")) {
                Ok(file) => Ok(Some((file, found))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e),
            }
        })
        .await
        .map_err(|e| self.ingest_error(io::Error::other(e)))?
        .map_err(|e| self.ingest_error(e))?;
        let Some((file, found)) = opened else {
            return Ok(None);
        };
        let follow = Follow {
            total: found.total,
            digest: digest.clone(),
            stall_timeout: self.config.in_flight_stall_timeout,
            writer: writer_of(found.dir, self.blob_path(digest)),
        };
        let total = follow.total;
        Ok(Some(Content::deferred(
            total,
            Box::new(move |offset, len| {
                Box::pin(async move { Ok(Some(store::follow(file, offset, len, follow))) })
            }),
        )))
    }

    fn ingest_error(&self, source: io::Error) -> Error {
        Error::Io {
            path: self.config.content_path.join("ingest"),
            source,
        }
    }
}

/// How the download in `dir` stands: writing while its `data` is there, done once `blob`
/// exists (containerd renames `data` to it at commit), gone when neither is.
fn writer_of(dir: PathBuf, blob: PathBuf) -> Arc<dyn Fn() -> Writer + Send + Sync> {
    let data = dir.join("data");
    Arc::new(move || {
        if data.exists() {
            Writer::Writing
        } else if blob.exists() {
            Writer::Done
        } else {
            Writer::Gone
        }
    })
}

/// A small text file, `None` when it is missing, too long or not text.
fn read_small(path: &Path) -> Option<String> {
    let mut text = String::new();
    fs::File::open(path)
        .ok()?
        .take(MAX_SMALL_FILE)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The digest an ingest's `ref` names when the ingest belongs to `namespace`:
/// `<namespace>/<n>/<kind>-<digest>`, such as `k8s.io/1/layer-sha256:4f74…`.
fn ref_digest(text: &str, namespace: &str) -> Option<Digest> {
    let rest = text.trim().strip_prefix(namespace)?.strip_prefix('/')?;
    let (_, key) = rest.split_once('/')?;
    key.rsplit('-').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ref_names_its_digest_only_in_its_namespace() {
        let hex = "4f74".repeat(16);
        let d: Digest = format!("sha256:{hex}").parse().unwrap();
        for text in [
            format!("k8s.io/1/layer-sha256:{hex}"),
            format!("k8s.io/17/config-sha256:{hex}\n"),
        ] {
            assert_eq!(ref_digest(&text, "k8s.io"), Some(d.clone()), "{text}");
        }
        for text in [
            format!("default/1/layer-sha256:{hex}"),
            format!("k8s.io.x/1/layer-sha256:{hex}"),
            "k8s.io/1/layer-sha256:short".to_owned(),
            format!("k8s.io/layer-sha256:{hex}"),
            String::new(),
        ] {
            assert_eq!(ref_digest(&text, "k8s.io"), None, "{text}");
        }
    }
}
