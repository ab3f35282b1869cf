//! Which references this node serves from peers and advertises: `--mirrored-registries` limits
//! the registries, `--registry-filters` (regular expressions over the full reference) excludes
//! references such as mutable tags (`:latest$`).

use oci::{ImageReference, Registry};
use regex::RegexSet;

/// The filters, built once from the flags.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    registries: Vec<Registry>,
    excluded: Option<RegexSet>,
}

/// A filter pattern that is not a valid regular expression.
#[derive(Debug, thiserror::Error)]
#[error("invalid --registry-filters pattern: {0}")]
pub struct FilterError(#[from] regex::Error);

impl Filters {
    /// Filters for `registries` (empty: every registry) excluding references that match any of
    /// `patterns`.
    pub fn new(registries: Vec<Registry>, patterns: &[String]) -> Result<Filters, FilterError> {
        let excluded = if patterns.is_empty() {
            None
        } else {
            Some(RegexSet::new(patterns)?)
        };
        Ok(Filters {
            registries,
            excluded,
        })
    }

    /// Whether requests for `registry` are served at all.
    pub fn serves(&self, registry: &Registry) -> bool {
        self.registries.is_empty() || self.registries.contains(registry)
    }

    /// Whether the full reference `reference` (`registry/repository:tag` or `…@digest`) is
    /// excluded from mirroring and advertising.
    pub fn excludes(&self, reference: &str) -> bool {
        self.excluded
            .as_ref()
            .is_some_and(|set| set.is_match(reference))
    }

    /// Whether an image named `name` may have its tag advertised.
    pub fn advertises_tag(&self, name: &ImageReference) -> bool {
        self.serves(&name.registry) && !name.tag_key().is_some_and(|k| self.excludes(&k))
    }
}

impl Filters {
    /// Whether any key of `image` may be advertised.
    pub fn advertises_image(&self, image: &store::Image) -> bool {
        // An image without a name has no registry; it is advertised unless registries are
        // limited, when nothing says it belongs to one of them.
        match &image.name {
            Some(name) => self.serves(&name.registry),
            None => self.registries.is_empty(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_and_patterns() {
        let f = Filters::new(vec!["docker.io".parse().unwrap()], &[":latest$".into()]).unwrap();
        assert!(f.serves(&"docker.io".parse().unwrap()));
        assert!(!f.serves(&"ghcr.io".parse().unwrap()));
        assert!(f.excludes("docker.io/library/nginx:latest"));
        assert!(!f.excludes("docker.io/library/nginx:1.27"));
        let latest: ImageReference = "docker.io/library/nginx:latest".parse().unwrap();
        assert!(!f.advertises_tag(&latest));
        let pinned: ImageReference = "docker.io/library/nginx:1.27".parse().unwrap();
        assert!(f.advertises_tag(&pinned));
        assert!(Filters::new(vec![], &["(".into()]).is_err());
        assert!(Filters::default().serves(&"any.where".parse().unwrap()));
    }
}
