//! ferrolb-speaker: makes assigned addresses reachable (L2 or BGP).

pub mod announce;
pub mod app;
pub mod bgp;
pub mod election;
pub mod l2;
pub mod membership;
pub mod sys;
pub mod world;

pub use app::{Config, RunError, run};
