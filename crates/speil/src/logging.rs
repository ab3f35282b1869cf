//! Log output: text or JSON lines on stderr, filtered by `--log-level`.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// libp2p logs transient, self-healing conditions (a bootstrap with no known peers yet, a peer
/// that closed a stream) as WARN; Speil reports those through its own state, metrics and log
/// lines, so libp2p is limited to ERROR unless the filter names it.
const QUIET_DEPENDENCIES: &str = "libp2p=error,yamux=error,multistream_select=error";

/// Colour only for a person at a terminal: never in a pod's log file or a pipe, and never when
/// NO_COLOR is set (<https://no-color.org>).
fn colour() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber. The filter was validated when the flags were parsed.
pub(crate) fn init(args: &LogArgs) {
    let mut directives = args.log_level.clone();
    if !directives.contains("libp2p") {
        directives = format!("{directives},{QUIET_DEPENDENCIES}");
    }
    let filter = EnvFilter::builder().parse_lossy(&directives);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour())
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
