//! `speil status`: asks a node for its status document and prints one line per check, or with
//! `--cluster` one row per node it can find. Exit 0 when all is well, 1 when degraded, 2 when
//! broken or when the node cannot be asked.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use http_body_util::BodyExt as _;
use p2p::bootstrap::State;
use serde::Serialize;
use serde_json::json;

use crate::cli::StatusArgs;
use crate::status::checks::{self, Check, Level, Verdict, section};
use crate::status::{self, Doc};

/// Most nodes `--cluster` asks.
const MAX_NODES: usize = 1000;
/// How many nodes `--cluster` asks at once.
const CONCURRENCY: usize = 32;
/// The largest status document read (a node with many peers lists them all).
const MAX_BODY: usize = 16 * 1024 * 1024;

/// Runs `speil status`; the exit code is the verdict.
pub(crate) fn main(args: StatusArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("speil status: starting the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let report = runtime.block_on(async {
        let deadline = tokio::time::Instant::now() + args.wait.unwrap_or_default();
        loop {
            let report = if args.cluster {
                cluster(&args).await
            } else {
                single(&args).await
            };
            if report.code == 0 || tokio::time::Instant::now() >= deadline {
                return report;
            }
            tokio::time::sleep(WAIT_STEP).await;
        }
    });
    print!("{}", report.stdout);
    eprint!("{}", report.stderr);
    ExitCode::from(report.code)
}

/// How often `--wait` asks again.
const WAIT_STEP: Duration = Duration::from_millis(250);

/// What `speil status` prints, and its exit code.
struct Report {
    code: u8,
    stdout: String,
    stderr: String,
}

impl Report {
    fn out(code: u8, stdout: String) -> Report {
        Report {
            code,
            stdout,
            stderr: String::new(),
        }
    }
}

/// Asks the node at `base` (`http://host:port`) for its status document.
async fn fetch(base: &str, timeout: Duration) -> Result<Doc, String> {
    let url = format!("{base}/status");
    let answer = tokio::time::timeout(timeout, async {
        let response = crate::http_client::get(&url).await?;
        let code = response.status();
        let body = http_body_util::Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| format!("broke off its answer: {e}"))?
            .to_bytes();
        Ok::<_, String>((code, body))
    })
    .await
    .map_err(|_| {
        format!(
            "did not answer within {}",
            humantime::format_duration(timeout)
        )
    })
    .and_then(|r| r);
    let (code, body) = answer.map_err(|e| format!("{url} {e}"))?;
    if !code.is_success() {
        return Err(format!(
            "{url} answered {code}; expected Speil's status document: is this the node's --metrics-addr (not its --registry-addr)?"
        ));
    }
    status::parse(&body).map_err(|e| format!("{url} {e}"))
}

async fn single(args: &StatusArgs) -> Report {
    let doc = match fetch(&args.addr, args.timeout).await {
        Ok(d) => d,
        Err(e) => return unreachable(args, &e),
    };
    let checks = checks::evaluate(&doc);
    let verdict = Verdict::of(&checks);
    let text = if args.json {
        to_json(&json!({
            "addr": args.addr,
            "verdict": verdict,
            "exit_code": verdict.exit_code(),
            "checks": checks,
            "status": doc,
        }))
    } else {
        render_checks(&args.addr, &checks, verdict)
    };
    Report::out(verdict.exit_code(), text)
}

/// Says the node cannot be asked, and why; exit 2.
fn unreachable(args: &StatusArgs, error: &str) -> Report {
    let doc = checks::link(section::NODE_DOWN);
    if args.json {
        Report::out(
            2,
            to_json(&json!({
                "addr": args.addr,
                "verdict": "unreachable",
                "exit_code": 2,
                "error": error,
                "doc": doc,
            })),
        )
    } else {
        Report {
            code: 2,
            stdout: String::new(),
            stderr: format!("speil status: {error}\n  see: {doc}\n"),
        }
    }
}

fn to_json(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("JSON values serialize");
    text.push('\n');
    text
}

/// The text of `speil status`: one line per check, a fix and a link under each problem, and
/// the verdict last.
fn render_checks(addr: &str, checks: &[Check], verdict: Verdict) -> String {
    let width = checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
    let mut out = format!("speil status of {addr}\n");
    for c in checks {
        let _ = writeln!(
            out,
            "{:<5} {:<width$}  {}",
            c.level.as_str(),
            c.name,
            c.summary
        );
        let indent = " ".repeat(width + 8);
        if let Some(fix) = &c.fix {
            let _ = writeln!(out, "{indent}fix: {fix}");
        }
        if let Some(doc) = &c.doc {
            let _ = writeln!(out, "{indent}see: {doc}");
        }
    }
    let count = |l: Level| checks.iter().filter(|c| c.level == l).count();
    let _ = writeln!(
        out,
        "result: {} ({} failing, {})",
        verdict.as_str(),
        count(Level::Fail),
        checks::plural(count(Level::Warn), "warning", "warnings")
    );
    out
}

