//! The command line as typed: flags, their defaults, their `SPEIL_<FLAG>` environment variables,
//! and the validation clap does before any work starts (a bad value exits 2 naming the flag).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod bounds;
mod in_flight;
mod p2p_bounds;
#[cfg(test)]
mod tests;
mod values;

pub(crate) use bounds::BoundsArgs;
pub(crate) use in_flight::InFlightArgs;
pub(crate) use p2p_bounds::P2pBoundArgs;
pub(crate) use values::{basic_auth, p2p_psk};
use values::{
    duration, http_base_url, http_url, log_filter, multiaddr, oci_dir, registry_url, socket_addr,
    status_url, upstream_url,
};

/// Speil: a stateless, cluster-local, peer-to-peer OCI registry mirror.
///
/// Every flag can also be set from the environment as SPEIL_<FLAG>, for example
/// SPEIL_REGISTRY_ADDR=0.0.0.0:5000.
#[derive(Debug, Parser)]
#[command(name = "speil", version, propagate_version = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a node: serve the images of a content store over the OCI distribution API.
    Run(RunArgs),
    /// Write a small sample image into a local OCI directory and run a node serving it.
    Demo(DemoArgs),
    /// Write containerd's registry host files so containerd asks Speil first.
    Configure(ConfigureArgs),
    /// Restore containerd's registry host files as they were before `speil configure`.
    Cleanup(CleanupArgs),
    /// Wait until `speil cleanup` has finished on a node (for a Helm post-delete hook).
    CleanupWait(CleanupWaitArgs),
    /// Tell whether a node works, and if not, why: one line per check, with a fix for each
    /// problem. Exit 0 when all is well, 1 when degraded, 2 when broken or unreachable.
    Status(StatusArgs),
    /// Print the version.
    Version,
}

/// A flag value refused after parsing (an address in use, a layout that cannot be opened): the
/// message names the flag, and the exit code is 2, as for the values clap refuses.
#[derive(Debug)]
pub(crate) struct BadValue(pub(crate) String);

impl std::fmt::Display for BadValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadValue {}

/// Marks `e` as a refused flag value, so the binary exits 2.
pub(crate) fn bad_value(e: anyhow::Error) -> anyhow::Error {
    anyhow::Error::new(BadValue(format!("{e:#}")))
}

/// Flags of `speil run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) containerd: ContainerdArgs,

    /// Serve the images of this OCI image-layout directory (oci-layout, index.json, blobs/)
    /// instead of containerd's.
    #[arg(long, env = "SPEIL_OCI_DIR", value_name = "DIR", value_parser = oci_dir)]
    pub(crate) oci_dir: Option<PathBuf>,

    /// How often the OCI directory's index.json is checked for added or removed images.
    #[arg(long, env = "SPEIL_STORE_POLL_INTERVAL", default_value = "1s", value_parser = duration)]
    pub(crate) store_poll_interval: Duration,

    /// Address of the registry (the OCI distribution API containerd pulls from).
    #[arg(long, env = "SPEIL_REGISTRY_ADDR", default_value = "0.0.0.0:5000", value_parser = socket_addr)]
    pub(crate) registry_addr: SocketAddr,

    /// Address of the metrics endpoint: /metrics, /status (what `speil status` reads) and the
    /// debug page.
    #[arg(long, env = "SPEIL_METRICS_ADDR", default_value = "0.0.0.0:9090", value_parser = socket_addr)]
    pub(crate) metrics_addr: SocketAddr,

    /// A file holding `user:password` (a mounted Secret): every request to --registry-addr
    /// except /readyz and /livez must carry these credentials (401 otherwise), and the mirror
    /// sends them to peers. Use the same file for `speil configure --basic-auth-file`, so
    /// containerd sends them too, and the same on every node.
    #[arg(long, env = "SPEIL_BASIC_AUTH_FILE", value_name = "FILE")]
    pub(crate) basic_auth_file: Option<PathBuf>,

    /// Serve the debug page at /debug/web/ on --metrics-addr: status, peers, local images and a
    /// measure action that pulls a reference through this node.
    #[arg(long, env = "SPEIL_DEBUG_WEB", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) debug_web: bool,

    #[command(flatten)]
    pub(crate) bounds: BoundsArgs,

    #[command(flatten)]
    pub(crate) p2p: P2pArgs,

    #[command(flatten)]
    pub(crate) mirror: MirrorArgs,

    #[command(flatten)]
    pub(crate) log: LogArgs,

    /// How long in-flight responses may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "SPEIL_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub(crate) shutdown_timeout: Duration,
}

