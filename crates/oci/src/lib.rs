//! The OCI model Speil parses everything from the network into, with explicit limits, before any
//! of it touches a store or a peer.
//!
//! Nothing here does I/O. The types are the only way untrusted text becomes something the rest of
//! Speil acts on: a [`Digest`] is the only way a file name is formed from a request, a
//! [`DistributionPath`] is the only way a URL path becomes a repository and a reference, and a
//! [`ByteRange`] is the only way a `Range` header becomes offsets.

mod basic_auth;
mod digest;
mod error;
pub mod manifest;
pub mod media_type;
mod name;
mod path;
mod range;
mod reference;

pub use basic_auth::{BasicAuth, BasicAuthError};
pub use digest::{Algorithm, Digest, DigestError, Hasher};
pub use error::{ErrorBody, ErrorCode, ErrorInfo};
pub use name::{NameError, Registry, Repository, Tag};
pub use path::{DistributionPath, Kind, PathError, Reference};
pub use range::{ByteRange, RangeParse, Unsatisfiable};
pub use reference::{ImageReference, ReferenceError};