/// One node of `--cluster`.
#[derive(Debug, Serialize)]
struct Row {
    peer_id: String,
    /// Where its status was asked.
    address: String,
    /// Its bootstrap state, or `unreachable`.
    state: String,
    connected_peers: Option<usize>,
    routing_table_peers: Option<usize>,
    advertised_images: Option<usize>,
    last_mirror_unix: Option<u64>,
    version: Option<String>,
    /// Its own verdict, as `speil status` on it would print.
    verdict: Option<Verdict>,
    /// Why it could not be asked.
    error: Option<String>,
    /// Its bootstrap state as parsed, when it answered; `state` is what is printed.
    #[serde(skip)]
    parsed_state: Option<State>,
    #[serde(skip)]
    now_unix: u64,
}

impl Row {
    fn of(doc: &Doc, address: String) -> Row {
        Row {
            peer_id: doc.node.peer_id.clone(),
            address,
            state: doc.bootstrap.state.as_str().to_owned(),
            parsed_state: Some(doc.bootstrap.state),
            connected_peers: Some(doc.peers.connected),
            routing_table_peers: Some(doc.peers.routing_table),
            advertised_images: Some(doc.advertised.image_digests),
            last_mirror_unix: doc.mirror.last_mirror.as_ref().map(|m| m.unix),
            version: Some(doc.version.clone()),
            verdict: Some(Verdict::of(&checks::evaluate(doc))),
            error: None,
            now_unix: doc.node.now_unix,
        }
    }

    fn unreachable(peer_id: String, address: String, error: String) -> Row {
        Row {
            peer_id,
            address,
            state: "unreachable".into(),
            connected_peers: None,
            routing_table_peers: None,
            advertised_images: None,
            last_mirror_unix: None,
            version: None,
            verdict: None,
            error: Some(error),
            parsed_state: None,
            now_unix: 0,
        }
    }

    fn ready(&self) -> bool {
        self.error.is_none()
            && matches!(
                self.parsed_state,
                Some(State::Connected | State::Standalone)
            )
    }
}

/// The status URLs a peer may answer at: each IP it is known by, at `port`.
fn peer_bases(peer: &p2p::PeerInfo, port: u16) -> Vec<String> {
    let mut seen = HashSet::new();
    peer.addrs
        .iter()
        .filter_map(|a| a.parse::<p2p::Multiaddr>().ok())
        .filter_map(|a| p2p::bootstrap::socket_addr(&a))
        .filter(|s| seen.insert(s.ip()))
        .map(|s| format!("http://{}", std::net::SocketAddr::new(s.ip(), port)))
        .collect()
}

/// Asks a peer at each of its addresses in turn; the first answer wins.
async fn ask_peer(
    peer: p2p::PeerInfo,
    port: u16,
    timeout: Duration,
) -> (p2p::PeerInfo, Result<(Doc, String), String>) {
    let bases = peer_bases(&peer, port);
    let mut last = format!("no IP address known for {}", peer.id);
    for base in bases {
        match fetch(&base, timeout).await {
            Ok(doc) => return (peer, Ok((doc, base))),
            Err(e) => last = e,
        }
    }
    (peer, Err(last))
}

/// Queues the peers `doc` lists that were not asked yet.
fn learn(doc: &Doc, asked: &mut HashSet<String>, pending: &mut Vec<p2p::PeerInfo>) {
    for p in &doc.peers.list {
        if asked.len() < MAX_NODES && asked.insert(p.id.clone()) {
            pending.push(p.clone());
        }
    }
}

async fn cluster(args: &StatusArgs) -> Report {
    let first = match fetch(&args.addr, args.timeout).await {
        Ok(d) => d,
        Err(e) => return unreachable(args, &e),
    };
    let port = args.peer_metrics_port.unwrap_or_else(|| {
        args.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(9090)
    });
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    let mut asked: HashSet<String> = HashSet::from([first.node.peer_id.clone()]);
    let mut pending: Vec<p2p::PeerInfo> = Vec::new();
    learn(&first, &mut asked, &mut pending);
    rows.insert(
        first.node.peer_id.clone(),
        Row::of(&first, args.addr.clone()),
    );

    crawl(&mut rows, &mut asked, pending, port, args.timeout).await;

    // The asked node first, then the others by peer id.
    let mut list: Vec<Row> = Vec::with_capacity(rows.len());
    if let Some(r) = rows.remove(&first.node.peer_id) {
        list.push(r);
    }
    list.extend(rows.into_values());
    summarize(args, &list)
}

