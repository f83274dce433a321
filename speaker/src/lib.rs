//! ferrolb-speaker: makes assigned addresses reachable (L2 or BGP).

pub mod announce;
pub mod app;
pub mod bgp;
pub mod election;
pub mod l2;
pub mod membership;
pub mod metrics;
pub mod pace;
pub mod status;
pub mod sys;
pub mod watch;
pub mod world;

pub use app::{Config, RunError, run};
