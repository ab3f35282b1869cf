//! Content digests: `algorithm:hex`, validated before anything is named after them.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sha2::Digest as _;

/// A hash algorithm the distribution spec registers and Speil accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    /// `sha256`: 64 lowercase hex characters.
    Sha256,
    /// `sha512`: 128 lowercase hex characters.
    Sha512,
}

impl Algorithm {
    /// The name used in digest strings and in `blobs/<alg>/` directories.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a string is not a digest Speil accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    /// No `:` between algorithm and hex.
    #[error("digest has no ':' separating algorithm and hex")]
    MissingSeparator,
    /// The algorithm is not sha256 or sha512.
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    /// The encoded part has the wrong length for the algorithm.
    #[error("{algorithm} digest must have {expected} hex characters, got {actual}")]
    WrongLength {
        /// The algorithm named in the digest.
        algorithm: &'static str,
        /// The length the algorithm requires.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// The encoded part holds something other than lowercase hex.
    #[error("digest hex must be lowercase [0-9a-f]")]
    NotHex,
}

/// A validated content digest such as `sha256:e3b0…`.
///
/// The hex part is exactly as long as the algorithm requires and holds only `[0-9a-f]`, so
/// [`Digest::blob_path`] can never name anything outside a `blobs/` directory.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: Box<str>,
}

impl Digest {
    /// The longest digest string accepted (`sha512:` and 128 hex characters).
    pub const MAX_LEN: usize = 7 + 128;

    /// The digest's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The lowercase hex part.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The path of this blob relative to a `blobs/` directory: `sha256/<hex>`.
    ///
    /// This is the only way a request becomes a file name in Speil.
    pub fn blob_path(&self) -> PathBuf {
        PathBuf::from(self.algorithm.as_str()).join(&*self.hex)
    }

    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(bytes);
        hasher.finish()
    }

    /// A hasher for this digest's algorithm, to verify content against it.
    pub fn hasher(&self) -> Hasher {
        Hasher::new(self.algorithm)
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (alg, hex) = s.split_once(':').ok_or(DigestError::MissingSeparator)?;
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha512" => Algorithm::Sha512,
            other => {
                let shown: String = other.chars().take(32).collect();
                return Err(DigestError::UnsupportedAlgorithm(shown));
            }
        };
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError::WrongLength {
                algorithm: algorithm.as_str(),
                expected: algorithm.hex_len(),
                actual: hex.len(),
            });
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(DigestError::NotHex);
        }
        Ok(Digest {
            algorithm,
            hex: hex.into(),
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.as_str(), self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Incremental hashing of content, to compute or verify a [`Digest`] while bytes stream past.
#[derive(Clone)]
pub struct Hasher(HasherInner);

#[derive(Clone)]
enum HasherInner {
    Sha256(sha2::Sha256),
    Sha512(sha2::Sha512),
}

impl Hasher {
    /// A hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha256 => Hasher(HasherInner::Sha256(sha2::Sha256::new())),
            Algorithm::Sha512 => Hasher(HasherInner::Sha512(sha2::Sha512::new())),
        }
    }

    /// Feeds `bytes` to the hash.
    pub fn update(&mut self, bytes: &[u8]) {
        match &mut self.0 {
            HasherInner::Sha256(h) => h.update(bytes),
            HasherInner::Sha512(h) => h.update(bytes),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        let (algorithm, hex) = match self.0 {
            HasherInner::Sha256(h) => (Algorithm::Sha256, hex::encode(h.finalize())),
            HasherInner::Sha512(h) => (Algorithm::Sha512, hex::encode(h.finalize())),
        };
        Digest {
            algorithm,
            hex: hex.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays_sha256() {
        let d: Digest = EMPTY.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha256);
        assert_eq!(d.to_string(), EMPTY);
        assert_eq!(Digest::sha256_of(b""), d);
    }

    #[test]
    fn parses_sha512() {
        let s = format!("sha512:{}", "ab".repeat(64));
        let d: Digest = s.parse().unwrap();
        assert_eq!(d.algorithm(), Algorithm::Sha512);
        assert_eq!(d.blob_path(), PathBuf::from("sha512").join("ab".repeat(64)));
    }

    #[test]
    fn rejects_hostile_and_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            "sha256:../../etc/passwd",
            "sha256:../../../../../../../../../../../../../../../../../../../../../../etc/passwd",
            "md5:d41d8cd98f00b204e9800998ecf8427e",
            "SHA256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8555",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8/5",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b8%2",
            "sha512:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} parsed");
        }
        let huge = format!("sha256:{}", "a".repeat(10_000));
        assert!(matches!(
            huge.parse::<Digest>(),
            Err(DigestError::WrongLength { .. })
        ));
    }

    #[test]
    fn hasher_matches_known_sha512() {
        let mut h = Hasher::new(Algorithm::Sha512);
        h.update(b"abc");
        assert!(h.finish().hex().starts_with("ddaf35a193617aba"));
    }
}
