//! The checks `speil status` prints and the debug page shows, worked out from a status
//! document alone, so a node and the client judge it the same way.

use std::time::Duration;

use p2p::bootstrap::State;
use serde::Serialize;

use super::{Bootstrap, Doc};

mod containerd;

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Level {
    /// Not applicable to this node (an OCI-directory node has no containerd).
    Skip,
    /// Working.
    Ok,
    /// Working, but less well than it should, or not yet.
    Warn,
    /// Not working.
    Fail,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Skip => "skip",
            Level::Ok => "ok",
            Level::Warn => "warn",
            Level::Fail => "fail",
        }
    }
}

/// One line of `speil status`.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Check {
    /// What is checked: node, bootstrap, peers, store, advertising, mirror, host_files, or
    /// `containerd:<finding id>`.
    pub(crate) name: String,
    pub(crate) level: Level,
    /// What was found, in one line.
    pub(crate) summary: String,
    /// What to do, in one line, when the level is warn or fail.
    pub(crate) fix: Option<String>,
    /// The section of docs/troubleshooting.md that explains it.
    pub(crate) doc: Option<String>,
}

/// The whole verdict: ok (exit 0), degraded (1) or broken (2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Ok,
    Degraded,
    Broken,
}

impl Verdict {
    pub(crate) fn of(checks: &[Check]) -> Verdict {
        match checks.iter().map(|c| c.level).max() {
            Some(Level::Fail) => Verdict::Broken,
            Some(Level::Warn) => Verdict::Degraded,
            _ => Verdict::Ok,
        }
    }

    pub(crate) fn exit_code(self) -> u8 {
        match self {
            Verdict::Ok => 0,
            Verdict::Degraded => 1,
            Verdict::Broken => 2,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Degraded => "degraded",
            Verdict::Broken => "broken",
        }
    }
}

/// The troubleshooting guide, relative to the repository root.
pub(crate) const GUIDE: &str = "docs/troubleshooting.md";

/// Sections of the guide, by their GitHub anchors.
pub(crate) mod section {
    pub(crate) const DISCOVERY: &str = "no-bootstrap-nodes-found-and-other-discovery-failures";
    pub(crate) const SINGLE_NODE: &str = "a-single-node-cluster";
    pub(crate) const ISOLATED: &str = "an-isolated-node";
    pub(crate) const DNS: &str = "dns-or-headless-service-mistakes";
    pub(crate) const NOT_USED: &str = "containerd-not-using-the-mirror";
    pub(crate) const DISCARD: &str = "layers-missing-because-of-discard_unpacked_layers";
    pub(crate) const NODE_DOWN: &str = "speil-status-cannot-reach-the-node";
    pub(crate) const NOTHING_ADVERTISED: &str = "nothing-advertised";
    pub(crate) const CONTAINERD_DOWN: &str = "containerd-does-not-answer";

    /// Every section the checks link to.
    #[cfg(test)]
    pub(crate) const ALL: [&str; 9] = [
        CONTAINERD_DOWN,
        DISCOVERY,
        SINGLE_NODE,
        ISOLATED,
        DNS,
        NOT_USED,
        DISCARD,
        NODE_DOWN,
        NOTHING_ADVERTISED,
    ];
}

/// A link to a section of the guide.
pub(crate) fn link(section: &str) -> String {
    format!("{GUIDE}#{section}")
}

/// How long a node may run without a single request from containerd before that is a warning:
/// long enough for a fresh node, short enough to catch a containerd that never asks.
const QUIET_GRACE: Duration = Duration::from_secs(10 * 60);

/// `now - then` as `3m 12s`.
pub(crate) fn ago(now: u64, then: u64) -> String {
    humantime::format_duration(Duration::from_secs(now.saturating_sub(then))).to_string()
}

fn ok(name: &str, summary: String) -> Check {
    Check {
        name: name.to_owned(),
        level: Level::Ok,
        summary,
        fix: None,
        doc: None,
    }
}

fn bad(name: &str, level: Level, summary: String, fix: &str, section: &str) -> Check {
    Check {
        name: name.to_owned(),
        level,
        summary,
        fix: Some(fix.to_owned()),
        doc: Some(link(section)),
    }
}

