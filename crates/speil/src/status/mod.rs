//! The status document a node serves at `/status` on its metrics address, and the checks that
//! turn it into "is it working?" for `speil status` and the debug page.
//!
//! The document is versioned by [`STATUS_VERSION`]: fields are only ever added within a version,
//! and a client refuses a document of another version with a message naming both. Its fields are
//! documented in docs/status.md.

pub(crate) mod checks;

use p2p::bootstrap::{Round, State};
use serde::{Deserialize, Serialize};

/// The version of the status document this build serves and understands.
pub(crate) const STATUS_VERSION: u32 = 1;

/// Everything `/status` says about a node. It holds no secret: no credentials, no file contents,
/// only paths, counts, addresses and identifiers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Doc {
    /// [`STATUS_VERSION`] of the node that wrote it.
    pub(crate) status_version: u32,
    /// The node's Speil version.
    pub(crate) version: String,
    pub(crate) node: Node,
    pub(crate) bootstrap: Bootstrap,
    pub(crate) peers: Peers,
    pub(crate) store: Store,
    pub(crate) advertised: p2p::Advertised,
    pub(crate) mirror: registry::Activity,
    /// Present when the node serves containerd's images; `null` for an OCI-directory node.
    pub(crate) containerd: Option<Containerd>,
}

/// Who and where the node is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Node {
    pub(crate) peer_id: String,
    /// `--registry-addr` as bound.
    pub(crate) registry_addr: String,
    /// `--metrics-addr` as bound (this endpoint).
    pub(crate) metrics_addr: String,
    /// The router's listen addresses (multiaddrs).
    pub(crate) router_addrs: Vec<String>,
    /// Whether the router runs a private network (`--p2p-psk-file`); never the key. Absent
    /// (false) in documents of nodes older than the flag.
    #[serde(default)]
    pub(crate) private_network: bool,
    /// When the node started, in Unix seconds.
    pub(crate) started_unix: u64,
    /// The node's clock when it wrote the document, in Unix seconds; ages are measured from it.
    pub(crate) now_unix: u64,
}

/// How the node finds the others, and how that went.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Bootstrap {
    /// `--bootstrap-kind`: none, dns, http or static.
    pub(crate) kind: String,
    /// What discovery asks: the DNS name and nameserver, the URL, or the static addresses.
    #[serde(default)]
    pub(crate) source: String,
    pub(crate) state: State,
    /// When the state was entered, in Unix seconds.
    pub(crate) since_unix: u64,
    /// The last finished round; `null` before the first.
    pub(crate) last_round: Option<Round>,
}

/// The node's peers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Peers {
    /// Peers with an open connection.
    pub(crate) connected: usize,
    /// Peers in the Kademlia routing table.
    pub(crate) routing_table: usize,
    /// While no peer is connected: since when, in Unix seconds (the loss of the last one).
    #[serde(default)]
    pub(crate) alone_since_unix: Option<u64>,
    /// The peer whose loss last left this node without connections.
    #[serde(default)]
    pub(crate) last_lost_peer: Option<String>,
    /// Every peer known, connected or in the routing table, with the addresses it is reached at.
    pub(crate) list: Vec<p2p::PeerInfo>,
}

/// The content store the node serves.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Store {
    /// `containerd` or `oci-dir`.
    pub(crate) kind: String,
    /// The socket and namespace, or the directory.
    pub(crate) location: String,
    /// Images listed now; `null` when listing failed.
    pub(crate) images: Option<usize>,
    /// Why listing failed.
    pub(crate) error: Option<String>,
}

/// containerd as this node sees it: its version, its configuration findings and the host files
/// that send its pulls here.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Containerd {
    /// containerd's version; `null` when containerd does not answer.
    pub(crate) version: Option<String>,
    /// `--containerd-config`.
    pub(crate) config: String,
    /// `--containerd-registry-config-path`.
    pub(crate) registry_config_path: String,
    /// The host files Speil wrote there.
    pub(crate) host_files: Vec<HostFile>,
    /// Each known misconfiguration found in containerd's config.
    pub(crate) findings: Vec<Finding>,
}

/// One host file Speil wrote, and whether its hosts lead to this node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HostFile {
    /// A registry host or `_default`.
    pub(crate) registry: String,
    pub(crate) hosts: Vec<Host>,
}

/// A `[host."<url>"]` of a host file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Host {
    pub(crate) url: String,
    /// Whether `<url>/v2/` answered with this node's peer id.
    pub(crate) this_node: bool,
    /// What answered instead, when it was not this node.
    pub(crate) probe: Option<String>,
}

/// A containerd configuration finding (see `containerd::checks`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Finding {
    pub(crate) id: String,
    /// `warn` or `error`.
    pub(crate) severity: String,
    pub(crate) message: String,
    pub(crate) fix: String,
}

impl From<containerd::checks::Finding> for Finding {
    fn from(f: containerd::checks::Finding) -> Self {
        Finding {
            id: f.id.to_owned(),
            severity: match f.severity {
                containerd::checks::Severity::Warn => "warn",
                containerd::checks::Severity::Error => "error",
            }
            .to_owned(),
            message: f.message,
            fix: f.fix,
        }
    }
}

/// Why bytes from a node are not a status document this build understands.
pub(crate) fn parse(body: &[u8]) -> Result<Doc, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        let start = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        format!(
            "answered something that is not JSON ({start:?}…); expected Speil's status document"
        )
    })?;
    match value
        .get("status_version")
        .and_then(serde_json::Value::as_u64)
    {
        Some(v) if v == u64::from(STATUS_VERSION) => {}
        Some(v) => {
            return Err(format!(
                "answered status document version {v}; this speil ({}) understands version {STATUS_VERSION}: use a speil binary of the node's version",
                env!("CARGO_PKG_VERSION")
            ));
        }
        None => {
            let version = value
                .get("version")
                .and_then(serde_json::Value::as_str)
                .map_or_else(String::new, |v| format!(" (it says version {v})"));
            return Err(format!(
                "answered JSON without a status_version{version}: an older Speil, or not Speil; expected status document version {STATUS_VERSION}"
            ));
        }
    }
    serde_json::from_value(value).map_err(|e| {
        format!("answered a status document version {STATUS_VERSION} with a field this speil cannot read: {e}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_is_not_a_current_document() {
        let err = parse(b"<html>hello</html>").unwrap_err();
        assert!(err.contains("not JSON") && err.contains("<html>"), "{err}");
        let err = parse(br#"{"version":"0.1.0","p2p":{}}"#).unwrap_err();
        assert!(
            err.contains("without a status_version") && err.contains("0.1.0"),
            "{err}"
        );
        let err = parse(br#"{"status_version":7}"#).unwrap_err();
        assert!(
            err.contains("version 7") && err.contains("understands version 1"),
            "{err}"
        );
        let err = parse(br#"{"status_version":1}"#).unwrap_err();
        assert!(err.contains("cannot read"), "{err}");
    }
}
