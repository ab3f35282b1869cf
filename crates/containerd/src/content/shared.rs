//! What the parts of the containerd store share: its configuration, the state every part reads
//! ([`Inner`]), whether containerd answers ([`Reach`]), and how a gRPC failure becomes a store
//! error. `connection.rs`, `listing.rs` and `read.rs` import from here and `mod.rs` from them,
//! so imports point one way.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use containerd_api::containerd::services::content::v1::content_client::ContentClient;
use oci::Digest;
use store::{Error, Event, Listing};
use tokio::sync::broadcast;
use tokio_util::task::TaskTracker;
use tonic::metadata::AsciiMetadataValue;
use tonic::transport::Channel;

/// Where containerd is and how often to reconcile.
#[derive(Debug, Clone)]
pub struct Config {
    /// containerd's gRPC socket (`--containerd-sock`).
    pub socket: PathBuf,
    /// The namespace whose images are served (`--containerd-namespace`, `k8s.io` for the CRI).
    pub namespace: String,
    /// containerd's content directory (`--containerd-content-path`).
    pub content_path: PathBuf,
    /// How often everything is listed again even without events (`--store-reconcile-interval`).
    pub reconcile_interval: Duration,
    /// How long a download served to peers while under way may go without growing before the
    /// stream to the peer ends (`--in-flight-stall-timeout`).
    pub in_flight_stall_timeout: Duration,
}

/// Whether containerd answers, as the store last found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Reach {
    /// The first connection and listing are under way.
    Connecting,
    /// containerd answered and the snapshot is current.
    Listed,
    /// containerd does not answer; why.
    Down(String),
}

pub(super) struct Inner {
    pub(super) config: Config,
    /// `config.namespace` as the gRPC metadata value each request carries.
    pub(super) namespace: AsciiMetadataValue,
    pub(super) channel: Channel,
    pub(super) snapshot: RwLock<Arc<Listing>>,
    pub(super) events: broadcast::Sender<Event>,
    /// Digests outside the snapshot: their media type when a manifest, `None` when not.
    pub(super) kinds: Mutex<HashMap<Digest, Option<String>>>,
    /// Where the store's tasks run (the connection and each watch), so shutdown waits for them.
    pub(super) tasks: TaskTracker,
}

impl Inner {
    pub(super) fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.config
            .content_path
            .join("blobs")
            .join(digest.blob_path())
    }

    pub(super) fn content(&self) -> ContentClient<Channel> {
        ContentClient::new(self.channel.clone())
    }
}

pub(super) fn grpc_error(socket: &Path, status: tonic::Status) -> Error {
    Error::Io {
        path: socket.to_owned(),
        source: io::Error::other(format!("containerd: {}", status.message())),
    }
}
