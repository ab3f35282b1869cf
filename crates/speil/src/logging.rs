//! Log output: text or JSON lines on stderr, filtered by `--log-level`.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// libp2p logs transient, self-healing conditions (a bootstrap with no known peers yet, a peer
/// that closed a stream) as WARN; Speil reports those through its own state, metrics and log
/// lines, so libp2p is limited to ERROR unless the filter names it.
const QUIET_DEPENDENCIES: &str = "libp2p=error,yamux=error,multistream_select=error";

/// Installs the global subscriber. The filter was validated when the flags were parsed.
pub(crate) fn init(args: &LogArgs) {
    let mut directives = args.log_level.clone();
    if !directives.contains("libp2p") {
        directives = format!("{directives},{QUIET_DEPENDENCIES}");
    }
    let filter = EnvFilter::builder().parse_lossy(&directives);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
