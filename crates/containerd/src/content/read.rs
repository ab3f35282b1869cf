//! Opening one piece of content for serving: the file in containerd's content directory, on
//! the blocking pool, else (the directory is not readable from here) Content.Info now and
//! Content.Read when streamed; and finding out whether small content outside the snapshot is a
//! manifest.

use std::io;
use std::path::PathBuf;

use bytes::Bytes;
use containerd_api::containerd::services::content::v1::content_client::ContentClient;
use containerd_api::containerd::services::content::v1::{InfoRequest, ReadContentRequest};
use containerd_api::namespaced;
use futures::StreamExt as _;
use oci::Digest;
use oci::manifest::Manifest;
use store::{Content, Error, walk};
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

use super::shared::{Inner, grpc_error};

/// Most digests whose kind (manifest or not) is remembered outside the snapshot.
const KIND_CACHE_MAX: usize = 4096;

impl Inner {
    /// Opens `digest`: its file on disk, else (the content directory is not readable from here)
    /// over gRPC; `None` when containerd lacks it. The disk is read on the blocking pool.
    pub(super) async fn open_blob(&self, digest: &Digest) -> Result<Option<Content>, Error> {
        let path = self.blob_path(digest);
        let blobs = self.config.content_path.join("blobs");
        let on_disk = tokio::task::spawn_blocking({
            let path = path.clone();
            move || match store::open_file(path) {
                Ok(Some(content)) => Some(Some(content)),
                // Missing, and the directory is readable: containerd does not have it.
                Ok(None) if std::fs::read_dir(blobs).is_ok() => Some(None),
                _ => None,
            }
        })
        .await
        .map_err(|e| Error::Io {
            path,
            source: io::Error::other(e),
        })?;
        match on_disk {
            Some(found) => Ok(found),
            None => self.open_grpc(digest).await,
        }
    }

    /// Opens `digest` over gRPC: its size from Content.Info now, its bytes by Content.Read when
    /// streamed.
    async fn open_grpc(&self, digest: &Digest) -> Result<Option<Content>, Error> {
        let request = namespaced(
            InfoRequest {
                digest: digest.to_string(),
            },
            &self.namespace,
        );
        let info = match self.content().info(request).await {
            Ok(r) => r.into_inner().info,
            Err(s) if s.code() == tonic::Code::NotFound => None,
            Err(s) => return Err(grpc_error(&self.config.socket, s)),
        };
        let Some(info) = info else { return Ok(None) };
        let reader = GrpcReader {
            client: self.content(),
            namespace: self.namespace.clone(),
            socket: self.config.socket.clone(),
            digest: digest.to_string(),
        };
        Ok(Some(Content::deferred(
            u64::try_from(info.size).unwrap_or(0),
            Box::new(move |offset, len| Box::pin(reader.read(offset, len))),
        )))
    }

    /// Reads small content asked for as a manifest and finds out whether it is one, once: the
    /// answer is remembered for digests outside the snapshot.
    pub(super) async fn classify(
        &self,
        digest: &Digest,
        content: Content,
    ) -> Result<Content, Error> {
        let mut bytes = Vec::new();
        if let Some(mut stream) = content.stream(None).await? {
            while let Some(chunk) = stream.next().await {
                bytes.extend_from_slice(&chunk.map_err(|source| Error::Io {
                    path: self.blob_path(digest),
                    source,
                })?);
            }
        }
        let kind = walk::matches(digest, &bytes)
            .then(|| Manifest::parse(&bytes).ok().map(|m| m.media_type))
            .flatten();
        let mut kinds = self.kinds.lock().expect("kind cache poisoned");
        if kinds.len() >= KIND_CACHE_MAX {
            kinds.clear();
        }
        kinds.insert(digest.clone(), kind.clone());
        Ok(Content::from_bytes(Bytes::from(bytes), kind))
    }
}

/// Reads content over gRPC (Content.Read) once its size is known.
struct GrpcReader {
    client: ContentClient<Channel>,
    namespace: AsciiMetadataValue,
    socket: PathBuf,
    digest: String,
}

impl GrpcReader {
    /// `len` bytes from `offset`; `None` when containerd no longer has the content.
    async fn read(mut self, offset: u64, len: u64) -> Result<Option<store::ByteStream>, Error> {
        let request = namespaced(
            ReadContentRequest {
                digest: self.digest,
                offset: i64::try_from(offset).unwrap_or(i64::MAX),
                size: i64::try_from(len).unwrap_or(i64::MAX),
            },
            &self.namespace,
        );
        match self.client.read(request).await {
            Ok(r) => {
                let stream = r.into_inner().map(|m| {
                    m.map(|m| Bytes::from(m.data))
                        .map_err(|s| io::Error::other(s.to_string()))
                });
                Ok(Some(Box::pin(stream)))
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(None),
            Err(s) => Err(grpc_error(&self.socket, s)),
        }
    }
}