/// Where containerd is: its socket, namespace, content directory and configuration.
#[derive(Debug, Clone, Args)]
pub(crate) struct ContainerdArgs {
    /// containerd's gRPC socket.
    #[arg(
        long,
        env = "SPEIL_CONTAINERD_SOCK",
        default_value = "/run/containerd/containerd.sock"
    )]
    pub(crate) containerd_sock: PathBuf,

    /// The containerd namespace whose images are served (the CRI's is k8s.io).
    #[arg(long, env = "SPEIL_CONTAINERD_NAMESPACE", default_value = "k8s.io")]
    pub(crate) containerd_namespace: String,

    /// containerd's content directory, read directly for speed (Content.Read over gRPC when it
    /// is not readable).
    #[arg(
        long,
        env = "SPEIL_CONTAINERD_CONTENT_PATH",
        default_value = "/var/lib/containerd/io.containerd.content.v1.content"
    )]
    pub(crate) containerd_content_path: PathBuf,

    /// containerd's own configuration, checked for settings that leave the mirror unused.
    #[arg(
        long,
        env = "SPEIL_CONTAINERD_CONFIG",
        default_value = "/etc/containerd/config.toml"
    )]
    pub(crate) containerd_config: PathBuf,

    /// Where containerd's registry host files live (its CRI registry config_path).
    #[arg(
        long,
        env = "SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH",
        default_value = "/etc/containerd/certs.d"
    )]
    pub(crate) containerd_registry_config_path: PathBuf,

    /// How often everything is listed from containerd again, to repair what an event missed.
    #[arg(long, env = "SPEIL_STORE_RECONCILE_INTERVAL", default_value = "5m", value_parser = duration)]
    pub(crate) store_reconcile_interval: Duration,
}

/// Flags of mirroring from peers.
#[derive(Debug, Args)]
pub(crate) struct MirrorArgs {
    /// Registries served and advertised, comma-separated (https://docker.io, ghcr.io, …);
    /// empty for every registry. Requests for others are answered 404 at once.
    #[arg(long, env = "SPEIL_MIRRORED_REGISTRIES", value_delimiter = ',', value_parser = registry_url)]
    pub(crate) mirrored_registries: Vec<oci::Registry>,

    /// Regular expressions over full references (registry/repository:tag or …@digest), comma-
    /// separated: a matching reference is never served from peers and its tag never advertised.
    /// For example ":latest$" keeps mutable tags going upstream.
    #[arg(long, env = "SPEIL_REGISTRY_FILTERS", value_delimiter = ',')]
    pub(crate) registry_filters: Vec<String>,

    /// Resolve tags through peers (registry/repository:tag keys); false serves digests only.
    #[arg(long, env = "SPEIL_RESOLVE_TAGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) resolve_tags: bool,

    /// The port of peers' registries; the port of --registry-addr when absent (a DaemonSet).
    #[arg(long, env = "SPEIL_MIRROR_PEER_PORT")]
    pub(crate) mirror_peer_port: Option<u16>,

    /// How long connecting to one peer address may take.
    #[arg(long, env = "SPEIL_MIRROR_CONNECT_TIMEOUT", default_value = "200ms", value_parser = duration)]
    pub(crate) mirror_connect_timeout: Duration,

    /// How long to wait for the first provider before answering 404 (containerd then goes
    /// upstream).
    #[arg(long, env = "SPEIL_MIRROR_RESOLVE_TIMEOUT", default_value = "20ms", value_parser = duration)]
    pub(crate) mirror_resolve_timeout: Duration,

    /// Most peers tried for one request.
    #[arg(long, env = "SPEIL_MIRROR_RESOLVE_RETRIES", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=20))]
    pub(crate) mirror_resolve_retries: u16,

