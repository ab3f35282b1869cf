//! Listing what containerd's namespace holds: its images over gRPC, then each image's
//! manifests and the content present, read on the blocking pool from disk (or over gRPC when the
//! content directory is not readable from here).

use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use bytes::Bytes;
use containerd_api::containerd::services::content::v1::content_client::ContentClient;
use containerd_api::containerd::services::content::v1::{InfoRequest, ReadContentRequest};
use containerd_api::containerd::services::images::v1::images_client::ImagesClient;
use containerd_api::containerd::services::images::v1::{Image, ListImagesRequest};
use containerd_api::namespaced;
use futures::StreamExt as _;
use oci::manifest::{Descriptor, MAX_MANIFEST_SIZE};
use oci::{Digest, ImageReference};
use store::walk::{self, ManifestCache};
use store::{Error, Listing};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use super::shared::{Inner, grpc_error};

impl Inner {
    /// Everything the namespace holds now.
    pub(super) async fn list(&self, previous: &Listing) -> Result<Listing, Error> {
        let request = namespaced(
            ListImagesRequest {
                filters: Vec::new(),
            },
            &self.namespace,
        );
        let images = ImagesClient::new(self.channel.clone())
            .list(request)
            .await
            .map_err(|s| grpc_error(&self.config.socket, s))?
            .into_inner()
            .images;
        let mut source = Source {
            root: self.config.content_path.clone(),
            disk: false,
            grpc: (
                tokio::runtime::Handle::current(),
                self.content(),
                self.namespace.clone(),
            ),
        };
        let manifests = previous.manifests.clone();
        tokio::task::spawn_blocking(move || {
            source.disk = std::fs::read_dir(source.root.join("blobs")).is_ok();
            walk_images(images, &mut source, manifests)
        })
        .await
        .map_err(|e| Error::Io {
            path: self.config.socket.clone(),
            source: io::Error::other(e),
        })
    }

    /// Lists and publishes what changed.
    pub(super) async fn refresh(&self) -> Result<(), Error> {
        let started = Instant::now();
        let current = self
            .snapshot
            .read()
            .expect("snapshot lock poisoned")
            .clone();
        let next = self.list(&current).await?;
        tracing::debug!(
            images = next.images.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "listed containerd's images"
        );
        store::events::publish(&self.snapshot, next, &self.events);
        Ok(())
    }
}

/// The listing of containerd's `images`: each named image with the content of it present,
/// reusing the manifests already read. Blocking.
fn walk_images(images: Vec<Image>, source: &mut Source, mut manifests: ManifestCache) -> Listing {
    let mut listing = Listing::default();
    for image in images {
        // The CRI names each image a second time by its config digest (`sha256:…`); that alias
        // holds nothing the named image does not.
        if image.name.parse::<Digest>().is_ok() {
            continue;
        }
        let Some(target) = image.target else { continue };
        let Ok(digest) = target.digest.parse::<Digest>() else {
            continue;
        };
        let top = Descriptor {
            media_type: target.media_type,
            digest,
            size: u64::try_from(target.size).unwrap_or(0),
            annotations: None,
        };
        let contents = walk::contents(&top, source, &mut manifests);
        if contents.is_empty() {
            continue;
        }
        let name = image
            .name
            .parse::<ImageReference>()
            .ok()
            .filter(|r| r.tag.is_some());
        listing.push(name, top.digest, contents);
    }
    // Keep only the manifests of images still held.
    let held: HashSet<&Digest> = listing
        .images
        .iter()
        .flat_map(|i| i.contents.iter())
        .collect();
    manifests.retain(|d, _| held.contains(d));
    listing.manifests = manifests;
    listing
}

/// Reading content for a listing, from a blocking thread: disk when readable, else gRPC.
struct Source {
    root: PathBuf,
    disk: bool,
    grpc: (
        tokio::runtime::Handle,
        ContentClient<Channel>,
        AsciiMetadataValue,
    ),
}

impl walk::Source for Source {
    fn manifest(&mut self, digest: &Digest) -> Option<Bytes> {
        let bytes = if self.disk {
            let path = self.root.join("blobs").join(digest.blob_path());
            let meta = std::fs::metadata(&path).ok()?;
            if meta.len() > MAX_MANIFEST_SIZE {
                return None;
            }
            Bytes::from(std::fs::read(&path).ok()?)
        } else {
            let (handle, client, ns) = &mut self.grpc;
            let request = namespaced(
                ReadContentRequest {
                    digest: digest.to_string(),
                    offset: 0,
                    size: 0,
                },
                ns,
            );
            handle.block_on(async {
                let mut stream = client.read(request).await.ok()?.into_inner();
                let mut out = Vec::new();
                while let Some(m) = stream.next().await {
                    out.extend_from_slice(&m.ok()?.data);
                    if out.len() as u64 > MAX_MANIFEST_SIZE {
                        return None;
                    }
                }
                Some(Bytes::from(out))
            })?
        };
        walk::matches(digest, &bytes).then_some(bytes)
    }

    fn exists(&mut self, digest: &Digest) -> bool {
        if self.disk {
            return self.root.join("blobs").join(digest.blob_path()).is_file();
        }
        let (handle, client, ns) = &mut self.grpc;
        let request = namespaced(
            InfoRequest {
                digest: digest.to_string(),
            },
            ns,
        );
        handle.block_on(client.info(request)).is_ok()
    }
}