/// Every check of one node, in the order a pull depends on them.
pub(crate) fn evaluate(doc: &Doc) -> Vec<Check> {
    let now = doc.node.now_unix;
    let mut checks = vec![ok(
        "node",
        format!(
            "speil {} up {}, registry {}, peer {}{}",
            doc.version,
            ago(now, doc.node.started_unix),
            doc.node.registry_addr,
            doc.node.peer_id,
            if doc.node.private_network {
                ", private network"
            } else {
                ""
            }
        ),
    )];
    checks.push(bootstrap(doc));
    checks.push(peers(doc));
    checks.push(store(doc));
    checks.push(advertising(doc));
    checks.push(mirror(doc));
    checks.extend(containerd::containerd(doc));
    checks
}

fn bootstrap(doc: &Doc) -> Check {
    let b = &doc.bootstrap;
    let since = ago(doc.node.now_unix, b.since_unix);
    let round = b.last_round.as_ref().map_or_else(String::new, |r| {
        format!(
            "; last round: {}, {} this node, {} dialed, {} connected, {} failed",
            plural(r.candidates, "candidate", "candidates"),
            r.self_dropped,
            r.dialed,
            r.connected,
            r.failed
        )
    });
    match b.state {
        State::Connected if b.kind == "none" => ok(
            "bootstrap",
            format!(
                "connected for {since}: other nodes found this one (--bootstrap-kind none looks for none itself)"
            ),
        ),
        State::Connected => ok(
            "bootstrap",
            format!(
                "connected for {since}, found by {} discovery{round}",
                b.kind
            ),
        ),
        State::Standalone if b.kind == "none" => ok(
            "bootstrap",
            format!(
                "standalone for {since}: --bootstrap-kind none looks for no other node (a single-node cluster, unless others bootstrap to this one)"
            ),
        ),
        State::Standalone => ok(
            "bootstrap",
            format!(
                "standalone for {since}: {} discovery lists no other node (a single-node cluster){round}",
                b.kind
            ),
        ),
        State::Unlisted => bad(
            "bootstrap",
            Level::Warn,
            format!(
                "unlisted for {since}: {} discovery of {} lists no node at all, not even this one; nothing is shared with other nodes",
                b.kind, b.source
            ),
            "check the name: the headless Service's name and namespace, the cluster domain, and that the Service publishes not-ready addresses",
            section::DNS,
        ),
        State::Starting => bad(
            "bootstrap",
            Level::Warn,
            format!("starting for {since}: no bootstrap round has finished yet"),
            "wait a few seconds and ask again; if it stays, read the node's log",
            section::DISCOVERY,
        ),
        State::Isolated => isolated(b, &since, &round),
        State::DiscoveryFailed => discovery_failed(b, &since),
    }
}

/// The bootstrap check of an isolated node: the first failure of the last round says why.
fn isolated(b: &Bootstrap, since: &str, round: &str) -> Check {
    let first = b.last_round.as_ref().and_then(|r| r.failures.first());
    let why = first.map_or_else(String::new, |f| format!(" (first failure: {f})"));
    let fix = if first.is_some_and(|f| f.contains("--p2p-psk-file")) {
        "check that every node has the same --p2p-psk-file (the chart's p2pPsk Secret)"
    } else {
        "check that the other nodes run and that their router port (--router-addr) is reachable from this node"
    };
    bad(
        "bootstrap",
        Level::Fail,
        format!("isolated for {since}: other nodes are listed, none could be reached{round}{why}"),
        fix,
        section::ISOLATED,
    )
}

/// The bootstrap check of a node whose discovery fails: the discovery error says why.
fn discovery_failed(b: &Bootstrap, since: &str) -> Check {
    let why = b
        .last_round
        .as_ref()
        .and_then(|r| r.discovery_error.clone())
        .unwrap_or_default();
    bad(
        "bootstrap",
        Level::Fail,
        format!("{} discovery failing for {since}: {why}", b.kind),
        "check the bootstrap flags (--dns-bootstrap-domain, --http-bootstrap-url) and that the name or URL resolves from this node",
        section::DISCOVERY,
    )
}

fn peers(doc: &Doc) -> Check {
    let p = &doc.peers;
    let now = doc.node.now_unix;
    let summary = format!(
        "{} connected, {} in the routing table",
        p.connected, p.routing_table
    );
    if p.connected > 0 {
        return ok("peers", summary);
    }
    if doc.bootstrap.state == State::Standalone && p.routing_table == 0 {
        return ok(
            "peers",
            format!("{summary} (none expected: a single-node cluster)"),
        );
    }
    let alone = match (p.alone_since_unix, &p.last_lost_peer) {
        (Some(since), Some(peer)) => {
            format!("; alone for {} since losing {peer}", ago(now, since))
        }
        _ => format!(
            "; no peer connected since the start {} ago",
            ago(now, doc.node.started_unix)
        ),
    };
    let what = if p.routing_table > 0 {
        ": the routing table lists peers, but none answers"
    } else {
        ": nothing can be mirrored from other nodes"
    };
    bad(
        "peers",
        Level::Warn,
        format!("{summary}{what}{alone}"),
        "see the bootstrap line above",
        if doc.bootstrap.state == State::Isolated {
            section::ISOLATED
        } else {
            section::SINGLE_NODE
        },
    )
}

