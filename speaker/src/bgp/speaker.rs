//! The set of BGP sessions of one speaker, reconciled by diff.
//!
//! ```text
//!                 set_peers / set_routes / set_all_routes
//!                              │
//!                              ▼
//!                         BgpSpeaker ──── status() ──► watch<BTreeMap<PeerKey, PeerStatus>>
//!            ┌─────────────────┼─────────────────┐            ▲
//!   routes (watch) + stop (mpsc) per peer        │            │ each session writes
//!            ▼                 ▼                 ▼            │ its own entry
//!      session task      session task      session task ──────┘
//! ```
//!
//! Each peer has its own task: a broken peer (wrong AS, bad password, garbage, silence)
//! only ever resets its own session.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::config::{PeerConfig, PeerKey};
use super::fsm::{SeededJitter, StopMode};
use super::metrics::BgpMetrics;
use super::route::RouteSet;
use super::session::{self, Control, PeerStatus, SessionArgs, StatusMap};
use super::wire::CeaseSubcode;

/// How [`BgpSpeaker::shutdown`] leaves the peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// For a restart: close without NOTIFICATION where graceful restart was negotiated,
    /// so that those peers keep our routes until the new process has re-sent them; Cease /
    /// administrative reset to the others, which drop our routes at once either way.
    Restart,
    /// For good: Cease / administrative shutdown; peers withdraw our routes at once.
    Withdraw,
}

/// A stopping session's task, done when its connection is closed; awaitable by several.
type Stopping = Shared<BoxFuture<'static, ()>>;

#[derive(Debug)]
struct Session {
    config: Arc<PeerConfig>,
    routes: watch::Sender<Arc<RouteSet>>,
    control: mpsc::Sender<Control>,
    task: JoinHandle<()>,
}

/// Owns one BGP session per configured peer.
#[derive(Debug)]
pub struct BgpSpeaker {
    sessions: BTreeMap<PeerKey, Session>,
    /// Desired routes per peer, also for peers not (yet) configured.
    routes: BTreeMap<PeerKey, Arc<RouteSet>>,
    status: watch::Sender<StatusMap>,
    metrics: Option<BgpMetrics>,
    /// Sessions being stopped (done when their connection is closed), awaited by
    /// `shutdown` and by a session restarting with a new configuration.
    stopping: Vec<Stopping>,
    seed: u64,
}

static SESSION_IDS: AtomicU64 = AtomicU64::new(1);

impl BgpSpeaker {
    /// A speaker without sessions. Must be used within a tokio runtime.
    pub fn new(metrics: Option<BgpMetrics>) -> Self {
        Self {
            sessions: BTreeMap::new(),
            routes: BTreeMap::new(),
            status: watch::Sender::new(BTreeMap::new()),
            metrics,
            stopping: Vec::new(),
            seed: RandomState::new().hash_one(std::process::id()),
        }
    }

    /// Status of every configured peer, updated as sessions change.
    pub fn status(&self) -> watch::Receiver<BTreeMap<PeerKey, PeerStatus>> {
        self.status.subscribe()
    }

    /// Configured peers.
    pub fn peers(&self) -> impl Iterator<Item = &PeerConfig> {
        self.sessions.values().map(|s| s.config.as_ref())
    }

    /// Makes the running sessions match `peers`: starts new ones, stops removed ones
    /// (Cease / peer de-configured) and restarts those whose configuration changed
    /// (silently where graceful restart was negotiated, else Cease / other configuration
    /// change; the new session dials once the old connection is closed). Unchanged
    /// sessions are not touched. When two entries name the same peer the last wins.
    pub fn set_peers(&mut self, peers: Vec<PeerConfig>) {
        let desired: BTreeMap<PeerKey, PeerConfig> =
            peers.into_iter().map(|p| (p.peer, p)).collect();
        let removed: Vec<PeerKey> = self
            .sessions
            .keys()
            .filter(|k| !desired.contains_key(k))
            .copied()
            .collect();
        for key in removed {
            self.stop(&key, StopMode::Notify(CeaseSubcode::PeerDeconfigured));
            self.status.send_modify(|m| {
                m.remove(&key);
            });
            if let Some(m) = &self.metrics {
                m.peer(&key).remove();
            }
        }
        for (key, config) in desired {
            match self.sessions.get(&key) {
                Some(s) if *s.config == config => {}
                Some(_) => {
                    // Like a restart: with graceful restart negotiated the peer keeps our
                    // routes until the new session has sent them again, so changing a
                    // BGPPeer does not withdraw every Service for a moment. The new
                    // session dials only after the old connection is closed: a peer seeing
                    // it while the old one is up could take it for a restart even where
                    // the old session sent a Cease.
                    let old = self.stop(
                        &key,
                        StopMode::Restart(CeaseSubcode::OtherConfigurationChange),
                    );
                    self.start(config, old);
                }
                None => self.start(config, None),
            }
        }
    }

    /// Sets the routes one peer should have. Routes for a peer that is not configured
    /// are kept and sent once it is.
    pub fn set_routes(&mut self, peer: PeerKey, routes: RouteSet) {
        let routes = Arc::new(routes);
        if let Some(s) = self.sessions.get(&peer) {
            s.routes.send_if_modified(|current| {
                let changed = **current != *routes;
                if changed {
                    *current = Arc::clone(&routes);
                }
                changed
            });
        }
        if routes.is_empty() {
            self.routes.remove(&peer);
        } else {
            self.routes.insert(peer, routes);
        }
    }

