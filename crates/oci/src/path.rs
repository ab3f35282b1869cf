//! `/v2/<name>/(manifests|blobs)/<reference>` paths and containerd's `?ns=<registry>` parameter.

use std::fmt;

use crate::digest::{Digest, DigestError};
use crate::name::{NameError, Registry, Repository, Tag};

/// The longest request path considered at all; anything longer is rejected before splitting.
const MAX_PATH_LEN: usize = 4096;

/// Whether a path asks for a manifest or a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `/manifests/<tag or digest>`.
    Manifest,
    /// `/blobs/<digest>`.
    Blob,
}

impl Kind {
    /// The path segment naming this kind, also used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Manifest => "manifests",
            Kind::Blob => "blobs",
        }
    }
}

/// What a path refers to within a repository.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A tag; only manifests are addressed by tag.
    Tag(Tag),
    /// A content digest.
    Digest(Digest),
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// Why a path is not a distribution API path Speil serves.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Not of the form `/v2/<name>/(manifests|blobs)/<reference>`.
    #[error("not a distribution API path")]
    NotFound,
    /// The repository name or registry is malformed.
    #[error("invalid name: {0}")]
    Name(#[from] NameError),
    /// The tag is malformed.
    #[error("invalid tag: {0}")]
    Tag(NameError),
    /// The digest is malformed.
    #[error("invalid digest: {0}")]
    Digest(#[from] DigestError),
    /// The path exceeds the length limit.
    #[error("path is longer than {MAX_PATH_LEN} bytes")]
    TooLong,
}

/// A parsed request for a manifest or a blob of one repository in one registry.
///
/// The registry comes from containerd's `ns` query parameter when present; otherwise from the
/// first path component when it looks like a host (has a `.` or `:`, or is `localhost`);
/// otherwise it is Docker Hub. So `skopeo copy docker://127.0.0.1:5000/example.com/team/app:1.0`
/// and containerd's `/v2/team/app/manifests/1.0?ns=example.com` name the same image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DistributionPath {
    /// The registry the content belongs to.
    pub registry: Registry,
    /// The repository within that registry.
    pub repository: Repository,
    /// Manifest or blob.
    pub kind: Kind,
    /// Tag or digest.
    pub reference: Reference,
}

impl DistributionPath {
    /// Parses a request path (as sent, still percent-encoded) and its query string.
    ///
    /// Percent-encoded bytes never form part of a valid name or reference, so the path is not
    /// decoded: `%2F` is rejected rather than turned into a separator.
    pub fn parse(path: &str, query: Option<&str>) -> Result<Self, PathError> {
        if path.len() > MAX_PATH_LEN {
            return Err(PathError::TooLong);
        }
        let rest = path.strip_prefix("/v2/").ok_or(PathError::NotFound)?;
        // The last `/manifests/` or `/blobs/` splits name from reference, so a reference holding
        // a `/` (such as `sha256:../../etc/passwd`) is reported as the bad reference it is.
        let split = |marker: &str, kind| rest.rfind(marker).map(|i| (i, marker.len(), kind));
        let (at, len, kind) = match (
            split("/manifests/", Kind::Manifest),
            split("/blobs/", Kind::Blob),
        ) {
            (Some(m), Some(b)) => {
                if m.0 > b.0 {
                    m
                } else {
                    b
                }
            }
            (m, b) => m.or(b).ok_or(PathError::NotFound)?,
        };
        let (name, reference) = (&rest[..at], &rest[at + len..]);
        let reference = match kind {
            Kind::Blob => Reference::Digest(reference.parse()?),
            Kind::Manifest if reference.contains(':') => Reference::Digest(reference.parse()?),
            Kind::Manifest => Reference::Tag(reference.parse().map_err(PathError::Tag)?),
        };

        let ns = query.and_then(|q| query_param(q, "ns"));
        let (registry, repository) = match ns {
            Some(ns) => (ns.parse::<Registry>()?, name),
            None => match name.split_once('/') {
                Some((first, rest)) if Registry::looks_like_host(first) => {
                    (first.parse::<Registry>()?, rest)
                }
                _ => (Registry::docker_hub(), name),
            },
        };
        let mut repository: Repository = repository.parse()?;
        if registry == Registry::docker_hub() {
            repository = repository.for_docker_hub();
        }
        Ok(DistributionPath {
            registry,
            repository,
            kind,
            reference,
        })
    }

