//! The controller program's wiring.
//!
//! ```text
//!   signals ──► shutdown token ──┬──► leader election ──(term token per leadership)──►
//!                                │        reconciler::run_term (watches, reconciles, writes)
//!                                └──► server stops
//!   registry (Metrics), readiness ──► Server (/healthz /readyz /metrics)
//! ```
//!
//! Readiness: a replica is ready once it has read the Lease (the API server answers), leader
//! or not, so that a standby does not hold up a rollout.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_runtime::{Readiness, Server, ServerError, kube_client, metrics, shutdown};

use crate::leader::{self, LeaseConfig};
use crate::metrics::Metrics;
use crate::ratelimit::RateLimiter;
use crate::reconciler::{self, Settings};

/// What the controller is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// A kubeconfig file; `None`: in-cluster or default kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// Serve only Services of this `spec.loadBalancerClass`; `None`: Services without a class.
    pub load_balancer_class: Option<String>,
    /// The leader Lease and its timing.
    pub lease: LeaseConfig,
    /// Client-side limit on API requests per second (0: none) and its burst.
    pub kube_api_qps: f64,
    pub kube_api_burst: u32,
    /// Services reconciled at once.
    pub concurrency: u16,
    /// How long a freed address is avoided.
    pub reuse_delay: Duration,
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
    /// Leader election could not run.
    #[error("electing a leader")]
    Leader(#[source] leader::LeaderError),
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let shutdown = shutdown::on_signals().map_err(RunError::Signals)?;
    config
        .lease
        .check()
        .map_err(|e| RunError::Leader(leader::LeaderError::Timing(e)))?;
    let client = kube_client::client(config.kubeconfig.as_deref())
        .await
        .map_err(RunError::Client)?;
    let mut registry = metrics::registry("controller", env!("CARGO_PKG_VERSION"));
    let metrics = Metrics::register(&mut registry);
    let readiness = Readiness::default();
    let server = Server::bind(config.metrics_addr, Arc::new(registry), readiness.clone())
        .await
        .map_err(RunError::Server)?;
    tracing::info!(
        addr = %server.local_addr(),
        load_balancer_class = config.load_balancer_class.as_deref().unwrap_or("<none>"),
        identity = %config.lease.identity,
        "serving /healthz, /readyz and /metrics"
    );
    let server = tokio::spawn(server.run(shutdown.clone()));

    let settings = Settings {
        class: config.load_balancer_class.clone(),
        concurrency: config.concurrency,
        reuse_delay: config.reuse_delay,
        pool_status_interval: Duration::from_secs(1),
        identity: config.lease.identity.clone(),
        event_queue: 20_000,
    };
    let limiter = Arc::new(RateLimiter::new(config.kube_api_qps, config.kube_api_burst));
    let ready = readiness.clone();
    let lead_client = client.clone();
    let lead_metrics = metrics.clone();
    let elected = leader::run(
        client,
        config.lease,
        metrics,
        move || ready.set(true),
        shutdown.clone(),
        move |term| {
            reconciler::run_term(
                lead_client.clone(),
                settings.clone(),
                lead_metrics.clone(),
                limiter.clone(),
                term,
            )
        },
    )
    .await;
    // Leader election ends on shutdown (or fails at start): stop serving either way.
    shutdown.cancel();
    let served = server.await;
    elected.map_err(RunError::Leader)?;
    match served {
        Ok(result) => result.map_err(RunError::Server)?,
        Err(e) => tracing::error!(error = %e, "the health server task failed"),
    }
    tracing::info!("stopped");
    Ok(())
}