    /// Sets the routes of every peer at once; peers missing from `routes` get none.
    pub fn set_all_routes(&mut self, mut routes: BTreeMap<PeerKey, RouteSet>) {
        // A set: a peer both configured and holding routes must be visited once, or its
        // second visit would find its entry taken and clear the routes just given.
        let peers: BTreeSet<PeerKey> = self
            .routes
            .keys()
            .chain(self.sessions.keys())
            .copied()
            .collect();
        for peer in peers {
            let set = routes.remove(&peer).unwrap_or_default();
            self.set_routes(peer, set);
        }
        for (peer, set) in routes {
            self.set_routes(peer, set);
        }
    }

    /// Stops every session and waits until their connections are closed.
    pub async fn shutdown(mut self, how: Shutdown) {
        let mode = match how {
            Shutdown::Restart => StopMode::Restart(CeaseSubcode::AdministrativeReset),
            Shutdown::Withdraw => StopMode::Notify(CeaseSubcode::AdministrativeShutdown),
        };
        let keys: Vec<PeerKey> = self.sessions.keys().copied().collect();
        for key in keys {
            self.stop(&key, mode);
        }
        for done in self.stopping.drain(..) {
            done.await;
        }
    }

    fn start(&mut self, config: PeerConfig, after: Option<Stopping>) {
        let key = config.peer;
        let config = Arc::new(config);
        let session_id = SESSION_IDS.fetch_add(1, Ordering::Relaxed);
        let routes = self.routes.get(&key).cloned().unwrap_or_default();
        let (routes_tx, routes_rx) = watch::channel(routes);
        let (control_tx, control_rx) = mpsc::channel(4);
        self.status.send_modify(|m| {
            m.insert(key, PeerStatus::new(session_id));
        });
        let task = tokio::spawn(session::run(SessionArgs {
            config: Arc::clone(&config),
            routes: routes_rx,
            control: control_rx,
            status: self.status.clone(),
            session_id,
            metrics: self.metrics.as_ref().map(|m| m.peer(&key)),
            jitter: Box::new(SeededJitter::new(
                RandomState::new().hash_one((self.seed, key, session_id)),
            )),
            after,
        }));
        self.sessions.insert(
            key,
            Session {
                config,
                routes: routes_tx,
                control: control_tx,
                task,
            },
        );
    }

    /// Stops a session; the returned future is done once its connection is closed.
    fn stop(&mut self, key: &PeerKey, mode: StopMode) -> Option<Stopping> {
        let s = self.sessions.remove(key)?;
        // A full channel means a stop is already queued; dropping the sender then stops
        // the task as well.
        let _ = s.control.try_send(Control::Stop(mode));
        self.stopping.retain(|done| done.peek().is_none());
        let done = s.task.map(drop).boxed().shared();
        self.stopping.push(done.clone());
        Some(done)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr};

    use super::*;
    use crate::bgp::route::RouteAttrs;

    fn routes(prefixes: &[&str]) -> RouteSet {
        let attrs = Arc::new(RouteAttrs::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 11))));
        let mut set = RouteSet::new();
        for p in prefixes {
            set.insert(p.parse().unwrap(), Arc::clone(&attrs)).unwrap();
        }
        set
    }

    fn desired(speaker: &BgpSpeaker, peer: &PeerKey) -> RouteSet {
        RouteSet::clone(&speaker.sessions[peer].routes.borrow())
    }

    /// The speaker calls set_all_routes with the same plan on every world change: the routes
    /// of a configured peer must stay put, not flip between the set and nothing.
    #[tokio::test]
    async fn set_all_routes_repeated_keeps_a_configured_peers_routes() {
        // Port 9 on loopback: nothing listens, the session just keeps retrying.
        let peer = PeerKey::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
        let mut speaker = BgpSpeaker::new(None);
        speaker.set_peers(vec![PeerConfig::new(
            peer,
            64700,
            64600,
            Ipv4Addr::new(192, 0, 2, 11),
        )]);
        let want = routes(&["198.51.100.1/32", "198.51.100.2/32"]);
        for _ in 0..3 {
            speaker.set_all_routes(BTreeMap::from([(peer, want.clone())]));
            assert_eq!(desired(&speaker, &peer), want);
        }
        speaker.set_all_routes(BTreeMap::new());
        assert!(desired(&speaker, &peer).is_empty());
        speaker.shutdown(Shutdown::Withdraw).await;
    }

    /// Routes given before the peer is configured are sent once it is.
    #[tokio::test]
    async fn routes_wait_for_their_peer() {
        let peer = PeerKey::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
        let mut speaker = BgpSpeaker::new(None);
        let want = routes(&["198.51.100.3/32"]);
        speaker.set_all_routes(BTreeMap::from([(peer, want.clone())]));
        speaker.set_all_routes(BTreeMap::from([(peer, want.clone())]));
        speaker.set_peers(vec![PeerConfig::new(
            peer,
            64700,
            64600,
            Ipv4Addr::new(192, 0, 2, 11),
        )]);
        assert_eq!(desired(&speaker, &peer), want);
        speaker.shutdown(Shutdown::Withdraw).await;
    }
}
