//! Walking an image: from its manifest or index to every manifest, config and layer it
//! references, keeping only what the store really holds. Both stores list images this way, so a
//! layer that is missing (containerd's `discard_unpacked_layers`) is never advertised.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use oci::Digest;
use oci::manifest::{Descriptor, Manifest};

/// Manifests read so far, by digest: media type and bytes. Manifests never change under a
/// digest, so a cache can outlive a listing.
pub type ManifestCache = HashMap<Digest, (String, Bytes)>;

/// Where the walk reads from.
pub trait Source {
    /// The bytes of a manifest or index, if the store holds them, they are no larger than
    /// [`oci::manifest::MAX_MANIFEST_SIZE`], and they match `digest`.
    fn manifest(&mut self, digest: &Digest) -> Option<Bytes>;

    /// Whether the store holds `digest`.
    fn exists(&mut self, digest: &Digest) -> bool;
}

/// Every digest reachable from `top` that the store holds, `top` first; empty when the store
/// lacks `top` itself. Manifests read are added to `cache`.
pub fn contents(
    top: &Descriptor,
    source: &mut dyn Source,
    cache: &mut ManifestCache,
) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    visit(top, source, cache, &mut out, &mut seen);
    out
}

fn visit(
    desc: &Descriptor,
    source: &mut dyn Source,
    cache: &mut ManifestCache,
    out: &mut Vec<Digest>,
    seen: &mut HashSet<Digest>,
) {
    if !seen.insert(desc.digest.clone()) {
        return;
    }
    if !oci::media_type::is_manifest(&desc.media_type) {
        if source.exists(&desc.digest) {
            out.push(desc.digest.clone());
        }
        return;
    }
    let parsed = match cache.get(&desc.digest) {
        Some((_, bytes)) => Manifest::parse(bytes).ok(),
        None => source.manifest(&desc.digest).and_then(|bytes| {
            let parsed = Manifest::parse(&bytes).ok()?;
            cache.insert(desc.digest.clone(), (parsed.media_type.clone(), bytes));
            Some(parsed)
        }),
    };
    let Some(manifest) = parsed else { return };
    out.push(desc.digest.clone());
    for child in &manifest.references {
        visit(child, source, cache, out, seen);
    }
}

/// Whether `bytes` are the content of `digest`.
pub fn matches(digest: &Digest, bytes: &[u8]) -> bool {
    let mut h = digest.hasher();
    h.update(bytes);
    h.finish() == *digest
}