    /// How long a peer that failed (refused, timed out, answered wrongly, served bad bytes) is
    /// left out of every request.
    #[arg(long, env = "SPEIL_MIRROR_PEER_QUARANTINE", default_value = "30s", value_parser = duration)]
    pub(crate) mirror_peer_quarantine: Duration,

    /// Requests forwarded to peers at once; one more is answered 503 with Retry-After, and
    /// containerd goes to the next host (upstream).
    ///
    /// 64: a pull asks for a few layers at a time, and each forwarded blob holds a connection to
    /// a peer and a hash; a node forwarding 64 blobs at once is pulling a whole rollout through
    /// itself, and sending the rest upstream is cheaper than queueing them.
    #[arg(long, env = "SPEIL_MIRROR_MAX_TRANSFERS", default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub(crate) mirror_max_transfers: u32,

    #[command(flatten)]
    pub(crate) in_flight: InFlightArgs,
}

/// Flags of the P2P router and its bootstrap.
#[derive(Debug, Args)]
pub(crate) struct P2pArgs {
    /// Address of the P2P router (libp2p over TCP); other nodes dial this port.
    #[arg(long, env = "SPEIL_ROUTER_ADDR", default_value = "0.0.0.0:5001", value_parser = socket_addr)]
    pub(crate) router_addr: SocketAddr,

    /// Addresses other nodes reach this router at, when they differ from --router-addr (NAT);
    /// comma-separated IP:PORT. Also never dialed by this node.
    #[arg(long, env = "SPEIL_ROUTER_ADVERTISE_ADDR", value_delimiter = ',', value_parser = socket_addr)]
    pub(crate) router_advertise_addr: Vec<SocketAddr>,

    /// Directory for state that survives restarts (the peer identity); created if absent.
    /// Without it, the node has a new peer id every run.
    #[arg(long, env = "SPEIL_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,

    /// A private network's pre-shared key (a mounted Secret), in the swarm.key format of other
    /// libp2p private networks: `/key/swarm/psk/1.0.0/`, `/base16/`, then 64 hex digits. Only
    /// nodes with the same key connect; give every node the same file.
    #[arg(long, env = "SPEIL_P2P_PSK_FILE", value_name = "FILE")]
    pub(crate) p2p_psk_file: Option<PathBuf>,

    /// How long a provider record lives in the DHT unless republished.
    #[arg(long, env = "SPEIL_PROVIDER_TTL", default_value = "30m", value_parser = duration)]
    pub(crate) provider_ttl: Duration,

    /// How often this node republishes its provider records; must be below --provider-ttl.
    #[arg(long, env = "SPEIL_PROVIDER_REPUBLISH_INTERVAL", default_value = "10m", value_parser = duration)]
    pub(crate) provider_republish_interval: Duration,

    /// Where other nodes are found: none (a standalone node), dns, http or static.
    #[arg(long, env = "SPEIL_BOOTSTRAP_KIND", value_enum, default_value_t = BootstrapKind::None)]
    pub(crate) bootstrap_kind: BootstrapKind,

