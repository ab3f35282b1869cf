//! Rust clients for the gRPC APIs Speil speaks: containerd's content, images, events, version
//! and introspection services, and the Kubernetes CRI (`runtime.v1`) image and runtime services
//! that the tests call as kubelet does.
//!
//! The code under `src/gen` is generated from the `.proto` files vendored in `proto/` and
//! committed, so building needs nothing but Rust (no `protoc`, no build script). Regenerate it
//! with `cargo xtask codegen` after changing a `.proto` file; a test (`cargo xtask codegen
//! --check`, run by `crates/xtask/tests/codegen.rs`) fails while the two disagree. Where the
//! `.proto` files come from is in `proto/README.md`.
//!
//! The modules follow the protobuf packages (`containerd.services.content.v1` is
//! [`containerd::services::content::v1`]), because the generated code names types of other
//! packages by relative paths. Only clients are generated.

use tonic::metadata::AsciiMetadataValue;

/// The gRPC metadata key that names the containerd namespace a request is about.
pub const NAMESPACE_KEY: &str = "containerd-namespace";

/// `message` as a request in containerd namespace `namespace` (such as `k8s.io`, the CRI's).
/// The namespace is a parsed metadata value so that a bad name is found once, where it is
/// configured, not on every request.
pub fn namespaced<T>(message: T, namespace: &AsciiMetadataValue) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert(NAMESPACE_KEY, namespace.clone());
    request
}

/// containerd's API (`containerd.*` packages).
pub mod containerd {
    /// Types shared by containerd's services (`containerd.types`): descriptors, event
    /// envelopes, platforms.
    #[allow(missing_docs, clippy::all)]
    pub mod types {
        include!("gen/containerd.types.rs");
    }

    /// containerd's gRPC services (`containerd.services.*`).
    pub mod services {
        /// The content store: info, reads, listing (`containerd.services.content.v1`).
        pub mod content {
            #[allow(missing_docs, clippy::all, rustdoc::all)]
            pub mod v1 {
                include!("gen/containerd.services.content.v1.rs");
            }
        }
        /// Events: subscribe to image and content changes (`containerd.services.events.v1`).
        pub mod events {
            #[allow(missing_docs, clippy::all, rustdoc::all)]
            pub mod v1 {
                include!("gen/containerd.services.events.v1.rs");
            }
        }
        /// Images: names and their target descriptors (`containerd.services.images.v1`).
        pub mod images {
            #[allow(missing_docs, clippy::all, rustdoc::all)]
            pub mod v1 {
                include!("gen/containerd.services.images.v1.rs");
            }
        }
        /// Introspection: plugins and server info (`containerd.services.introspection.v1`).
        pub mod introspection {
            #[allow(missing_docs, clippy::all, rustdoc::all)]
            pub mod v1 {
                include!("gen/containerd.services.introspection.v1.rs");
            }
        }
        /// containerd's version (`containerd.services.version.v1`).
        pub mod version {
            #[allow(missing_docs, clippy::all, rustdoc::all)]
            pub mod v1 {
                include!("gen/containerd.services.version.v1.rs");
            }
        }
    }
}

/// Google's RPC types that containerd's introspection service returns (`google.rpc`).
pub mod google {
    #[allow(missing_docs, clippy::all, rustdoc::all)]
    pub mod rpc {
        include!("gen/google.rpc.rs");
    }
}

/// The Kubernetes Container Runtime Interface (package `runtime.v1`), which containerd serves
/// on its own socket: `ImageService` (such as `PullImage`, the call kubelet makes) and
/// `RuntimeService`.
pub mod cri {
    #[allow(missing_docs, clippy::all, rustdoc::all)]
    pub mod v1 {
        include!("gen/runtime.v1.rs");
    }
}
