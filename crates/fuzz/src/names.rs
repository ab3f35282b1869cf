//! Targets for the names a request or a store carries: digests, image references (with their
//! registry, repository and tag), and `/v2/` distribution paths with containerd's `?ns=`.

use std::path::Component;

use oci::{Algorithm, Digest, DistributionPath, ImageReference, Kind, Reference, Registry};
use oci::{Repository, Tag};

use crate::text;

/// `Digest::from_str`: what parses is exactly `sha256:` and 64, or `sha512:` and 128, lowercase
/// hex characters; it prints back to the input, survives JSON, and its blob path is two plain
/// components inside a `blobs/` directory.
pub(crate) fn digest(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let parsed = s.parse::<Digest>();
    assert_eq!(parsed.is_ok(), well_formed_digest(s), "{s:?}: {parsed:?}");
    let Ok(d) = parsed else { return };
    let hex_len = match d.algorithm() {
        Algorithm::Sha256 => 64,
        Algorithm::Sha512 => 128,
    };
    assert_eq!(d.hex().len(), hex_len);
    assert!(s.len() <= Digest::MAX_LEN);
    assert_eq!(d.to_string(), s);
    let json = serde_json::to_string(&d).unwrap();
    assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
    let path = d.blob_path();
    let parts: Vec<_> = path.components().collect();
    assert_eq!(parts.len(), 2, "{path:?}");
    assert!(parts.iter().all(|c| matches!(c, Component::Normal(_))));
    // The hasher of a parsed digest makes digests of the same algorithm.
    let mut hasher = d.hasher();
    hasher.update(data);
    assert_eq!(hasher.finish().algorithm(), d.algorithm());
}

/// The digest grammar Speil accepts, written out independently of the parser.
fn well_formed_digest(s: &str) -> bool {
    let hex_ok =
        |h: &str, n| h.len() == n && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    match s.split_once(':') {
        Some(("sha256", h)) => hex_ok(h, 64),
        Some(("sha512", h)) => hex_ok(h, 128),
        _ => false,
    }
}

/// `ImageReference::from_str` and the registry, repository and tag grammars: a parsed value
/// prints to text that parses to the same value, stays within its length limit and holds no
/// path traversal or percent-encoding.
pub(crate) fn reference(data: &[u8]) {
    let Some(s) = text(data) else { return };
    if let Ok(r) = s.parse::<ImageReference>() {
        let shown = r.to_string();
        let again: ImageReference = shown.parse().unwrap_or_else(|e| panic!("{shown:?}: {e}"));
        assert_eq!(again, r);
        assert_eq!(again.to_string(), shown);
        assert!(r.tag.is_some() || r.digest.is_some());
        if let Some(key) = r.tag_key() {
            let keyed: ImageReference = key.parse().unwrap();
            assert_eq!(
                (&keyed.registry, &keyed.repository),
                (&r.registry, &r.repository)
            );
            assert_eq!((keyed.tag, keyed.digest), (r.tag.clone(), None));
        }
    }
    if let Ok(registry) = s.parse::<Registry>() {
        assert_eq!(registry.as_str(), s.to_ascii_lowercase());
        assert!(s.len() <= Registry::MAX_LEN);
        assert!(!s.contains(['/', '@', '%', ' ']), "{s:?}");
        assert_eq!(registry.as_str().parse::<Registry>().unwrap(), registry);
    }
    if let Ok(repository) = s.parse::<Repository>() {
        assert_eq!(repository.as_str(), s);
        assert!(s.len() <= Repository::MAX_LEN);
        assert!(safe_repository(s), "{s:?}");
        let hub = repository.clone().for_docker_hub();
        assert_eq!(hub.as_str().parse::<Repository>().unwrap(), hub);
    }
    if let Ok(tag) = s.parse::<Tag>() {
        assert_eq!(tag.as_str(), s);
        assert!(s.len() <= Tag::MAX_LEN);
        assert!(!s.contains(['/', ':', '@', '%']) && !s.starts_with(['.', '-']));
    }
}

/// A repository name is lowercase alphanumerics and separators, never an empty, `.` or `..`
/// path component, never percent-encoded.
fn safe_repository(s: &str) -> bool {
    s.bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-' | b'/'))
        && s.split('/').all(|c| !matches!(c, "" | "." | ".."))
}

/// `DistributionPath::parse`: the input is a request target, `path?query`. What parses names a
/// safe repository; a blob is always named by digest; the canonical form of the request
/// (`/v2/<repository>/<kind>/<reference>?ns=<registry>`) parses to the same value; and the full
/// reference of a registry that looks like a host parses as an image reference naming the same
/// content.
pub(crate) fn distribution_path(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let (path, query) = match s.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (s, None),
    };
    let Ok(p) = DistributionPath::parse(path, query) else {
        return;
    };
    assert!(safe_repository(p.repository.as_str()), "{p:?}");
    assert!(p.kind == Kind::Manifest || matches!(p.reference, Reference::Digest(_)));
    let canonical = format!("/v2/{}/{}/{}", p.repository, p.kind.as_str(), p.reference);
    let ns = format!("ns={}", p.registry);
    let again = DistributionPath::parse(&canonical, Some(&ns))
        .unwrap_or_else(|e| panic!("{canonical}?{ns}: {e}"));
    assert_eq!(again, p);
    if Registry::looks_like_host(p.registry.as_str()) {
        let full = p.full_reference();
        let r: ImageReference = full.parse().unwrap_or_else(|e| panic!("{full:?}: {e}"));
        assert_eq!((&r.registry, &r.repository), (&p.registry, &p.repository));
        match &p.reference {
            Reference::Tag(t) => assert_eq!((r.tag.as_ref(), r.digest), (Some(t), None)),
            Reference::Digest(d) => assert_eq!((r.tag, r.digest.as_ref()), (None, Some(d))),
        }
    }
}