    /// DNS name whose A and AAAA records list the nodes (a headless service), for --bootstrap-kind dns.
    #[arg(
        long,
        env = "SPEIL_DNS_BOOTSTRAP_DOMAIN",
        required_if_eq("bootstrap_kind", "dns")
    )]
    pub(crate) dns_bootstrap_domain: Option<String>,

    /// DNS server to ask, IP:PORT; the system resolver when absent.
    #[arg(long, env = "SPEIL_DNS_BOOTSTRAP_NAMESERVER", value_parser = socket_addr)]
    pub(crate) dns_bootstrap_nameserver: Option<SocketAddr>,

    /// Serve this node's id and addresses as JSON at /id on this address, for HTTP bootstrap.
    #[arg(long, env = "SPEIL_HTTP_BOOTSTRAP_ADDR", value_parser = socket_addr)]
    pub(crate) http_bootstrap_addr: Option<SocketAddr>,

    /// URL of another node's /id document, for --bootstrap-kind http.
    #[arg(long, env = "SPEIL_HTTP_BOOTSTRAP_URL", required_if_eq("bootstrap_kind", "http"), value_parser = http_url)]
    pub(crate) http_bootstrap_url: Option<String>,

    /// Comma-separated multiaddrs of other nodes, with or without /p2p/<id>, for
    /// --bootstrap-kind static; e.g. /ip4/10.0.0.2/tcp/5001.
    #[arg(long, env = "SPEIL_STATIC_BOOTSTRAP_PEERS", value_delimiter = ',', required_if_eq("bootstrap_kind", "static"), value_parser = multiaddr)]
    pub(crate) static_bootstrap_peers: Vec<p2p::Multiaddr>,

    /// How often a connected node looks for new nodes.
    #[arg(long, env = "SPEIL_BOOTSTRAP_REFRESH_INTERVAL", default_value = "60s", value_parser = duration)]
    pub(crate) bootstrap_refresh_interval: Duration,

    /// How long `isolated` or `discovery_failed` may last before one ERROR line.
    #[arg(long, env = "SPEIL_BOOTSTRAP_ERROR_AFTER", default_value = "2m", value_parser = duration)]
    pub(crate) bootstrap_error_after: Duration,

    /// How often every connected peer is pinged.
    #[arg(long, env = "SPEIL_PEER_PING_INTERVAL", default_value = "5s", value_parser = duration)]
    pub(crate) peer_ping_interval: Duration,

    /// How long a ping may go unanswered. Two unanswered in a row disconnect the peer and drop
    /// it from the routing table (a hung or partitioned node): after about 2 x (interval +
    /// timeout). A peer whose process died is noticed at once, when its connection closes.
    #[arg(long, env = "SPEIL_PEER_PING_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub(crate) peer_ping_timeout: Duration,

    #[command(flatten)]
    pub(crate) bounds: P2pBoundArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum BootstrapKind {
    /// No other nodes are looked for; others may still bootstrap to this one.
    None,
    /// The A and AAAA records of --dns-bootstrap-domain.
    Dns,
    /// The /id document at --http-bootstrap-url.
    Http,
    /// The addresses in --static-bootstrap-peers.
    Static,
}

impl BootstrapKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            BootstrapKind::None => "none",
            BootstrapKind::Dns => "dns",
            BootstrapKind::Http => "http",
            BootstrapKind::Static => "static",
        }
    }
}

/// Flags of `speil configure`.
#[derive(Debug, Args)]
pub(crate) struct ConfigureArgs {
    /// Where containerd's registry host files live (its CRI registry config_path).
    #[arg(
        long,
        env = "SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH",
        default_value = "/etc/containerd/certs.d"
    )]
    pub(crate) containerd_registry_config_path: PathBuf,

    /// Registries to mirror, comma-separated URLs (https://docker.io,https://ghcr.io); empty for
    /// every registry, through `_default`. A registry given as http:// is reached upstream over
    /// plain HTTP.
    #[arg(long, env = "SPEIL_MIRRORED_REGISTRIES", value_delimiter = ',', value_parser = upstream_url)]
    pub(crate) mirrored_registries: Vec<(oci::Registry, bool)>,

    /// Mirrors containerd tries, in order, before the registry itself; the local Speil first.
    /// Comma-separated http:// URLs.
    #[arg(
        long,
        env = "SPEIL_MIRROR_TARGETS",
        value_delimiter = ',',
        required = true,
        value_parser = http_base_url
    )]
    pub(crate) mirror_targets: Vec<String>,

    /// Let containerd resolve tags through the mirrors (capability "resolve"); false sends tag
    /// lookups to the registry and only digests to Speil.
    #[arg(long, env = "SPEIL_RESOLVE_TAGS", default_value_t = true, action = clap::ArgAction::Set)]
    pub(crate) resolve_tags: bool,

    /// Keep each registry's existing hosts (and the certificate files they reference) after
    /// Speil's instead of replacing them.
    #[arg(long, env = "SPEIL_PREPEND_EXISTING")]
    pub(crate) prepend_existing: bool,

    /// A file holding `user:password`; sent as basic authentication to the mirrors.
    #[arg(long, env = "SPEIL_BASIC_AUTH_FILE", value_name = "FILE")]
    pub(crate) basic_auth_file: Option<PathBuf>,

    /// How long containerd (1.7 and later) may take to connect to a mirror before moving on.
    #[arg(long, env = "SPEIL_DIAL_TIMEOUT", default_value = "200ms", value_parser = duration)]
    pub(crate) dial_timeout: Duration,
}

