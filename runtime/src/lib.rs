//! What both ferrolb programs share at run time: JSON logging, the `/healthz`, `/readyz` and
//! `/metrics` endpoints, and shutdown on SIGTERM/SIGINT.
//!
//! ```text
//!   main ── logging::init(filter)
//!     │
//!     ├── shutdown::on_signals() ──► CancellationToken ──┬──► program tasks stop
//!     │                                                  └──► Server::run returns
//!     └── Server::bind(addr, registry, readiness)
//!            GET /healthz  200 while the process serves
//!            GET /readyz   200 once the program calls readiness.set(true), else 503
//!            GET /metrics  the registry, OpenMetrics text
//! ```
//!
//! Nothing here is global except the one tracing subscriber: the metrics registry, the
//! readiness flag and the Kubernetes client are made here but owned and passed on by the
//! program.

pub mod kube_client;
pub mod logging;
pub mod metrics;
pub mod probe;
pub mod server;
pub mod shutdown;

pub use server::{Readiness, Server, ServerError};
pub use tokio_util::sync::CancellationToken;
