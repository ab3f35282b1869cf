//! Writing OCI image layouts: the sample image of `speil demo` and the generated images of tests
//! and benchmarks. Blobs are streamed to disk and named by their digest; `index.json` is replaced
//! atomically so a running [`crate::OciDir`] never reads half of it.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use oci::manifest::Descriptor;
use oci::{Algorithm, Digest, Hasher, media_type};
use serde_json::json;

/// Adds blobs, manifests and named images to an OCI image layout directory.
pub struct LayoutWriter {
    root: PathBuf,
    index: Vec<Descriptor>,
}

impl LayoutWriter {
    /// Opens the layout at `root`, creating it when absent and keeping the images already in it.
    pub fn open(root: impl Into<PathBuf>) -> io::Result<LayoutWriter> {
        let root = root.into();
        fs::create_dir_all(root.join("blobs").join("sha256"))?;
        let layout = root.join("oci-layout");
        if !layout.exists() {
            fs::write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let index = match fs::read(root.join("index.json")) {
            Ok(bytes) => {
                let v: serde_json::Value = serde_json::from_slice(&bytes)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                serde_json::from_value(v["manifests"].clone()).unwrap_or_default()
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut w = LayoutWriter { root, index };
        w.write_index()?;
        Ok(w)
    }

    /// The layout's directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Writes `bytes` as a blob of `media_type`.
    pub fn blob(&mut self, media_type: &str, bytes: &[u8]) -> io::Result<Descriptor> {
        self.blob_from(media_type, bytes)
    }

    /// Streams `reader` into a blob of `media_type`, hashing as it goes.
    pub fn blob_from(&mut self, media_type: &str, mut reader: impl Read) -> io::Result<Descriptor> {
        let tmp = tempfile_in(&self.root)?;
        let mut file = File::create(&tmp)?;
        let mut hasher = Hasher::new(Algorithm::Sha256);
        let mut buf = vec![0u8; 1024 * 1024];
        let mut size = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            file.write_all(&buf[..n])?;
            size += n as u64;
        }
        file.sync_all()?;
        let digest = hasher.finish();
        fs::rename(&tmp, self.root.join("blobs").join(digest.blob_path()))?;
        Ok(Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            annotations: None,
        })
    }

    /// Writes an OCI image manifest over `config` and `layers`.
    pub fn manifest(
        &mut self,
        config: &Descriptor,
        layers: &[Descriptor],
    ) -> io::Result<Descriptor> {
        let body = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_MANIFEST,
            "config": config,
            "layers": layers,
        });
        self.blob(
            media_type::OCI_MANIFEST,
            &serde_json::to_vec(&body).map_err(io::Error::other)?,
        )
    }

    /// Writes an OCI image index listing `manifests`, each with its platform `(os, architecture)`.
    pub fn image_index(
        &mut self,
        manifests: &[(Descriptor, &str, &str)],
    ) -> io::Result<Descriptor> {
        let list: Vec<_> = manifests
            .iter()
            .map(|(d, os, arch)| {
                json!({
                    "mediaType": d.media_type,
                    "digest": d.digest,
                    "size": d.size,
                    "platform": {"os": os, "architecture": arch},
                })
            })
            .collect();
        let body = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": list,
        });
        self.blob(
            media_type::OCI_INDEX,
            &serde_json::to_vec(&body).map_err(io::Error::other)?,
        )
    }

    /// Lists `desc` in `index.json` under `name` (a full reference such as
    /// `example.com/team/app:1.0`), replacing an image of the same name, as containerd and skopeo
    /// name images.
    pub fn tag(&mut self, desc: &Descriptor, name: &str) -> io::Result<()> {
        self.index.retain(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get("io.containerd.image.name"))
                .map(String::as_str)
                != Some(name)
        });
        let mut annotations = BTreeMap::new();
        annotations.insert("io.containerd.image.name".to_owned(), name.to_owned());
        annotations.insert(
            "org.opencontainers.image.ref.name".to_owned(),
            name.to_owned(),
        );
        self.index.push(Descriptor {
            annotations: Some(annotations),
            ..desc.clone()
        });
        self.write_index()
    }

    /// Removes every image named `name` from `index.json` (its blobs stay).
    pub fn untag(&mut self, name: &str) -> io::Result<()> {
        self.index.retain(|d| {
            d.annotations
                .as_ref()
                .and_then(|a| a.get("io.containerd.image.name"))
                .map(String::as_str)
                != Some(name)
        });
        self.write_index()
    }

    fn write_index(&mut self) -> io::Result<()> {
        let body = json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": self.index,
        });
        let tmp = tempfile_in(&self.root)?;
        fs::write(
            &tmp,
            serde_json::to_vec_pretty(&body).map_err(io::Error::other)?,
        )?;
        fs::rename(&tmp, self.root.join("index.json"))
    }
}

/// A fresh temporary path inside the layout, on the same filesystem so a rename is atomic.
fn tempfile_in(root: &Path) -> io::Result<PathBuf> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    Ok(root.join(format!(".tmp-{}-{n}", std::process::id())))
}

/// An image layer: a gzip-compressed tar, as registries serve them.
pub struct Layer {
    /// The compressed bytes, the layer blob.
    pub compressed: Vec<u8>,
    /// The digest of the uncompressed tar, which the image config lists as a diff ID.
    pub diff_id: Digest,
}

/// A gzip layer holding `files` (path, contents) as regular files.
pub fn gzip_layer(files: &[(&str, &[u8])]) -> io::Result<Layer> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, contents) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut header, path, *contents)?;
    }
    let tar = builder.into_inner()?;
    let diff_id = Digest::sha256_of(&tar);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar)?;
    Ok(Layer {
        compressed: gz.finish()?,
        diff_id,
    })
}

/// The OCI config of a single-platform image whose layers have the given diff IDs.
pub fn image_config(os: &str, architecture: &str, diff_ids: &[Digest]) -> Vec<u8> {
    let body = json!({
        "architecture": architecture,
        "os": os,
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    serde_json::to_vec(&body).expect("a config always serialises")
}
