//! Just enough of manifests and indexes to know their type and what they reference.

use serde::Deserialize;

use crate::digest::Digest;
use crate::media_type;

/// The largest manifest Speil will parse or hold in memory (the spec suggests registries accept
/// at least 4 MiB).
pub const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;

/// A reference from one piece of content to another.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: String,
    /// The referenced content's digest.
    pub digest: Digest,
    /// The referenced content's size in bytes.
    pub size: u64,
    /// Annotations, when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// A parsed manifest or index: its media type and the descriptors it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The manifest's own media type.
    pub media_type: String,
    /// For an index, the manifests it lists; for a manifest, its config then its layers.
    pub references: Vec<Descriptor>,
}

/// Why bytes are not a manifest Speil understands.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// Larger than [`MAX_MANIFEST_SIZE`].
    #[error("manifest is larger than {MAX_MANIFEST_SIZE} bytes")]
    TooLarge,
    /// Not JSON, or descriptors without the required fields.
    #[error("manifest is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON without a recognisable manifest or index shape.
    #[error("content is not a manifest or an index")]
    NotAManifest,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Raw {
    media_type: Option<String>,
    schema_version: Option<u32>,
    manifests: Option<Vec<Descriptor>>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

impl Manifest {
    /// Parses `bytes` as a manifest or index, working out its media type from the `mediaType`
    /// field or, when that is absent (allowed for OCI), from its shape.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, ManifestError> {
        if bytes.len() as u64 > MAX_MANIFEST_SIZE {
            return Err(ManifestError::TooLarge);
        }
        let raw: Raw = serde_json::from_slice(bytes)?;
        if raw.schema_version != Some(2) {
            return Err(ManifestError::NotAManifest);
        }
        let media_type = match (raw.media_type, &raw.manifests, &raw.config) {
            (Some(mt), _, _) if media_type::is_manifest(&mt) => mt,
            (Some(_), _, _) => return Err(ManifestError::NotAManifest),
            (None, Some(_), None) => media_type::OCI_INDEX.to_owned(),
            (None, None, Some(_)) => media_type::OCI_MANIFEST.to_owned(),
            _ => return Err(ManifestError::NotAManifest),
        };
        let references = if media_type::is_index(&media_type) {
            raw.manifests.ok_or(ManifestError::NotAManifest)?
        } else {
            let config = raw.config.ok_or(ManifestError::NotAManifest)?;
            std::iter::once(config).chain(raw.layers).collect()
        };
        Ok(Manifest {
            media_type,
            references,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_index_and_manifest() {
        let index = format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","manifests":[{{"mediaType":"{}","digest":"{D}","size":3}}]}}"#,
            media_type::OCI_INDEX,
            media_type::OCI_MANIFEST
        );
        let m = Manifest::parse(index.as_bytes()).unwrap();
        assert_eq!(m.media_type, media_type::OCI_INDEX);
        assert_eq!(m.references.len(), 1);

        let manifest = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"c","digest":"{D}","size":1}},"layers":[{{"mediaType":"l","digest":"{D}","size":2}}]}}"#
        );
        let m = Manifest::parse(manifest.as_bytes()).unwrap();
        assert_eq!(m.media_type, media_type::OCI_MANIFEST);
        assert_eq!(
            m.references.iter().map(|d| d.size).collect::<Vec<_>>(),
            [1, 2]
        );
    }

    #[test]
    fn rejects_non_manifests() {
        for bad in [
            "".as_bytes(),
            b"{}",
            b"[1]",
            br#"{"schemaVersion":1}"#,
            br#"{"schemaVersion":2,"mediaType":"text/plain"}"#,
            br#"{"schemaVersion":2,"manifests":[{"mediaType":"x","digest":"sha256:..","size":1}]}"#,
        ] {
            assert!(
                Manifest::parse(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let big = vec![b' '; MAX_MANIFEST_SIZE as usize + 1];
        assert!(matches!(
            Manifest::parse(&big),
            Err(ManifestError::TooLarge)
        ));
    }
}
