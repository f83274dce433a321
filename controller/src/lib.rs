//! ferrolb-controller: assigns addresses from pools to LoadBalancer Services.
//!
//! - [`allocator`]: the pure allocator (pools, families, sharing, stickiness).
//! - [`convert`]: Kubernetes objects into allocator inputs.
//! - [`engine`]: the allocator with the reconciler's bookkeeping; returns what to write.
//! - [`status`], [`pool_status`]: what Services and pools should carry (pure).
//! - [`reconciler`]: watches, the start-up barrier, writes (one term of leadership).
//! - [`leader`]: Lease-based leader election.
//! - [`ratelimit`], [`metrics`]: the client-side request limit and the exported metrics.
//! - [`migrate`]: `ferrolb-controller convert`, MetalLB's configuration into ferrolb's.

pub mod allocator;
pub mod app;
pub mod convert;
pub mod engine;
pub mod leader;
pub mod metrics;
pub mod migrate;
pub mod pool_status;
pub mod ratelimit;
pub mod reconciler;
pub mod status;

pub use app::{Config, RunError, run};
