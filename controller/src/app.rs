//! The controller program's wiring. For now it serves health and metrics and waits for
//! SIGTERM; the allocator and reconciler arrive with their issues.
//!
//! ```text
//!   signals ──► shutdown token ──► server stops ──► run returns Ok
//!   registry, readiness ──► Server (/healthz /readyz /metrics)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ferrolb_runtime::{Readiness, Server, ServerError, kube_client, metrics, shutdown};

/// What the controller is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// A kubeconfig file; `None`: in-cluster or default kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// Serve only Services of this `spec.loadBalancerClass`; `None`: Services without a class.
    pub load_balancer_class: Option<String>,
}

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Signal handlers could not be installed.
    #[error("preparing for shutdown signals")]
    Signals(#[source] shutdown::SignalError),
    /// No Kubernetes client.
    #[error("connecting to Kubernetes")]
    Client(#[source] kube_client::ClientError),
    /// The health and metrics server failed.
    #[error("serving health and metrics")]
    Server(#[source] ServerError),
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let shutdown = shutdown::on_signals().map_err(RunError::Signals)?;
    let _client = kube_client::client(config.kubeconfig.as_deref())
        .await
        .map_err(RunError::Client)?;
    let registry = metrics::registry("controller", env!("CARGO_PKG_VERSION"));
    let readiness = Readiness::default();
    let server = Server::bind(config.metrics_addr, Arc::new(registry), readiness.clone())
        .await
        .map_err(RunError::Server)?;
    tracing::info!(
        addr = %server.local_addr(),
        load_balancer_class = config.load_balancer_class.as_deref().unwrap_or("<none>"),
        "serving /healthz, /readyz and /metrics"
    );
    // Nothing to wait for yet: the reconciler will set this once its caches are synced.
    readiness.set(true);
    server.run(shutdown).await.map_err(RunError::Server)?;
    tracing::info!("stopped");
    Ok(())
}
