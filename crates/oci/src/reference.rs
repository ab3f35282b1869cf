//! Full image references, `registry/repository:tag[@digest]`, as image stores name images.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};
use crate::name::{NameError, Registry, Repository, Tag};

/// Why a string is not a full image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    /// No registry host before the first `/` (for example a bare tag such as `1.0`).
    #[error("reference has no registry host")]
    NoRegistry,
    /// Neither a tag nor a digest.
    #[error("reference has neither a tag nor a digest")]
    NoTagOrDigest,
    /// A part is malformed.
    #[error("invalid reference: {0}")]
    Name(#[from] NameError),
    /// The digest is malformed.
    #[error("invalid reference digest: {0}")]
    Digest(#[from] DigestError),
}

/// A full reference naming its registry: `example.com/team/app:1.0`,
/// `docker.io/library/nginx:latest@sha256:…`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageReference {
    /// The registry host.
    pub registry: Registry,
    /// The repository in that registry.
    pub repository: Repository,
    /// The tag, when the reference has one.
    pub tag: Option<Tag>,
    /// The digest, when the reference pins one.
    pub digest: Option<Digest>,
}

impl ImageReference {
    /// `registry/repository:tag`, the key under which a tag is resolved and advertised; `None`
    /// for a reference without a tag.
    pub fn tag_key(&self) -> Option<String> {
        self.tag
            .as_ref()
            .map(|t| format!("{}/{}:{}", self.registry, self.repository, t))
    }
}

impl FromStr for ImageReference {
    type Err = ReferenceError;

    /// Parses a reference that names its registry explicitly; a name without a host (which
    /// clients would expand to Docker Hub) is rejected, because a store annotation in that form
    /// does not say which registry it came from.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d.parse::<Digest>()?)),
            None => (s, None),
        };
        let (host, rest) = name.split_once('/').ok_or(ReferenceError::NoRegistry)?;
        if !Registry::looks_like_host(host) {
            return Err(ReferenceError::NoRegistry);
        }
        let registry: Registry = host.parse()?;
        let (repository, tag) = match rest.rsplit_once(':') {
            Some((r, t)) => (r, Some(t.parse::<Tag>()?)),
            None => (rest, None),
        };
        if tag.is_none() && digest.is_none() {
            return Err(ReferenceError::NoTagOrDigest);
        }
        let mut repository: Repository = repository.parse()?;
        if registry == Registry::docker_hub() {
            repository = repository.for_docker_hub();
        }
        Ok(ImageReference {
            registry,
            repository,
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageReference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_full_references() {
        let r: ImageReference = "example.com/team/app:1.0".parse().unwrap();
        assert_eq!(r.tag_key().unwrap(), "example.com/team/app:1.0");
        let r: ImageReference = format!("localhost:5000/app:v1@{D}").parse().unwrap();
        assert_eq!(r.registry.as_str(), "localhost:5000");
        assert_eq!(r.to_string(), format!("localhost:5000/app:v1@{D}"));
        let r: ImageReference = format!("docker.io/nginx@{D}").parse().unwrap();
        assert_eq!(r.repository.as_str(), "library/nginx");
        assert!(r.tag_key().is_none());
    }

    #[test]
    fn rejects_partial_references() {
        for bad in [
            "1.0",
            "team/app:1.0",
            "app:1.0",
            "example.com/app",
            "example.com/:1",
            "x.y/A:1",
        ] {
            assert!(bad.parse::<ImageReference>().is_err(), "{bad} accepted");
        }
    }
}
