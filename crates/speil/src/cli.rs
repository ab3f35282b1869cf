//! The command line as typed: flags, their defaults, their `SPEIL_<FLAG>` environment variables,
//! and the validation clap does before any work starts (a bad value exits 2 naming the flag).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    /// Print the version.
    Version,
}

/// Flags of `speil run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// Serve the images of this OCI image-layout directory (oci-layout, index.json, blobs/).
    #[arg(long, env = "SPEIL_OCI_DIR", value_name = "DIR")]
    pub(crate) oci_dir: Option<PathBuf>,

    /// How often the OCI directory's index.json is checked for added or removed images.
    #[arg(long, env = "SPEIL_STORE_POLL_INTERVAL", default_value = "1s", value_parser = duration)]
    pub(crate) store_poll_interval: Duration,

    /// Address of the registry (the OCI distribution API containerd pulls from).
    #[arg(long, env = "SPEIL_REGISTRY_ADDR", default_value = "0.0.0.0:5000")]
    pub(crate) registry_addr: SocketAddr,

    /// Address of the metrics endpoint (/metrics).
    #[arg(long, env = "SPEIL_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub(crate) metrics_addr: SocketAddr,

    #[command(flatten)]
    pub(crate) log: LogArgs,

    /// How long in-flight responses may take to finish after SIGTERM or SIGINT.
    #[arg(long, env = "SPEIL_SHUTDOWN_TIMEOUT", default_value = "20s", value_parser = duration)]
    pub(crate) shutdown_timeout: Duration,
}

/// Flags of `speil demo`.
#[derive(Debug, Args)]
pub(crate) struct DemoArgs {
    /// Where the sample image is written (created if absent, reused if present).
    #[arg(
        long,
        env = "SPEIL_DEMO_DIR",
        value_name = "DIR",
        default_value = "speil-demo"
    )]
    pub(crate) dir: PathBuf,

    #[command(flatten)]
    pub(crate) run: RunArgs,
}

/// Logging flags, shared by commands that run a node.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// Log level or filter: error, warn, info, debug, trace, or directives such as
    /// "info,speil_registry=debug".
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

/// A duration such as `500ms`, `2s` or `5m`.
fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (expected a duration such as 500ms, 2s or 5m)"))
}

fn log_filter(s: &str) -> Result<String, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map(|_| s.to_owned())
        .map_err(|e| format!("{e} (expected error, warn, info, debug, trace or filter directives)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_name_their_flag() {
        for (flag, value) in [
            ("--registry-addr", "nowhere"),
            ("--metrics-addr", "1.2.3.4"),
            ("--log-format", "xml"),
            ("--store-poll-interval", "soon"),
            ("--log-level", "info,=x=y"),
        ] {
            let err = Cli::try_parse_from(["speil", "run", flag, value]).unwrap_err();
            assert!(err.to_string().contains(flag), "{flag}: {err}");
        }
    }
}