/// Asks every peer in `pending`, and the peers their documents list (up to [`MAX_NODES`]),
/// [`CONCURRENCY`] at a time, adding one row per node.
async fn crawl(
    rows: &mut BTreeMap<String, Row>,
    asked: &mut HashSet<String>,
    mut pending: Vec<p2p::PeerInfo>,
    port: u16,
    timeout: Duration,
) {
    let mut inflight = FuturesUnordered::new();
    loop {
        while inflight.len() < CONCURRENCY
            && let Some(p) = pending.pop()
        {
            inflight.push(ask_peer(p, port, timeout));
        }
        let Some((peer, answer)) = inflight.next().await else {
            break;
        };
        match answer {
            Ok((doc, base)) => {
                learn(&doc, asked, &mut pending);
                rows.insert(doc.node.peer_id.clone(), Row::of(&doc, base));
            }
            Err(e) => {
                let address = peer_bases(&peer, port).join(" ");
                rows.entry(peer.id.clone())
                    .or_insert_with(|| Row::unreachable(peer.id, address, e));
            }
        }
    }
}

/// The cluster report of `list`: the table (or JSON) and the worst verdict.
fn summarize(args: &StatusArgs, list: &[Row]) -> Report {
    let not_ready = list.iter().filter(|r| !r.ready()).count();
    let isolated = list
        .iter()
        .filter(|r| r.parsed_state == Some(State::Isolated))
        .count();
    let unreachable = list.iter().filter(|r| r.error.is_some()).count();
    let worst = list
        .iter()
        .map(|r| match (r.verdict, &r.error) {
            (Some(v), _) => v,
            (None, _) => Verdict::Degraded,
        })
        .max_by_key(|v| v.exit_code())
        .unwrap_or(Verdict::Ok);
    let text = if args.json {
        to_json(&json!({
            "addr": args.addr,
            "verdict": worst,
            "exit_code": worst.exit_code(),
            "nodes": list,
            "summary": {
                "nodes_seen": list.len(),
                "not_ready": not_ready,
                "isolated": isolated,
                "unreachable": unreachable,
            },
        }))
    } else {
        format!(
            "{}{} seen, {not_ready} not ready, {isolated} isolated, {unreachable} unreachable; result: {}\n",
            render_cluster(list),
            checks::plural(list.len(), "node", "nodes"),
            worst.as_str()
        )
    };
    Report::out(worst.exit_code(), text)
}

/// A peer id as the table shows it: the first 12 and last 4 characters (`12D3KooWArnX…k9Qz`);
/// every id starts alike, so the tail keeps rows of a large cluster apart. `--json` has the
/// whole id.
fn short_id(id: &str) -> String {
    let chars: Vec<char> = id.chars().collect();
    if chars.len() <= 17 {
        return id.to_owned();
    }
    let head: String = chars[..12].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

fn render_cluster(rows: &[Row]) -> String {
    let header = [
        "NODE",
        "ADDRESS",
        "STATE",
        "PEERS",
        "ADVERTISED",
        "LAST MIRROR",
        "VERSION",
        "RESULT",
    ];
    let cells: Vec<[String; 8]> = rows
        .iter()
        .map(|r| {
            let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            [
                short_id(&r.peer_id),
                r.address.clone(),
                r.state.clone(),
                or_dash(
                    r.connected_peers
                        .zip(r.routing_table_peers)
                        .map(|(c, t)| format!("{c}/{t}")),
                ),
                or_dash(r.advertised_images.map(|n| n.to_string())),
                match (r.last_mirror_unix, r.error.is_some()) {
                    (Some(t), _) => format!("{} ago", checks::ago(r.now_unix, t)),
                    (None, false) => "never".into(),
                    (None, true) => "-".into(),
                },
                or_dash(r.version.clone()),
                match (&r.verdict, &r.error) {
                    (Some(v), _) => v.as_str().to_owned(),
                    (None, Some(e)) => e.clone(),
                    (None, None) => "-".into(),
                },
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cols: &[String]| {
        let last = cols.len() - 1;
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i == last {
                let _ = writeln!(out, "{c}");
            } else {
                let _ = write!(out, "{c:<w$}  ");
            }
        }
    };
    line(&header.map(str::to_owned));
    for row in &cells {
        line(row);
    }
    out
}
