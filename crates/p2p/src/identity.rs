//! The node's peer identity: an ed25519 key kept in `--data-dir` so a restarted node keeps its
//! peer id, or a fresh one per run without a data directory.

use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

use libp2p::identity::Keypair;

/// The key file inside the data directory.
const KEY_FILE: &str = "identity.key";

/// Loads the key from `data_dir`, creating the directory and a new key (mode 0600) when absent;
/// without a data directory, a new key for this run only.
pub fn load_or_create(data_dir: Option<&Path>) -> io::Result<Keypair> {
    let Some(dir) = data_dir else {
        return Ok(Keypair::generate_ed25519());
    };
    std::fs::create_dir_all(dir)?;
    let path = dir.join(KEY_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Keypair::from_protobuf_encoding(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{}: not a libp2p key ({e}); remove it to make a new identity",
                    path.display()
                ),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key.to_protobuf_encoding().map_err(io::Error::other)?;
            let tmp = dir.join(format!("{KEY_FILE}.tmp"));
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            std::fs::rename(&tmp, &path)?;
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_identity_survives_a_restart_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("nested/data");
        let a = load_or_create(Some(&data)).unwrap();
        let b = load_or_create(Some(&data)).unwrap();
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        let mode = std::fs::metadata(data.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let c = load_or_create(None).unwrap();
        assert_ne!(a.public().to_peer_id(), c.public().to_peer_id());
    }

    #[test]
    fn a_corrupt_key_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(KEY_FILE), b"garbage").unwrap();
        let err = load_or_create(Some(dir.path())).unwrap_err();
        assert!(err.to_string().contains("identity.key"), "{err}");
    }
}
