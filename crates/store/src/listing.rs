//! What a store holds, as both stores keep it in memory between listings: images, the tags
//! that name them, and their manifests (small, hot, immutable under their digests).

use std::collections::HashMap;

use oci::{Digest, ImageReference};

use crate::Content;
use crate::Image;
use crate::walk::ManifestCache;

/// One listing of a store.
#[derive(Default)]
pub struct Listing {
    /// Full tag references (`registry/repository:tag`) to the digests they name.
    pub tags: HashMap<String, Digest>,
    /// Every image, as listed.
    pub images: Vec<Image>,
    /// The manifests and indexes of those images.
    pub manifests: ManifestCache,
}

impl Listing {
    /// Adds an image named `name` (indexed by its tag, when it has one) whose manifest or index
    /// is `digest` and which consists of `contents`.
    pub fn push(&mut self, name: Option<ImageReference>, digest: Digest, contents: Vec<Digest>) {
        if let Some(key) = name.as_ref().and_then(ImageReference::tag_key) {
            self.tags.insert(key, digest.clone());
        }
        self.images.push(Image {
            name,
            digest,
            contents,
        });
    }

    /// The digest a full tag reference names.
    pub fn resolve(&self, reference: &str) -> Option<Digest> {
        self.tags.get(reference).cloned()
    }

    /// A listed manifest, with its media type, from memory.
    pub fn manifest(&self, digest: &Digest) -> Option<Content> {
        let (media_type, bytes) = self.manifests.get(digest)?;
        Some(Content::from_bytes(bytes.clone(), Some(media_type.clone())))
    }
}
