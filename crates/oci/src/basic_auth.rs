//! Basic authentication (RFC 7617) between containerd and Speil, and between Speil nodes: one
//! `user:password` shared by every node of a cluster (a file from a Kubernetes Secret). The same
//! rule reads the file for `speil configure` (the header containerd sends) and for `speil run`
//! (the header every `/v2/` request must carry), so the two cannot disagree.
//!
//! A presented header is compared in constant time: both sides are hashed with SHA-256 first,
//! so neither the position of the first differing byte nor the length of the secret shows in
//! how long a refusal takes.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// `user:password` credentials and the `Authorization` header value they make.
#[derive(Clone)]
pub struct BasicAuth {
    header: String,
    /// SHA-256 of the credentials part of the header (after `Basic `).
    hash: [u8; 32],
}

/// The content of a basic-auth file is not `user:password`; the content itself is never shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the content is not of the form user:password (a non-empty user, a colon, the password)")]
pub struct BasicAuthError;

impl BasicAuth {
    /// Credentials from the content of a basic-auth file: `user:password`, surrounding
    /// whitespace (a trailing newline) ignored; the password may hold colons.
    pub fn parse(content: &str) -> Result<BasicAuth, BasicAuthError> {
        let content = content.trim();
        match content.split_once(':') {
            Some((user, _)) if !user.is_empty() && !content.contains(['\r', '\n']) => {
                let token = base64::engine::general_purpose::STANDARD.encode(content);
                Ok(BasicAuth {
                    hash: Sha256::digest(token.as_bytes()).into(),
                    header: format!("Basic {token}"),
                })
            }
            _ => Err(BasicAuthError),
        }
    }

    /// The `Authorization` header value: `Basic <base64 of user:password>`.
    pub fn header_value(&self) -> &str {
        &self.header
    }

    /// Whether `authorization` (an `Authorization` header's value) carries these credentials.
    /// The scheme is matched without regard to case, as RFC 9110 says.
    pub fn accepts(&self, authorization: &[u8]) -> bool {
        let Some(space) = authorization.iter().position(|b| *b == b' ') else {
            return false;
        };
        let (scheme, token) = authorization.split_at(space);
        let presented: [u8; 32] = Sha256::digest(token.trim_ascii()).into();
        let same = presented
            .iter()
            .zip(self.hash.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        scheme.eq_ignore_ascii_case(b"basic") & (same == 0)
    }
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BasicAuth(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_with_a_newline_makes_the_rfc_header() {
        // RFC 7617's example: Aladdin:open sesame.
        let auth = BasicAuth::parse("Aladdin:open sesame\n").unwrap();
        assert_eq!(auth.header_value(), "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==");
    }

    #[test]
    fn the_password_may_hold_colons_the_user_may_not_be_empty() {
        assert!(BasicAuth::parse("u:p:q").is_ok());
        for bad in ["", "no colon", ":password", "a:b\nc:d"] {
            assert_eq!(
                BasicAuth::parse(bad).unwrap_err(),
                BasicAuthError,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn accepts_exactly_its_own_credentials() {
        let auth = BasicAuth::parse("user:pass").unwrap();
        assert!(auth.accepts(auth.header_value().as_bytes()));
        assert!(auth.accepts(b"basic dXNlcjpwYXNz"));
        for wrong in [
            &b""[..],
            b"Basic",
            b"Basic ",
            b"Basic dXNlcjpwYXN0",
            b"Bearer dXNlcjpwYXNz",
            b"Basic dXNlcjpwYXNzAA==",
        ] {
            assert!(!auth.accepts(wrong), "{}", String::from_utf8_lossy(wrong));
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let auth = BasicAuth::parse("user:secret").unwrap();
        assert!(!format!("{auth:?}").contains("c2VjcmV0"));
    }
}