fn store(doc: &Doc) -> Check {
    let s = &doc.store;
    match (&s.images, &s.error) {
        (Some(n), _) => ok(
            "store",
            format!(
                "{} {}: {}",
                s.kind,
                s.location,
                plural(*n, "image", "images")
            ),
        ),
        (None, error) => bad(
            "store",
            Level::Fail,
            format!(
                "{} {} cannot be listed: {}",
                s.kind,
                s.location,
                error.as_deref().unwrap_or("unknown error")
            ),
            if s.kind == "containerd" {
                "check --containerd-sock and that containerd runs; the node retries on its own"
            } else {
                "check that --oci-dir is an OCI image layout this node can read"
            },
            section::NOT_USED,
        ),
    }
}

fn advertising(doc: &Doc) -> Check {
    let a = &doc.advertised;
    let summary = format!(
        "{} image tags, {} images, {} digests",
        a.image_tags, a.image_digests, a.content_digests
    );
    match doc.store.images {
        Some(0) => ok(
            "advertising",
            format!("{summary} (the store holds no image yet)"),
        ),
        Some(n) if a.image_digests == 0 => bad(
            "advertising",
            Level::Warn,
            format!(
                "{summary}, though the store holds {}",
                plural(n, "image", "images")
            ),
            "check --mirrored-registries and --registry-filters: they leave out every image",
            section::NOTHING_ADVERTISED,
        ),
        _ => ok("advertising", summary),
    }
}

fn mirror(doc: &Doc) -> Check {
    let m = &doc.mirror;
    let now = doc.node.now_unix;
    let mut counts = format!(
        "{} served locally, {} from peers, {} not found; {} requests from peers",
        m.served_local, m.served_from_peers, m.not_found, m.requests_from_peers
    );
    if m.in_flight_served > 0 || m.in_flight_advertised > 0 {
        counts.push_str(&format!(
            " ({} served from downloads under way; {} downloads advertised now)",
            m.in_flight_served, m.in_flight_advertised
        ));
    }
    if let Some(last) = &m.last_mirror {
        return ok(
            "mirror",
            format!(
                "last served from a peer {} ago ({} from {}); {counts}",
                ago(now, last.unix),
                last.reference,
                last.peer
            ),
        );
    }
    if let Some(t) = m.last_client_request_unix {
        return ok(
            "mirror",
            format!(
                "last client request {} ago, none served from a peer yet; {counts}",
                ago(now, t)
            ),
        );
    }
    let up = Duration::from_secs(now.saturating_sub(doc.node.started_unix));
    if doc.containerd.is_some() && up >= QUIET_GRACE {
        bad(
            "mirror",
            Level::Warn,
            format!(
                "containerd has asked this node nothing in {}",
                ago(now, doc.node.started_unix)
            ),
            "containerd does not use the mirror: check the host_files line and containerd's config",
            section::NOT_USED,
        )
    } else {
        ok("mirror", format!("no request yet; {counts}"))
    }
}

pub(crate) fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GitHub's anchor of a Markdown heading.
    fn anchor(heading: &str) -> String {
        heading
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_linked_section_exists_in_the_guide() {
        let guide = include_str!("../../../../docs/troubleshooting.md");
        let anchors: Vec<String> = guide
            .lines()
            .filter_map(|l| l.strip_prefix("## "))
            .map(anchor)
            .collect();
        for s in section::ALL {
            assert!(anchors.iter().any(|a| a == s), "{s} not in {anchors:?}");
        }
    }

    #[test]
    fn the_worst_check_decides() {
        let check = |level| Check {
            name: "x".into(),
            level,
            summary: String::new(),
            fix: None,
            doc: None,
        };
        assert_eq!(
            Verdict::of(&[check(Level::Ok), check(Level::Skip)]),
            Verdict::Ok
        );
        assert_eq!(
            Verdict::of(&[check(Level::Warn), check(Level::Ok)]),
            Verdict::Degraded
        );
        assert_eq!(
            Verdict::of(&[check(Level::Warn), check(Level::Fail)]).exit_code(),
            2
        );
    }
}
