//! The HTTP server for `/healthz`, `/readyz` and `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// The content type of the OpenMetrics text format.
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Whether the program is ready to do its job; `/readyz` answers 200 only when it is.
/// Clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Sets the flag.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Relaxed);
    }

    /// Reads the flag.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The address could not be bound (in use, or not local).
    #[error("binding the health and metrics server to {addr}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The bound socket's address could not be read.
    #[error("reading the health and metrics server's address")]
    LocalAddr(#[source] std::io::Error),
    /// Accepting connections failed.
    #[error("serving health and metrics")]
    Serve(#[source] std::io::Error),
}

#[derive(Debug, Clone)]
struct Endpoints {
    registry: Arc<Registry>,
    readiness: Readiness,
}

/// A bound, not yet running, health and metrics server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    local_addr: SocketAddr,
    endpoints: Endpoints,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port; see [`Server::local_addr`]).
    pub async fn bind(
        addr: SocketAddr,
        registry: Arc<Registry>,
        readiness: Readiness,
    ) -> Result<Self, ServerError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ServerError::Bind { addr, source })?;
        let local_addr = listener.local_addr().map_err(ServerError::LocalAddr)?;
        Ok(Self {
            listener,
            local_addr,
            endpoints: Endpoints {
                registry,
                readiness,
            },
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` is cancelled, then finishes the requests in flight.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), ServerError> {
        let router = Router::new()
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(self.endpoints);
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .map_err(ServerError::Serve)
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(endpoints): State<Endpoints>) -> (StatusCode, &'static str) {
    if endpoints.readiness.is_ready() {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    }
}

async fn metrics(State(endpoints): State<Endpoints>) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, &endpoints.registry) {
        Ok(()) => ([(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)], body).into_response(),
        Err(_) => {
            tracing::error!("encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe;
    use prometheus_client::metrics::counter::Counter;

    #[tokio::test]
    async fn endpoints_answer_and_shutdown_stops_the_server() {
        let mut registry = Registry::with_prefix("ferrolb");
        let requests = Counter::<u64>::default();
        registry.register(
            "test_requests",
            "Requests seen by the test",
            requests.clone(),
        );
        requests.inc_by(3);
        let readiness = Readiness::default();
        let server = Server::bind(
            "127.0.0.1:0".parse().unwrap(),
            Arc::new(registry),
            readiness.clone(),
        )
        .await
        .unwrap();
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0);
        let shutdown = CancellationToken::new();
        let running = tokio::spawn(server.run(shutdown.clone()));

        let health = probe::get(addr, "/healthz").await.unwrap();
        assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));

        assert_eq!(probe::get(addr, "/readyz").await.unwrap().status, 503);
        readiness.set(true);
        assert_eq!(probe::get(addr, "/readyz").await.unwrap().status, 200);

        let metrics = probe::get(addr, "/metrics").await.unwrap();
        assert_eq!(metrics.status, 200);
        assert_eq!(metrics.content_type.as_deref(), Some(METRICS_CONTENT_TYPE));
        assert!(
            metrics.body.contains("ferrolb_test_requests_total 3"),
            "{}",
            metrics.body
        );
        assert!(metrics.body.ends_with("# EOF\n"), "{}", metrics.body);

        assert_eq!(probe::get(addr, "/nope").await.unwrap().status, 404);

        shutdown.cancel();
        running.await.unwrap().unwrap();
        assert!(probe::get(addr, "/healthz").await.is_err());
    }

    #[tokio::test]
    async fn binding_a_taken_port_names_the_address() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Server::bind(addr, Arc::default(), Readiness::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("binding the health and metrics server to {addr}")
        );
    }
}
