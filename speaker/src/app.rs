//! The speaker program's wiring: tasks, channels, and the core loop around the pure function.
//!
//! ```text
//!  API server ──watch tasks (watch.rs)──▶ mpsc<Msg> ──┐
//!  membership (SWIM, UDP 7946) ── watch<LiveMembers> ─┤
//!  netlink ── interfaces::watch_links ─ watch<Links> ─┤
//!                                                     ▼
//!                          ┌─────────────── core (this module) ────────────────┐
//!                          │ World::apply → Dirty                              │
//!                          │ Planner::update(world, dirty) → Plan (pure)       │
//!                          │ diff-driven drivers:                               │
//!                          │   L2Announcer::set_links / set_owned  ─▶ AF_PACKET │
//!                          │   BgpSpeaker::set_peers / set_all_routes ─▶ TCP 179│
//!                          │   membership.set_peers (Nodes' InternalIPs)        │
//!                          │   SecretWatches::set (Secrets the peers name)      │
//!                          └──────────┬───────────────────────┬────────────────┘
//!                                     │ watch<Desired>        │ gauges
//!                                     ▼                       ▼
//!                    status writer (status.rs):        /metrics /readyz /healthz
//!                    ServiceL2Status, ServiceBGPStatus,  (ferrolb-runtime Server)
//!                    Event NodeAnnouncing
//!
//!  BgpSpeaker::status() ─ watch ─┐   watch<BGPPeer name per session> (from the core)
//!                                ▼   ▼
//!                    session reporter (status.rs): Events on the BGPPeers
//! ```
//!
//! Start-up: nothing is announced until every watch has listed once (the world is synced)
//! and, with membership on, the membership has started and either sees every Ready node or
//! `join_timeout` passed — a speaker that announced before hearing from the others would
//! believe itself the only node and answer for every address. The membership itself starts
//! only once the world is synced, so that the others hand addresses over to a speaker that
//! is ready to announce them. `/readyz` turns ready at the same moment.
//!
//! The API server going away stops nothing: the world keeps its last state, the membership
//! keeps detecting failures, and the pure function re-elects owners from both.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_runtime::{
    CancellationToken, Readiness, Server, ServerError, kube_client, metrics, shutdown,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::announce::{NotAnnounced, Plan, Planner};
use crate::bgp::{BgpMetrics, BgpSpeaker, PeerConfig, PeerKey, RouteSet, Shutdown};
use crate::l2::interfaces::{self, LinkTable};
use crate::l2::{AnnouncerConfig, InterfaceName, L2Announcer, L2Metrics};
use crate::membership::{
    LiveMembers, Membership, MembershipConfig, MembershipMetrics, NodeName, ProbeTiming,
};
use crate::metrics::SpeakerMetrics;
use crate::pace::{Pacer, sleep_until_opt};
use crate::status::{self, Desired, Wanted};
use crate::watch::{self as watches, KINDS, Msg, Scope, SecretWatches};
use crate::world::{Dirty, Kind, Update, World};

/// The key in the membership Secret's data that holds the shared HMAC key.
pub const MEMBERSHIP_SECRET_KEY: &str = "key";

/// What the speaker is told on its command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Kubernetes Node this speaker runs on.
    pub node_name: String,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub metrics_addr: SocketAddr,
    /// A kubeconfig file; `None`: in-cluster or default kubeconfig.
    pub kubeconfig: Option<PathBuf>,
    /// The `spec.loadBalancerClass` served; `None`: Services without a class.
    pub load_balancer_class: Option<String>,
    /// `None`: membership off, speaker liveness is Node readiness.
    pub membership: Option<MembershipSettings>,
    /// Re-announce owned L2 addresses this often (gratuitous ARP / unsolicited NA).
    pub l2_reannounce: Option<Duration>,
}

/// How the speakers find and authenticate each other.
#[derive(Debug, Clone)]
pub struct MembershipSettings {
    pub port: u16,
    /// The address the others reach this speaker at; `None`: the Node's first InternalIP.
    pub advertise_ip: Option<IpAddr>,
    /// The Secret holding the shared key (data key [`MEMBERSHIP_SECRET_KEY`]).
    pub secret_namespace: String,
    pub secret_name: String,
    /// How long a starting speaker waits to hear from every Ready node before announcing.
    pub join_timeout: Duration,
}