    /// The full reference this path names: `registry/repository:tag` or `…@digest`.
    pub fn full_reference(&self) -> String {
        match &self.reference {
            Reference::Tag(t) => format!("{}/{}:{}", self.registry, self.repository, t),
            Reference::Digest(d) => format!("{}/{}@{}", self.registry, self.repository, d),
        }
    }
}

/// The value of `key` in a query string, percent-decoded; left as sent when it does not decode,
/// so that the grammar check that follows rejects it.
fn query_param(query: &str, key: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (k == key).then(|| percent_decode(v).unwrap_or_else(|| v.to_owned()))
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parse(path: &str, q: Option<&str>) -> Result<DistributionPath, PathError> {
        DistributionPath::parse(path, q)
    }

    #[test]
    fn skopeo_and_containerd_forms_name_the_same_image() {
        let a = parse("/v2/example.com/team/app/manifests/1.0", None).unwrap();
        let b = parse("/v2/team/app/manifests/1.0", Some("ns=example.com")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.full_reference(), "example.com/team/app:1.0");
    }

    #[test]
    fn registry_defaults_to_docker_hub_with_library_prefix() {
        let p = parse("/v2/nginx/manifests/latest", None).unwrap();
        assert_eq!(p.full_reference(), "docker.io/library/nginx:latest");
        let p = parse("/v2/library/nginx/manifests/latest", Some("ns=docker.io")).unwrap();
        assert_eq!(p.full_reference(), "docker.io/library/nginx:latest");
        let p = parse("/v2/localhost/app/blobs/".to_owned().as_str(), None);
        assert!(p.is_err());
        let p = parse(&format!("/v2/localhost/app/blobs/{D}"), None).unwrap();
        assert_eq!(p.registry.as_str(), "localhost");
    }

    #[test]
    fn ns_is_percent_decoded_and_other_params_ignored() {
        let p = parse("/v2/app/manifests/1", Some("x=1&ns=localhost%3A5000&y")).unwrap();
        assert_eq!(p.full_reference(), "localhost:5000/app:1");
    }

    #[test]
    fn kinds_and_references() {
        let p = parse(&format!("/v2/a/manifests/manifests/blobs/{D}"), None).unwrap();
        assert_eq!(p.kind, Kind::Blob);
        assert_eq!(p.repository.as_str(), "a/manifests/manifests");
        let p = parse(&format!("/v2/a/b/manifests/{D}"), None).unwrap();
        assert!(matches!(p.reference, Reference::Digest(_)));
    }

    #[test]
    fn hostile_paths_are_rejected() {
        let long_name = "a".repeat(10 * 1024);
        let cases: Vec<String> = vec![
            "/v2/".into(),
            "/v2/a".into(),
            "/v2/a/manifests".into(),
            "/v2/a/tags/list".into(),
            "/v2/a/manifests/".into(),
            "/v2/a/blobs/latest".into(),
            "/v2/a/blobs/sha256:../../etc/passwd".into(),
            "/v2/a/manifests/sha256:../../etc/passwd".into(),
            "/v2/a/blobs/sha256%3A..%2F..%2Fetc%2Fpasswd".into(),
            "/v2/..%2F..%2Fetc/manifests/1".into(),
            "/v2/../../etc/manifests/1".into(),
            "/v2/a%2Fb/manifests/1".into(),
            "/v2//manifests/1".into(),
            "/v3/a/manifests/1".into(),
            format!("/v2/{long_name}/manifests/1"),
            format!("/v2/a/manifests/{long_name}"),
            format!("/v2/a/blobs/sha256:{long_name}"),
        ];
        for c in &cases {
            assert!(parse(c, None).is_err(), "{c} accepted");
        }
        assert!(parse("/v2/a/manifests/1", Some("ns=..%2F..")).is_err());
        assert!(parse("/v2/a/manifests/1", Some("ns=%zz")).is_err());
        assert!(parse("/v2/a/manifests/1", Some("ns=")).is_err());
    }
}
