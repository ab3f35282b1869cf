//! The target for manifests and indexes, as a peer or a store hands them over.

use oci::manifest::{MAX_MANIFEST_SIZE, Manifest};
use oci::media_type;

/// `Manifest::parse`: what parses has a manifest media type and references content by valid
/// digests; a manifest's first reference is its config; and the manifest written back as JSON
/// in its canonical shape parses to the same value.
pub(crate) fn manifest(data: &[u8]) {
    let parsed = Manifest::parse(data);
    let Ok(m) = parsed else { return };
    assert!(data.len() as u64 <= MAX_MANIFEST_SIZE);
    assert!(media_type::is_manifest(&m.media_type), "{:?}", m.media_type);
    for d in &m.references {
        assert_eq!(
            d.digest.to_string().parse::<oci::Digest>().unwrap(),
            d.digest
        );
    }
    let canonical = if media_type::is_index(&m.media_type) {
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": m.media_type,
            "manifests": m.references,
        })
    } else {
        let (config, layers) = m.references.split_first().expect("a manifest has a config");
        serde_json::json!({
            "schemaVersion": 2,
            "mediaType": m.media_type,
            "config": config,
            "layers": layers,
        })
    };
    let bytes = serde_json::to_vec(&canonical).unwrap();
    let again = Manifest::parse(&bytes).unwrap_or_else(|e| panic!("{canonical}: {e}"));
    assert_eq!(again, m);
}
