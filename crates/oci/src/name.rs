//! Registry hosts, repository names and tags, by the distribution spec's grammar.

use std::fmt;
use std::str::FromStr;

/// Why a registry, repository or tag was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty where a value is required.
    #[error("{0} is empty")]
    Empty(&'static str),
    /// Longer than the limit for its kind.
    #[error("{what} is {len} bytes long, the limit is {max}")]
    TooLong {
        /// What was too long.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Does not match the grammar for its kind.
    #[error("{0} does not match the distribution spec's grammar")]
    Grammar(&'static str),
}

/// A registry host with an optional port: `docker.io`, `localhost:5000`, `[::1]:5000`.
///
/// Hostnames are case-insensitive and kept lowercase.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Registry(Box<str>);

impl Registry {
    /// The longest registry host accepted (a DNS name plus a port).
    pub const MAX_LEN: usize = 253 + 6;

    /// Docker Hub, the registry of names without a host.
    pub fn docker_hub() -> Registry {
        Registry("docker.io".into())
    }

    /// The host as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `component` (the first path component of a name) looks like a registry host: it
    /// has a `.` or a `:`, or is `localhost`. This is how clients split `host/repo` names.
    pub fn looks_like_host(component: &str) -> bool {
        component.contains(['.', ':']) || component == "localhost"
    }
}

impl FromStr for Registry {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "registry";
        if s.is_empty() {
            return Err(NameError::Empty(WHAT));
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what: WHAT,
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (v6, after) = rest.split_once(']').ok_or(NameError::Grammar(WHAT))?;
            if v6.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(NameError::Grammar(WHAT));
            }
            match after {
                "" => ("", None),
                p => (
                    "",
                    Some(p.strip_prefix(':').ok_or(NameError::Grammar(WHAT))?),
                ),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (s, None),
            }
        };
        if let Some(port) = port
            && (port.is_empty() || port.len() > 5 || port.parse::<u16>().is_err())
        {
            return Err(NameError::Grammar(WHAT));
        }
        if !s.starts_with('[') {
            let ok_label = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !l.starts_with('-')
                    && !l.ends_with('-')
            };
            if host.is_empty() || !host.split('.').all(ok_label) {
                return Err(NameError::Grammar(WHAT));
            }
        }
        Ok(Registry(s.to_ascii_lowercase().into()))
    }
}

impl fmt::Display for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A repository name within a registry: `team/app`, `library/nginx`.
///
/// Path components match `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`, joined by `/`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Repository(Box<str>);

impl Repository {
    /// The longest repository name accepted; clients limit host and name together to 255.
    pub const MAX_LEN: usize = 255;

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as Docker Hub knows it: a one-component name gets the `library/` prefix.
    pub fn for_docker_hub(self) -> Repository {
        if self.0.contains('/') {
            self
        } else {
            Repository(format!("library/{}", self.0).into())
        }
    }
}

fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // A separator: `.`, `_`, `__` or a run of `-`, always followed by an alphanumeric.
        let start = i;
        match b[i] {
            b'.' => i += 1,
            b'_' => {
                i += 1;
                if b.get(i) == Some(&b'_') {
                    i += 1;
                }
            }
            b'-' => {
                while b.get(i) == Some(&b'-') {
                    i += 1;
                }
            }
            _ => return false,
        }
        if i == start || !b.get(i).copied().is_some_and(is_alnum) {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

impl FromStr for Repository {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "repository name";
        if s.is_empty() {
            return Err(NameError::Empty(WHAT));
        }
        if s.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what: WHAT,
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        if !s.split('/').all(valid_component) {
            return Err(NameError::Grammar(WHAT));
        }
        Ok(Repository(s.into()))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

/// A tag: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Tag(Box<str>);

impl Tag {
    /// The longest tag the spec allows.
    pub const MAX_LEN: usize = 128;

    /// The tag as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = NameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "tag";
        let b = s.as_bytes();
        if b.is_empty() {
            return Err(NameError::Empty(WHAT));
        }
        if b.len() > Self::MAX_LEN {
            return Err(NameError::TooLong {
                what: WHAT,
                len: b.len(),
                max: Self::MAX_LEN,
            });
        }
        let first_ok = b[0].is_ascii_alphanumeric() || b[0] == b'_';
        let rest_ok = b[1..]
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'));
        if !first_ok || !rest_ok {
            return Err(NameError::Grammar(WHAT));
        }
        Ok(Tag(s.into()))
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_grammar() {
        for ok in [
            "a",
            "team/app",
            "library/nginx",
            "a.b_c__d--e/f-g",
            "0/1/2",
            "x---y",
        ] {
            assert!(ok.parse::<Repository>().is_ok(), "{ok} rejected");
        }
        for bad in [
            "", "/a", "a/", "a//b", "A", "a_", "_a", "a___b", "a..b", "a._b", "a/../b", "..",
            "a%2Fb", "a b", "a:b", "é",
        ] {
            assert!(bad.parse::<Repository>().is_err(), "{bad:?} accepted");
        }
        let long = "a".repeat(10 * 1024);
        assert!(matches!(
            long.parse::<Repository>(),
            Err(NameError::TooLong { .. })
        ));
    }

    #[test]
    fn tag_grammar() {
        for ok in ["1.0", "latest", "_x", "v1.2.3-rc.1_b", &"a".repeat(128)] {
            assert!(ok.parse::<Tag>().is_ok(), "{ok} rejected");
        }
        for bad in ["", ".x", "-x", "a/b", "a:b", "a@b", &"a".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn registry_grammar() {
        for ok in [
            "docker.io",
            "localhost",
            "localhost:5000",
            "127.0.0.1:5000",
            "[::1]:5000",
        ] {
            assert!(ok.parse::<Registry>().is_ok(), "{ok} rejected");
        }
        assert_eq!(
            "Example.COM".parse::<Registry>().unwrap().as_str(),
            "example.com"
        );
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a.com:",
            "a.com:99999",
            "a.com:x",
            "[zz]:1",
            "a/b",
        ] {
            assert!(bad.parse::<Registry>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn docker_hub_names_get_library_prefix() {
        let r: Repository = "nginx".parse().unwrap();
        assert_eq!(r.for_docker_hub().as_str(), "library/nginx");
        let r: Repository = "team/app".parse().unwrap();
        assert_eq!(r.for_docker_hub().as_str(), "team/app");
    }
}