/// Flags of `speil cleanup`.
#[derive(Debug, Args)]
pub(crate) struct CleanupArgs {
    /// Where containerd's registry host files live.
    #[arg(
        long,
        env = "SPEIL_CONTAINERD_REGISTRY_CONFIG_PATH",
        default_value = "/etc/containerd/certs.d"
    )]
    pub(crate) containerd_registry_config_path: PathBuf,

    /// After cleaning up, answer 200 at /healthz on this address until SIGTERM, so
    /// `speil cleanup-wait` (or a readiness probe) can tell it is done.
    #[arg(long, env = "SPEIL_ADDR", value_parser = socket_addr)]
    pub(crate) addr: Option<SocketAddr>,
}

/// Flags of `speil cleanup-wait`.
#[derive(Debug, Args)]
pub(crate) struct CleanupWaitArgs {
    /// The /healthz URL `speil cleanup --addr` serves once done.
    #[arg(long, env = "SPEIL_PROBE_ENDPOINT", value_parser = http_url)]
    pub(crate) probe_endpoint: String,

    /// How often to ask.
    #[arg(long, env = "SPEIL_PROBE_INTERVAL", default_value = "1s", value_parser = duration)]
    pub(crate) probe_interval: Duration,

    /// Give up after this long (exit 1).
    #[arg(long, env = "SPEIL_TIMEOUT", default_value = "5m", value_parser = duration)]
    pub(crate) timeout: Duration,
}

/// Flags of `speil status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// The node's metrics address (its --metrics-addr), as a URL.
    #[arg(long, env = "SPEIL_ADDR", default_value = "http://127.0.0.1:9090", value_parser = status_url)]
    pub(crate) addr: String,

    /// Print JSON instead of text (the checks and the node's status document, or with
    /// --cluster one object per node).
    #[arg(long, env = "SPEIL_JSON")]
    pub(crate) json: bool,

    /// Ask every node this node knows (and the nodes they know) and print one row per node.
    #[arg(long, env = "SPEIL_CLUSTER")]
    pub(crate) cluster: bool,

    /// The metrics port of the other nodes, for --cluster; the port of --addr when absent (a
    /// DaemonSet).
    #[arg(long, env = "SPEIL_PEER_METRICS_PORT")]
    pub(crate) peer_metrics_port: Option<u16>,

    /// How long each node may take to answer.
    #[arg(long, env = "SPEIL_TIMEOUT", default_value = "5s", value_parser = duration)]
    pub(crate) timeout: Duration,

    /// Ask again (every 250 ms) until the result is ok or this long has passed, then print the
    /// last answer: for scripts that start a node and go on once it works.
    #[arg(long, env = "SPEIL_WAIT", value_parser = duration)]
    pub(crate) wait: Option<Duration>,
}

/// Flags of `speil demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the sample image is written (created if absent, reused if present).
    #[arg(
        long,
        env = "SPEIL_DIR",
        value_name = "DIR",
        default_value = "speil-demo"
    )]
    pub(crate) dir: PathBuf,

    /// Write no sample image, only an empty layout: a second demo node that gets the sample
    /// from the first one through the P2P network.
    #[arg(long, env = "SPEIL_NO_SAMPLE")]
    pub(crate) no_sample: bool,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Logging flags, shared by commands that run a node.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Log level or filter: error, warn, info, debug, trace, or directives such as
    /// "info,registry=debug" (a level, then target=level pairs).
    #[arg(long, env = "SPEIL_LOG_LEVEL", default_value = "info", value_parser = log_filter)]
    pub(crate) log_level: String,

    /// Log format.
    #[arg(long, env = "SPEIL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}
