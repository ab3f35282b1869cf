//! Log output: text or JSON lines on stderr, filtered by `--log-level`.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

/// Installs the global subscriber. The filter was validated when the flags were parsed.
pub(crate) fn init(args: &LogArgs) {
    let filter = EnvFilter::builder().parse_lossy(&args.log_level);
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
