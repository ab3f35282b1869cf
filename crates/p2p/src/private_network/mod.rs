//! A private P2P network (`--p2p-psk-file`): only nodes holding the same 32-byte pre-shared key
//! can connect, so a process without it can neither join the DHT nor publish or look up
//! provider records. The key file has the format of other libp2p private networks (go-libp2p's
//! and IPFS's `swarm.key`); libp2p's pnet upgrade encrypts the raw TCP connection with it before
//! noise.
//!
//! pnet itself cannot tell a wrong key: both sides exchange nonces and then read each other's
//! bytes through their own key, so a mismatch surfaces later as garbage in the next protocol.
//! `stream` turns it into an error that says so: the first bytes every libp2p node sends after
//! pnet are multistream-select's header, so bytes that decrypt to anything else are a different
//! key, and a node that closes the connection right after the nonces, before answering, could
//! not read what this node sent (most likely a different key).

mod stream;

use std::fmt;
use std::str::FromStr;

use libp2p::pnet::PreSharedKey;

pub(crate) use stream::{Failure, failure_of, handshake};

/// The first line of a key file.
const KEY_TYPE: &str = "/key/swarm/psk/1.0.0/";
/// The second line: the only encoding read.
const ENCODING: &str = "/base16/";

/// The pre-shared key of a private network, read from a `swarm.key` file. Its `Debug` shows
/// nothing of the key, so a configuration can be logged.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct NetworkKey(PreSharedKey);

impl NetworkKey {
    pub(crate) fn psk(self) -> PreSharedKey {
        self.0
    }
}

impl fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NetworkKey(..)")
    }
}

/// Why a key file was refused. The messages never contain any of the file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Fewer than three lines.
    #[error("not a swarm.key file: expected three lines, {KEY_TYPE}, {ENCODING} and 64 hex digits")]
    Lines,
    /// The first line is not [`KEY_TYPE`].
    #[error("the first line is not {KEY_TYPE} (expected the swarm.key format)")]
    KeyType,
    /// The second line is not [`ENCODING`].
    #[error("the second line is not {ENCODING}, the only encoding read")]
    Encoding,
    /// The third line is not 64 hex digits.
    #[error(
        "the third line is not 64 hex digits (a 32-byte key, such as `openssl rand -hex 32` prints)"
    )]
    Key,
    /// Something follows the key.
    #[error("more than three lines: nothing may follow the key")]
    Trailing,
}

impl FromStr for NetworkKey {
    type Err = KeyError;

    /// Reads the `swarm.key` format: `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hex digits,
    /// one per line (line ends `\n` or `\r\n`, trailing blanks and empty lines after the key
    /// allowed).
    fn from_str(s: &str) -> Result<Self, KeyError> {
        let mut lines = s.lines().map(str::trim_end);
        let (Some(key_type), Some(encoding), Some(hex_key)) =
            (lines.next(), lines.next(), lines.next())
        else {
            return Err(KeyError::Lines);
        };
        if key_type != KEY_TYPE {
            return Err(KeyError::KeyType);
        }
        if encoding != ENCODING {
            return Err(KeyError::Encoding);
        }
        if hex_key.len() != 64 || !hex_key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Key);
        }
        if lines.any(|l| !l.is_empty()) {
            return Err(KeyError::Trailing);
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(hex_key, &mut bytes).map_err(|_| KeyError::Key)?;
        Ok(NetworkKey(PreSharedKey::new(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "6189c5cf0b87fb800c1a9feeda73c6ab5e998db48fb9e6a978575c770ceef683";

    #[test]
    fn reads_the_swarm_key_format_as_libp2p_writes_it() {
        let text = format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}\n");
        let key: NetworkKey = text.parse().unwrap();
        // The same key as libp2p's own parser reads, and as go-libp2p would (fingerprint
        // checked against go-ipfs in libp2p-pnet's tests).
        assert_eq!(key.psk(), text.parse::<PreSharedKey>().unwrap());
        assert_eq!(
            key.psk().fingerprint().to_string(),
            "45fc986bbc9388a11d939df26f730f0c"
        );
        let crlf = format!(
            "/key/swarm/psk/1.0.0/\r\n/base16/\r\n{}  \r\n\r\n",
            HEX.to_uppercase()
        );
        assert_eq!(crlf.parse::<NetworkKey>().unwrap(), key);
        assert_eq!(format!("{key:?}"), "NetworkKey(..)");
    }

    #[test]
    fn refusals_say_what_is_wrong_without_the_content() {
        let secret = "deadbeef";
        for (text, want) in [
            (String::new(), KeyError::Lines),
            (format!("{HEX}\n"), KeyError::Lines),
            (
                format!("/key/swarm/psk/2.0.0/\n/base16/\n{HEX}"),
                KeyError::KeyType,
            ),
            (
                format!("/key/swarm/psk/1.0.0/\n/base64/\n{HEX}"),
                KeyError::Encoding,
            ),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n{secret}"),
                KeyError::Key,
            ),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}0"),
                KeyError::Key,
            ),
            // libp2p's own parser would accept `+a` as a byte, or panic on a multibyte char.
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n+a{}", &HEX[2..]),
                KeyError::Key,
            ),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\né{}", &HEX[2..]),
                KeyError::Key,
            ),
            (
                format!("/key/swarm/psk/1.0.0/\n/base16/\n{HEX}\n{secret}"),
                KeyError::Trailing,
            ),
        ] {
            let err = text.parse::<NetworkKey>().unwrap_err();
            assert_eq!(err, want, "{text:?}");
            assert!(!err.to_string().contains(secret) && !err.to_string().contains(&HEX[..8]));
        }
    }
}
