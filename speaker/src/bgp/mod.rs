//! BGP-4 for the speaker: codec, UPDATE packing, state machine and sessions. No
//! Kubernetes dependency: the speaker maps its objects onto [`PeerConfig`] and
//! [`RouteSet`] and hands them to a [`BgpSpeaker`], which reconciles by diff.
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use ferrolb_speaker::bgp::*;
//! # async fn example(registry: &mut prometheus_client::registry::Registry) {
//! let mut speaker = BgpSpeaker::new(Some(BgpMetrics::register(registry)));
//! let peer = PeerKey::new("127.0.0.1".parse().unwrap(), 179);
//! let mut config = PeerConfig::new(peer, 64700, 64601, "192.0.2.12".parse().unwrap());
//! config.graceful_restart = Some(std::time::Duration::from_secs(120));
//! speaker.set_peers(vec![config]);
//!
//! let node = Arc::new(RouteAttrs::new("192.0.2.12".parse().unwrap()));
//! let mut routes = RouteSet::new();
//! routes.insert("198.51.100.10/32".parse().unwrap(), node).unwrap();
//! speaker.set_routes(peer, routes);
//!
//! let status = speaker.status(); // watch: state, last error, announced count, uptime
//! # drop(status);
//! speaker.shutdown(Shutdown::Restart).await;
//! # }
//! ```
//!
//! Layers, bottom up: [`wire`] (one type per message), [`route`] and [`pack`] (route
//! sets, their differences, UPDATEs), [`fsm`] (RFC 4271 state machine, no I/O),
//! [`session`] (the tokio task around one machine), [`speaker`] (all sessions).

pub mod config;
pub mod fsm;
pub mod metrics;
pub mod pack;
pub mod route;
pub mod session;
pub mod speaker;
pub mod wire;

pub use config::{Password, PeerConfig, PeerKey};
pub use fsm::{ResetReason, SessionError, State};
pub use metrics::BgpMetrics;
pub use route::{RouteAttrs, RouteDiff, RouteError, RouteSet};
pub use session::PeerStatus;
pub use speaker::{BgpSpeaker, Shutdown};
