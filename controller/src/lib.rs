//! ferrolb-controller: assigns addresses from pools to LoadBalancer Services.

pub mod allocator;
pub mod app;

pub use app::{Config, RunError, run};
