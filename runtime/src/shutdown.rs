//! Shutdown on SIGTERM (what Kubernetes sends) or SIGINT (Ctrl-C).

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

/// A signal handler could not be installed.
#[derive(Debug, thiserror::Error)]
#[error("installing the {signal} handler")]
pub struct SignalError {
    /// SIGTERM or SIGINT.
    pub signal: &'static str,
    /// The operating system's error.
    #[source]
    pub source: std::io::Error,
}

/// Returns a token cancelled on the first SIGTERM or SIGINT. The handlers are installed
/// before this returns, so a signal sent afterwards is never missed. Must be called within a
/// Tokio runtime.
pub fn on_signals() -> Result<CancellationToken, SignalError> {
    let install = |kind, name| {
        signal(kind).map_err(|source| SignalError {
            signal: name,
            source,
        })
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM")?;
    let mut int = install(SignalKind::interrupt(), "SIGINT")?;
    let token = CancellationToken::new();
    let cancel = token.clone();
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "shutting down");
        cancel.cancel();
    });
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sigterm_cancels_the_token() {
        let token = on_signals().unwrap();
        assert!(!token.is_cancelled());
        rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::TERM)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(10), token.cancelled())
            .await
            .expect("SIGTERM did not cancel the token within 10 s");
    }
}
