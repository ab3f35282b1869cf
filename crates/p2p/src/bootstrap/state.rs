//! The bootstrap state a node reports, the summary of a bootstrap round, and what the controller
//! publishes of both for the router's status and readiness.

use serde::{Deserialize, Serialize};

/// How well this node is connected to the others, as `/readyz`, metrics and `speil status` show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// No bootstrap round has finished yet.
    Starting,
    /// At least one live connection to another node (checked by pings).
    Connected,
    /// Discovery worked and found no node but this one, or `--bootstrap-kind none` looks for
    /// none: a valid single-node cluster. Ready.
    Standalone,
    /// Discovery answered with no node at all, not even this one: a headless service that
    /// publishes not-ready addresses always lists the asking node, so the name is wrong (a
    /// typo, another namespace or cluster domain). Ready (local content is served), but a
    /// warning: nothing is shared.
    Unlisted,
    /// Discovery lists other nodes, and none of them could be reached.
    Isolated,
    /// Discovery itself fails (DNS or HTTP lookup errors).
    DiscoveryFailed,
}

impl State {
    /// Every state, in the order metrics list them.
    pub const ALL: [State; 6] = [
        State::Starting,
        State::Connected,
        State::Standalone,
        State::Unlisted,
        State::Isolated,
        State::DiscoveryFailed,
    ];

    /// The state's name in metrics, logs and status.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Connected => "connected",
            State::Standalone => "standalone",
            State::Unlisted => "unlisted",
            State::Isolated => "isolated",
            State::DiscoveryFailed => "discovery_failed",
        }
    }

    /// Whether a node in this state should receive traffic.
    pub fn is_ready(self) -> bool {
        matches!(self, State::Connected | State::Standalone | State::Unlisted)
    }

    /// Whether this state is a failure that, if it lasts, an operator must act on.
    pub fn is_failing(self) -> bool {
        matches!(self, State::Isolated | State::DiscoveryFailed)
    }

    /// The state given how many peers this node has a live connection to, and how the last
    /// round went. The routing table does not count: it keeps peers that are gone. `listed`
    /// says whether discovery must list this node itself (every source but `none`).
    pub(crate) fn from(connected: usize, last_round: Option<&Round>, listed: bool) -> State {
        if connected > 0 {
            return State::Connected;
        }
        match last_round {
            None => State::Starting,
            Some(r) if r.discovery_error.is_some() => State::DiscoveryFailed,
            Some(r) if r.candidates == 0 && listed => State::Unlisted,
            Some(r) if r.others() == 0 => State::Standalone,
            Some(_) => State::Isolated,
        }
    }
}

/// What one bootstrap round found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round {
    /// When the round finished, in seconds since the Unix epoch.
    pub finished_unix: u64,
    /// Candidates the source listed, this node included.
    pub candidates: usize,
    /// Candidates dropped before dialing because they are this node.
    pub self_dropped: usize,
    /// Candidates dialed.
    pub dialed: usize,
    /// Candidates this node is connected to after the round (newly or already).
    pub connected: usize,
    /// Dials that failed.
    pub failed: usize,
    /// The first few failures, as `address: reason`.
    pub failures: Vec<String>,
    /// Why discovery itself failed, when it did.
    pub discovery_error: Option<String>,
}

impl Round {
    /// The candidates that are not this node.
    pub fn others(&self) -> usize {
        self.candidates - self.self_dropped
    }

    /// Whether there were other nodes to reach and none was reached.
    pub fn all_failed(&self) -> bool {
        self.discovery_error.is_none() && self.others() > 0 && self.connected == 0
    }

    /// The round's outcome as a metrics label.
    pub(crate) fn result(&self) -> &'static str {
        if self.discovery_error.is_some() {
            "discovery_failed"
        } else if self.others() == 0 {
            "no_other_nodes"
        } else if self.connected == 0 {
            "all_failed"
        } else {
            "connected"
        }
    }
}

/// The bootstrap part of the status, as the controller publishes it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct BootstrapStatus {
    pub(crate) state: State,
    pub(crate) since_unix: u64,
    pub(crate) last_round: Option<Round>,
}

/// Why a node should not receive traffic: its bootstrap state is not a ready one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("bootstrap state is {}", .state.as_str())]
pub struct NotReady {
    /// The state the node is in.
    pub state: State,
}

impl State {
    /// `Ok` when a node in this state should receive traffic.
    pub fn ready(self) -> Result<(), NotReady> {
        if self.is_ready() {
            Ok(())
        } else {
            Err(NotReady { state: self })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_from_connections_and_round() {
        assert_eq!(State::from(0, None, true), State::Starting);
        assert_eq!(State::from(1, None, true), State::Connected);
        let alone = Round {
            candidates: 1,
            self_dropped: 1,
            ..Round::default()
        };
        assert_eq!(State::from(0, Some(&alone), true), State::Standalone);
        let empty = Round::default();
        assert_eq!(State::from(0, Some(&empty), false), State::Standalone);
        assert_eq!(State::from(0, Some(&empty), true), State::Unlisted);
        assert!(State::Unlisted.is_ready() && !State::Unlisted.is_failing());
        // A round that connected, then lost every connection: isolated, not connected.
        let lost = Round {
            candidates: 3,
            self_dropped: 1,
            dialed: 2,
            connected: 2,
            ..Round::default()
        };
        assert_eq!(State::from(0, Some(&lost), true), State::Isolated);
        let unreachable = Round {
            candidates: 3,
            self_dropped: 1,
            dialed: 2,
            failed: 2,
            ..Round::default()
        };
        assert_eq!(State::from(0, Some(&unreachable), true), State::Isolated);
        assert!(unreachable.all_failed());
        let broken = Round {
            discovery_error: Some("timeout".into()),
            ..Round::default()
        };
        assert_eq!(State::from(0, Some(&broken), true), State::DiscoveryFailed);
        assert_eq!(State::from(2, Some(&broken), true), State::Connected);
        assert!(State::Standalone.is_ready() && !State::Isolated.is_ready());
    }

    #[test]
    fn not_ready_reads_as_the_readiness_probe_shows_it() {
        assert_eq!(State::Connected.ready(), Ok(()));
        let e = State::DiscoveryFailed.ready().unwrap_err();
        assert_eq!(e.to_string(), "bootstrap state is discovery_failed");
    }
}
