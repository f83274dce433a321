//! BGP-4 for the speaker: codec, UPDATE packing, state machine and sessions.
//! No Kubernetes dependency: the speaker maps its objects onto [`PeerConfig`] and
//! [`RouteSet`] and hands them to a [`BgpSpeaker`].

pub mod pack;
pub mod route;
pub mod wire;

pub use route::{RouteAttrs, RouteDiff, RouteError, RouteSet};
pub mod config;
pub mod fsm;

pub use config::{Password, PeerConfig, PeerKey};
pub use fsm::{ResetReason, SessionError, State};
pub mod metrics;
pub mod session;
pub mod speaker;

pub use metrics::BgpMetrics;
pub use session::PeerStatus;
pub use speaker::{BgpSpeaker, Shutdown};
