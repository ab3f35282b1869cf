//! Shutdown: SIGTERM or SIGINT cancels the one token every subsystem's token descends from.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Cancels `token` on the first SIGTERM or SIGINT; the watching task (on `tasks`) ends when
/// `token` is cancelled.
pub(crate) fn on_signal(token: CancellationToken, tasks: &TaskTracker) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tasks.spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            () = token.cancelled() => return,
        };
        tracing::info!(signal = name, "shutting down");
        token.cancel();
    });
    Ok(())
}