/// Why the speaker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Signal handlers could not be installed.
    #[error("preparing for shutdown signals")]
    Signals(#[source] shutdown::SignalError),
    /// The node name is not a Kubernetes node name.
    #[error("node name {0:?} is not a node name (1 to 253 characters)")]
    NodeName(String),
    /// No Kubernetes client.
    #[error("connecting to Kubernetes")]
    Client(#[source] kube_client::ClientError),
    /// The health and metrics server failed.
    #[error("serving health and metrics")]
    Server(#[source] ServerError),
    /// The node's interfaces cannot be watched (netlink).
    #[error("watching the node's network interfaces")]
    Interfaces(#[source] std::io::Error),
    /// The membership could not start.
    #[error("starting the membership")]
    Membership(#[source] crate::membership::MembershipError),
}

/// Runs the speaker until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), RunError> {
    let shutdown = shutdown::on_signals().map_err(RunError::Signals)?;
    let me = NodeName::new(config.node_name.clone())
        .map_err(|_| RunError::NodeName(config.node_name.clone()))?;
    let client = kube_client::client(config.kubeconfig.as_deref())
        .await
        .map_err(RunError::Client)?;
    let mut registry = metrics::registry("speaker", env!("CARGO_PKG_VERSION"));
    let l2_metrics = L2Metrics::register(&mut registry);
    let membership_metrics = MembershipMetrics::register(&mut registry);
    let bgp_metrics = BgpMetrics::register(&mut registry);
    let speaker_metrics = SpeakerMetrics::register(&mut registry);
    let readiness = Readiness::default();
    let server = Server::bind(config.metrics_addr, Arc::new(registry), readiness.clone())
        .await
        .map_err(RunError::Server)?;
    tracing::info!(
        addr = %server.local_addr(),
        node = config.node_name,
        "serving /healthz, /readyz and /metrics"
    );
    let server = tokio::spawn(server.run(shutdown.clone()));

    let links = interfaces::watch_links().map_err(RunError::Interfaces)?;
    let (tx, rx) = mpsc::channel(1024);
    let scope = Scope {
        load_balancer_class: config.load_balancer_class.clone(),
    };
    let watch_tasks = watches::spawn_all(&client, &scope, &tx);
    let (desired_tx, desired_rx) = watch::channel(Arc::new(Desired::default()));
    let status_task = tokio::spawn(status::run(client.clone(), me.clone(), desired_rx));
    let key = config.membership.as_ref().map(|m| {
        let (key_tx, key_rx) = oneshot::channel();
        tokio::spawn(read_membership_key(
            Api::namespaced(client.clone(), &m.secret_namespace),
            m.secret_name.clone(),
            key_tx,
        ));
        key_rx
    });
    let l2_config = AnnouncerConfig {
        reannounce: config.l2_reannounce,
        ..AnnouncerConfig::default()
    };
    let table = links.borrow().clone();
    let bgp = BgpSpeaker::new(Some(bgp_metrics));
    let (peer_names, peer_names_rx) = watch::channel(BTreeMap::new());
    let sessions_task = tokio::spawn(status::run_bgp_sessions(
        client.clone(),
        me.clone(),
        bgp.status(),
        peer_names_rx,
    ));
    let core = Core {
        me: me.clone(),
        world: World::new(),
        planner: Planner::new(me),
        synced: BTreeSet::new(),
        announcing: false,
        readiness,
        links,
        links_alive: true,
        l2: L2Announcer::new(l2_config, l2_metrics, table),
        bgp,
        peer_names,
        secrets: SecretWatches::new(client.clone(), tx.clone()),
        desired: desired_tx,
        metrics: speaker_metrics,
        membership_port: config.membership.as_ref().map(|m| m.port),
        membership: match config.membership {
            None => MembershipState::Off,
            Some(settings) => MembershipState::WaitingForKey {
                settings,
                key_rx: key,
                key: None,
                metrics: membership_metrics,
            },
        },
        membership_peers: BTreeSet::new(),
        last: Plan::default(),
        reported_errors: BTreeSet::new(),
        drive_pending: false,
        drive_pace: Pacer::new(DRIVE_PACE_FACTOR, DRIVE_MAX_PAUSE),
    };
    drop(tx);
    let result = core.run(rx, shutdown.clone()).await;
    for task in watch_tasks {
        task.abort();
    }
    status_task.abort();
    sessions_task.abort();
    shutdown.cancel();
    if let Ok(Err(error)) = server.await {
        tracing::warn!(error = %error, "health server");
    }
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// Reads the membership key, retrying until the Secret is there (the API server may not be
/// reachable yet, or the Secret not created yet).
async fn read_membership_key(api: Api<Secret>, name: String, tx: oneshot::Sender<Vec<u8>>) {
    let mut pause = Duration::from_millis(500);
    loop {
        let problem = match api.get_opt(&name).await {
            Ok(Some(secret)) => match secret
                .data
                .as_ref()
                .and_then(|d| d.get(MEMBERSHIP_SECRET_KEY))
                .filter(|k| !k.0.is_empty())
            {
                Some(key) => {
                    let _ = tx.send(key.0.clone());
                    return;
                }
                None => {
                    format!("secret {name} has no non-empty data key {MEMBERSHIP_SECRET_KEY:?}")
                }
            },
            Ok(None) => format!("secret {name} not found"),
            Err(e) => format!("reading secret {name}: {e}"),
        };
        tracing::warn!(
            problem,
            "membership key not available yet; not announcing until it is"
        );
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(10));
    }
}

/// What woke the core.
enum Wake {
    Shutdown,
    Msg(Option<Msg>),
    Key(Option<Vec<u8>>),
    Members(bool),
    Links(bool),
    Gate,
    /// A paced `drive` is due.
    Drive,
}

enum MembershipState {
    Off,
    WaitingForKey {
        settings: MembershipSettings,
        key_rx: Option<oneshot::Receiver<Vec<u8>>>,
        key: Option<Vec<u8>>,
        metrics: MembershipMetrics,
    },
    Joining {
        membership: Membership,
        members: watch::Receiver<LiveMembers>,
        until: Instant,
    },
    Running {
        membership: Membership,
        members: watch::Receiver<LiveMembers>,
    },
    /// Placeholder while moving between states.
    Moving,
}

impl MembershipState {
    fn members(&mut self) -> Option<&mut watch::Receiver<LiveMembers>> {
        match self {
            MembershipState::Joining { members, .. } | MembershipState::Running { members, .. } => {
                Some(members)
            }
            _ => None,
        }
    }

    fn membership(&self) -> Option<&Membership> {
        match self {
            MembershipState::Joining { membership, .. }
            | MembershipState::Running { membership, .. } => Some(membership),
            _ => None,
        }
    }
}

struct Core {
    me: NodeName,
    world: World,
    planner: Planner,
    /// Kinds that have listed at least once.
    synced: BTreeSet<KindKey>,
    /// Past the start-up gate: drivers follow the plan.
    announcing: bool,
    readiness: Readiness,
    links: watch::Receiver<Arc<LinkTable>>,
    links_alive: bool,
    l2: L2Announcer,
    bgp: BgpSpeaker,
    /// Which BGPPeer each session comes from, for the session reporter's Events.
    peer_names: watch::Sender<BTreeMap<PeerKey, status::SessionPeer>>,
    secrets: SecretWatches,
    desired: watch::Sender<Arc<Desired>>,
    metrics: SpeakerMetrics,
    membership: MembershipState,
    membership_port: Option<u16>,
    membership_peers: BTreeSet<SocketAddr>,
    /// The plan the drivers were last given.
    last: Plan,
    /// Driver errors already logged (each is logged once while it lasts).
    reported_errors: BTreeSet<String>,
    /// The plan changed since the drivers were last given it.
    drive_pending: bool,
    /// Paces `drive`, which walks every Service (pace.rs).
    drive_pace: Pacer,
}

/// `drive` pauses four times its own duration between runs while changes keep coming (at
/// most a fifth of a core), and never more than this.
const DRIVE_PACE_FACTOR: u32 = 4;
const DRIVE_MAX_PAUSE: Duration = Duration::from_millis(500);

/// `Kind` as a set key.
type KindKey = u8;

fn kind_key(kind: Kind) -> KindKey {
    KINDS.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

async fn changed_opt(rx: Option<&mut watch::Receiver<LiveMembers>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

async fn next_links(rx: &mut watch::Receiver<Arc<LinkTable>>, alive: bool) -> bool {
    if !alive {
        std::future::pending::<()>().await;
    }
    rx.changed().await.is_ok()
}

async fn key_opt(rx: Option<&mut oneshot::Receiver<Vec<u8>>>) -> Option<Vec<u8>> {
    match rx {
        Some(rx) => rx.await.ok(),
        None => std::future::pending().await,
    }
}

impl Core {
    async fn run(
        mut self,
        mut rx: mpsc::Receiver<Msg>,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        loop {
            let mut dirty = Dirty::default();
            let mut links_changed = false;
            let gate = match &self.membership {
                MembershipState::Joining { until, .. } => Some(*until),
                _ => None,
            };
            let drive_at = if self.drive_pending {
                self.drive_pace.not_before()
            } else {
                None
            };
            let wake = {
                let (key_rx, members) = match &mut self.membership {
                    MembershipState::WaitingForKey { key_rx, .. } => (key_rx.as_mut(), None),
                    MembershipState::Joining { members, .. }
                    | MembershipState::Running { members, .. } => (None, Some(members)),
                    _ => (None, None),
                };
                tokio::select! {
                    () = shutdown.cancelled() => Wake::Shutdown,
                    msg = rx.recv() => Wake::Msg(msg),
                    key = key_opt(key_rx) => Wake::Key(key),
                    alive = changed_opt(members) => Wake::Members(alive),
                    alive = next_links(&mut self.links, self.links_alive) => Wake::Links(alive),
                    () = sleep_until_opt(gate) => Wake::Gate,
                    () = sleep_until_opt(drive_at) => Wake::Drive,
                }
            };
            match wake {
                Wake::Shutdown | Wake::Msg(None) => break,
                Wake::Msg(Some(msg)) => dirty.merge(self.on_msg(msg)),
                Wake::Key(key) => {
                    if let MembershipState::WaitingForKey {
                        key_rx, key: slot, ..
                    } = &mut self.membership
                    {
                        *key_rx = None;
                        *slot = key;
                    }
                }
                Wake::Members(true) => dirty.merge(self.on_members()),
                Wake::Members(false) => {}
                Wake::Links(true) => links_changed = true,
                Wake::Links(false) => {
                    tracing::error!(
                        "interface monitor stopped; interface changes are no longer picked up"
                    );
                    // Keep the last table: announcing goes on where it is.
                    self.links_alive = false;
                }
                Wake::Gate | Wake::Drive => {}
            }
            // One recomputation for a burst of events.
            while let Ok(msg) = rx.try_recv() {
                dirty.merge(self.on_msg(msg));
            }
            dirty.merge(self.advance_membership().await?);
            self.step(dirty, links_changed);
        }
        self.stop().await;
        Ok(())
    }

    fn on_msg(&mut self, msg: Msg) -> Dirty {
        match msg {
            Msg::Relist(kind, updates) => {
                if self.synced.insert(kind_key(kind)) && self.synced.len() == KINDS.len() {
                    tracing::info!(
                        services = self.world.services.len(),
                        nodes = self.world.nodes.len(),
                        "world synced"
                    );
                }
                self.world.replace_all(kind, updates)
            }
            Msg::Change(update) => self.world.apply(update),
        }
    }

    fn on_members(&mut self) -> Dirty {
        let Some(members) = self.membership.members() else {
            return Dirty::default();
        };
        let live: BTreeSet<NodeName> = (**members.borrow_and_update()).clone();
        tracing::info!(members = ?live, "live speakers");
        self.world.apply(Update::Live(Some(live)))
    }

    fn world_synced(&self) -> bool {
        self.synced.len() == KINDS.len()
    }

    /// Moves the membership through its start-up states; returns what changed.
    async fn advance_membership(&mut self) -> Result<Dirty, RunError> {
        if !self.world_synced() {
            return Ok(Dirty::default());
        }
        let state = std::mem::replace(&mut self.membership, MembershipState::Moving);
        let (next, dirty) = match state {
            MembershipState::WaitingForKey {
                settings,
                key_rx,
                key: Some(key),
                metrics,
            } => {
                let own = self.world.nodes.get(&self.me);
                let ip = settings.advertise_ip.or_else(|| {
                    own.and_then(|n| {
                        n.internal_ips
                            .iter()
                            .find(|a| a.is_ipv4())
                            .or(n.internal_ips.first())
                            .copied()
                    })
                });
                match ip {
                    None => {
                        tracing::warn!(
                            "no address to join the membership from: the Node has no InternalIP (set --membership-advertise-ip)"
                        );
                        (
                            MembershipState::WaitingForKey {
                                settings,
                                key_rx,
                                key: Some(key),
                                metrics,
                            },
                            Dirty::default(),
                        )
                    }
                    Some(ip) => {
                        let bind = match ip {
                            IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], settings.port)),
                            IpAddr::V6(_) => SocketAddr::from(([0u16; 8], settings.port)),
                        };
                        let membership = Membership::start(
                            MembershipConfig {
                                node: self.me.clone(),
                                bind,
                                advertise: SocketAddr::new(ip, settings.port),
                                key,
                                timing: ProbeTiming::default(),
                            },
                            metrics,
                        )
                        .await
                        .map_err(RunError::Membership)?;
                        tracing::info!(advertise = %SocketAddr::new(ip, settings.port), "membership started");
                        self.membership_peers.clear();
                        let members = membership.members();
                        let next = MembershipState::Joining {
                            membership,
                            members,
                            until: Instant::now() + settings.join_timeout,
                        };
                        self.membership = next;
                        self.update_membership_peers(settings.port);
                        let dirty = self.on_members();
                        let next = std::mem::replace(&mut self.membership, MembershipState::Moving);
                        (next, dirty)
                    }
                }
            }
            MembershipState::Joining {
                membership,
                members,
                until,
            } => {
                let live = members.borrow().clone();
                let missing: Vec<&NodeName> = self
                    .world
                    .nodes
                    .iter()
                    .filter(|(n, e)| e.ready && !e.excluded() && !live.contains(*n))
                    .map(|(n, _)| n)
                    .collect();
                if missing.is_empty() || Instant::now() >= until {
                    if !missing.is_empty() {
                        tracing::info!(not_members = ?missing, "joined without hearing from every Ready node (no speaker there?)");
                    }
                    (
                        MembershipState::Running {
                            membership,
                            members,
                        },
                        Dirty::default(),
                    )
                } else {
                    (
                        MembershipState::Joining {
                            membership,
                            members,
                            until,
                        },
                        Dirty::default(),
                    )
                }
            }
            other => (other, Dirty::default()),
        };
        self.membership = next;
        Ok(dirty)
    }

    /// Tells the membership where the other speakers may be: each Node's InternalIP of
    /// this speaker's family.
    fn update_membership_peers(&mut self, port: u16) {
        let Some(membership) = self.membership.membership() else {
            return;
        };
        let own_v4 = self
            .world
            .nodes
            .get(&self.me)
            .and_then(|n| n.internal_ips.first())
            .is_none_or(|a| a.is_ipv4());
        let peers: BTreeSet<SocketAddr> = self
            .world
            .nodes
            .iter()
            .filter(|(n, _)| **n != self.me)
            .filter_map(|(_, e)| e.internal_ips.iter().find(|a| a.is_ipv4() == own_v4))
            .map(|ip| SocketAddr::new(*ip, port))
            .collect();
        if peers != self.membership_peers {
            membership.set_peers(peers.clone());
            self.membership_peers = peers;
        }
    }

    fn step(&mut self, dirty: Dirty, links_changed: bool) {
        if !self.world_synced() {
            return;
        }
        let first = !self.announcing;
        let gate_open = matches!(
            self.membership,
            MembershipState::Off | MembershipState::Running { .. }
        );
        let mut changed = false;
        if first || !dirty.is_empty() {
            let dirty = if first { Dirty::all() } else { dirty };
            changed = self.planner.update(&self.world, &dirty);
            if dirty.all {
                self.secrets.set(&self.world.referenced_secrets());
                if let Some(port) = self.membership_port {
                    self.update_membership_peers(port);
                }
            }
        }
        if !gate_open {
            return;
        }
        if first {
            self.announcing = true;
            self.readiness.set(true);
            tracing::info!("announcing");
        }
        if first || changed || links_changed {
            self.drive_pending = true;
        }
        if self.drive_pending && self.drive_pace.due(Instant::now()) {
            let started = Instant::now();
            self.drive();
            self.drive_pending = false;
            self.drive_pace.ran(started, Instant::now());
            tracing::trace!(took = ?self.drive_pace.last_run(), "plan handed to the drivers");
        }
    }

    /// Hands the plan to the drivers, the status writer and the metrics.
    fn drive(&mut self) {
        let plan = self.planner.plan();
        let table = self.links.borrow_and_update().clone();
        let owned: BTreeMap<IpAddr, Vec<InterfaceName>> = plan
            .l2
            .iter()
            .map(|(addr, choice)| (*addr, table.select(*addr, &choice.explicit())))
            .collect();
        let mut errors: Vec<String> = self
            .l2
            .set_links(table)
            .into_iter()
            .chain(self.l2.set_owned(&owned))
            .map(|e| e.to_string())
            .collect();
        for (addr, ifaces) in &owned {
            if ifaces.is_empty() {
                errors.push(format!(
                    "{addr} is owned here but no interface of this node qualifies"
                ));
            }
        }
        let configs: Vec<PeerConfig> = plan
            .peers
            .values()
            .filter_map(|c| c.as_ref().ok().cloned())
            .collect();
        for (peer, problem) in plan
            .peers
            .iter()
            .filter_map(|(n, c)| c.as_ref().err().map(|e| (n, e)))
        {
            errors.push(format!("bgp peer {peer}: {problem}"));
        }
        let routes: BTreeMap<PeerKey, RouteSet> = plan
            .routes
            .iter()
            .filter_map(|(name, set)| {
                let config = plan.peers.get(name)?.as_ref().ok()?;
                Some((config.peer, set.clone()))
            })
            .collect();
        let names: BTreeMap<PeerKey, status::SessionPeer> = plan
            .peers
            .iter()
            .filter_map(|(name, c)| {
                let c = c.as_ref().ok()?;
                Some((
                    c.peer,
                    status::SessionPeer {
                        name: name.as_str().to_owned(),
                        tcp_md5: c.password.is_some(),
                    },
                ))
            })
            .collect();
        self.peer_names.send_if_modified(|cur| {
            let changed = *cur != names;
            if changed {
                *cur = names;
            }
            changed
        });
        self.bgp.set_peers(configs);
        self.bgp.set_all_routes(routes);
        self.report_errors(errors);
        self.log_changes(&plan);
        self.metrics.observe(&plan);
        let desired = self.desired_status(&plan, &owned);
        self.desired.send_if_modified(|cur| {
            if **cur == desired {
                false
            } else {
                *cur = Arc::new(desired);
                true
            }
        });
        self.last = plan;
    }

    fn desired_status(&self, plan: &Plan, owned: &BTreeMap<IpAddr, Vec<InterfaceName>>) -> Desired {
        let mut out = Desired {
            live: self
                .world
                .nodes
                .iter()
                .filter(|(n, e)| self.world.is_live(n, e))
                .map(|(n, _)| n.clone())
                .collect(),
            ..Desired::default()
        };
        for (svc, outcome) in &plan.services {
            let Some(entry) = self.world.services.get(svc) else {
                continue;
            };
            let l2_addrs: Vec<IpAddr> = outcome
                .l2
                .iter()
                .filter(|(_, o)| o.here.is_ok())
                .map(|(a, _)| *a)
                .collect();
            if !l2_addrs.is_empty() {
                let ifaces: BTreeSet<String> = l2_addrs
                    .iter()
                    .flat_map(|a| owned.get(a).into_iter().flatten())
                    .map(|i| i.as_str().to_owned())
                    .collect();
                let ifaces: Vec<String> = ifaces.into_iter().collect();
                out.l2.insert(
                    svc.clone(),
                    Wanted {
                        uid: entry.uid.clone(),
                        status: status::l2_status(svc, &self.me, &ifaces),
                        addresses: l2_addrs,
                    },
                );
            }
            let mut peers: BTreeSet<String> = BTreeSet::new();
            let mut bgp_addrs = Vec::new();
            for (addr, o) in &outcome.bgp {
                if let Ok(p) = o {
                    bgp_addrs.push(*addr);
                    peers.extend(p.iter().map(|p| p.as_str().to_owned()));
                }
            }
            if !bgp_addrs.is_empty() {
                let peers: Vec<String> = peers.into_iter().collect();
                out.bgp.insert(
                    svc.clone(),
                    Wanted {
                        uid: entry.uid.clone(),
                        status: status::bgp_status(svc, &self.me, &peers),
                        addresses: bgp_addrs,
                    },
                );
            }
        }
        out
    }

    /// Logs each driver problem once, when it appears, and once more when it is gone.
    fn report_errors(&mut self, errors: Vec<String>) {
        let now: BTreeSet<String> = errors.into_iter().collect();
        for e in now.difference(&self.reported_errors) {
            tracing::warn!(problem = %e, "cannot announce as planned");
        }
        for e in self.reported_errors.difference(&now) {
            tracing::info!(problem = %e, "resolved");
        }
        self.reported_errors = now;
    }

    /// One line per (Service, address, mode) whose outcome on this node changed.
    fn log_changes(&self, plan: &Plan) {
        for (svc, out) in &plan.services {
            let before = self.last.services.get(svc);
            for (addr, o) in &out.l2 {
                if before.and_then(|b| b.l2.get(addr)) == Some(o) {
                    continue;
                }
                match &o.here {
                    Ok(choice) => {
                        tracing::info!(service = %svc, %addr, interfaces = ?choice, "l2: announcing")
                    }
                    Err(NotAnnounced::OwnedElsewhere) => tracing::debug!(
                        service = %svc, %addr, owner = ?o.owner.as_ref().map(|n| n.as_str()),
                        "l2: not announcing, another node owns it"
                    ),
                    Err(reason) => tracing::info!(
                        service = %svc, %addr, reason = reason.as_str(),
                        owner = ?o.owner.as_ref().map(|n| n.as_str()),
                        "l2: not announcing"
                    ),
                }
            }
            for (addr, o) in &out.bgp {
                if before.and_then(|b| b.bgp.get(addr)) == Some(o) {
                    continue;
                }
                match o {
                    Ok(peers) => {
                        tracing::info!(service = %svc, %addr, ?peers, "bgp: announcing")
                    }
                    Err(NotAnnounced::NoAdvertisement) => {}
                    Err(reason) => {
                        tracing::info!(service = %svc, %addr, reason = reason.as_str(), "bgp: not announcing")
                    }
                }
            }
        }
        for svc in self.last.services.keys() {
            if !plan.services.contains_key(svc) {
                tracing::info!(service = %svc, "no longer has addresses to announce");
            }
        }
    }

    /// Orderly stop: leave the membership first (the others take over at once instead of
    /// after the failure detector's timeout), stop answering, close BGP sessions so that
    /// peers with graceful restart keep the routes for a restarting speaker.
    async fn stop(self) {
        let Core {
            membership,
            l2,
            bgp,
            ..
        } = self;
        match membership {
            MembershipState::Joining { membership, .. }
            | MembershipState::Running { membership, .. } => membership.leave().await,
            _ => {}
        }
        drop(l2);
        bgp.shutdown(Shutdown::Restart).await;
    }
}
