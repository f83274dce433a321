//! Speaker liveness: SWIM membership among speakers over UDP (the `foca` crate), every
//! datagram authenticated with HMAC-SHA256 over a shared key.
//!
//! ```text
//!   caller ── set_peers(addrs) ──┐        ┌── leave() (SIGTERM): announce own departure
//!                                ▼        ▼
//!                         ┌──────── membership task ────────┐
//!   UDP :7946 ──recv──▶   │ Envelope::open ─▶ foca.handle_data │──send (sealed)──▶ UDP
//!                         │ timers (BTreeMap by deadline) ─▶   │
//!                         │           foca.handle_timer        │
//!                         │ every second: announce to listed   │
//!                         │   peers that are not members yet   │
//!                         └───────────────┬────────────────────┘
//!                                         ▼
//!              watch::Receiver<LiveMembers>  (node names of alive/suspect members + self)
//!              ferrolb_members{state}, ferrolb_membership_datagrams_dropped_total{reason}
//! ```
//!
//! Timing ([`ProbeTiming::default`], chosen for sub-second detection on a LAN whose
//! round-trip time is well under a millisecond):
//! - every member probes one member every **300 ms** (`probe_period`), so with n members a
//!   given member is probed about n-1 times per period by the cluster as a whole;
//! - a direct probe unanswered within **150 ms** (`probe_rtt`) goes indirect through up to
//!   3 other members; no answer by the end of the period makes the member *suspect*;
//! - a suspect member that does not refute within **400 ms** (`suspect_to_down_after`) is
//!   declared down and the news is gossiped (every **100 ms** to 3 members).
//!
//! A crashed speaker is thus declared down after roughly 0.45–1.0 s (time until someone
//! probes it, the rest of that probe period, then the suspicion timeout); the benchmark
//! `membership` measures it. A speaker that leaves cleanly gossips its own departure and is
//! down at once. Suspect members still count as live: SWIM's suspicion exists so that one
//! lost datagram does not move addresses.

pub mod codec;
pub mod envelope;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::num::{NonZeroU8, NonZeroU32, NonZeroUsize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use foca::{AccumulatingRuntime, Config, Foca, NoCustomBroadcast, OwnedNotification, State, Timer};
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use codec::{CodecError, MemberId, NodeName, SpeakerCodec};
pub use envelope::{Envelope, OpenError};

/// Default UDP port of the membership.
pub const DEFAULT_PORT: u16 = 7946;

/// Node names of the live members (alive or suspect), this node included.
pub type LiveMembers = Arc<BTreeSet<NodeName>>;

/// SWIM timing; see the module documentation for what each number buys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTiming {
    pub probe_period: Duration,
    pub probe_rtt: Duration,
    pub suspect_to_down_after: Duration,
    pub gossip_interval: Duration,
    /// How often listed peers that are not members yet are sent an announcement.
    pub announce_interval: Duration,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            probe_period: Duration::from_millis(300),
            probe_rtt: Duration::from_millis(150),
            suspect_to_down_after: Duration::from_millis(400),
            gossip_interval: Duration::from_millis(100),
            announce_interval: Duration::from_secs(1),
        }
    }
}

/// How to join.
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    pub node: NodeName,
    /// Where to listen (e.g. `0.0.0.0:7946`).
    pub bind: SocketAddr,
    /// Where the others reach this speaker (its node's InternalIP and the port).
    pub advertise: SocketAddr,
    /// The shared secret (from a Secret); every member must hold the same.
    pub key: Vec<u8>,
    pub timing: ProbeTiming,
}

#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("binding the membership socket to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("membership key is empty: set a shared secret")]
    EmptyKey,
    #[error("membership configuration refused: {0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum MemberStateLabel {
    Alive,
    Suspect,
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct MemberStateLabels {
    pub state: MemberStateLabel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, EncodeLabelValue)]
pub enum DropReason {
    /// Too short for the envelope or not starting with its magic.
    Malformed,
    /// HMAC did not verify: wrong key, corruption or forgery.
    Unauthenticated,
    /// Authenticated, but foca could not decode or accept it.
    Undecodable,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct DropLabels {
    pub reason: DropReason,
}

/// Membership metrics, registered into the caller's registry.
#[derive(Debug, Clone, Default)]
pub struct MembershipMetrics {
    pub members: Family<MemberStateLabels, Gauge>,
    pub dropped: Family<DropLabels, Counter>,
}

impl MembershipMetrics {
    pub fn register(registry: &mut Registry) -> MembershipMetrics {
        let m = MembershipMetrics::default();
        registry.register(
            "members",
            "speakers known to the membership, by state (this one included)",
            m.members.clone(),
        );
        registry.register(
            "membership_datagrams_dropped",
            "membership datagrams dropped, by reason",
            m.dropped.clone(),
        );
        m
    }

    pub fn dropped_total(&self, reason: DropReason) -> u64 {
        self.dropped.get_or_create(&DropLabels { reason }).get()
    }

    pub fn members_in(&self, state: MemberStateLabel) -> i64 {
        self.members
            .get_or_create(&MemberStateLabels { state })
            .get()
    }
}

#[derive(Debug)]
enum Command {
    SetPeers(BTreeSet<SocketAddr>),
    Leave(oneshot::Sender<()>),
}

/// A running membership. Dropping it stops the task without saying goodbye (as a crash
/// would); call [`Membership::leave`] on orderly shutdown.
#[derive(Debug)]
pub struct Membership {
    commands: mpsc::UnboundedSender<Command>,
    members: watch::Receiver<LiveMembers>,
    task: JoinHandle<()>,
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Membership {
    /// Binds the socket and starts the membership task (call inside a tokio runtime).
    pub async fn start(
        config: MembershipConfig,
        metrics: MembershipMetrics,
    ) -> Result<Membership, MembershipError> {
        if config.key.is_empty() {
            return Err(MembershipError::EmptyKey);
        }
        let socket =
            UdpSocket::bind(config.bind)
                .await
                .map_err(|source| MembershipError::Bind {
                    addr: config.bind,
                    source,
                })?;
        let generation = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(1);
        let identity = MemberId {
            node: Some(config.node.clone()),
            addr: config.advertise,
            generation,
        };
        let foca_config = foca_config(&config.timing);
        let foca = Foca::new(
            identity,
            foca_config,
            rand::make_rng::<StdRng>(),
            SpeakerCodec,
        );
        let (members_tx, members) = watch::channel(Arc::new(BTreeSet::from([config.node.clone()])));
        let (commands, rx) = mpsc::unbounded_channel();
        let swim = Swim {
            foca,
            runtime: AccumulatingRuntime::new(),
            socket,
            envelope: Envelope::new(&config.key),
            timers: BTreeMap::new(),
            seq: 0,
            peers: BTreeSet::new(),
            metrics,
            members: members_tx,
            timing: config.timing,
        };
        let task = tokio::spawn(swim.run(rx));
        Ok(Membership {
            commands,
            members,
            task,
        })
    }

    /// The live members; changes whenever one joins, leaves or is declared down.
    pub fn members(&self) -> watch::Receiver<LiveMembers> {
        self.members.clone()
    }

    /// The addresses where other speakers may listen (from Nodes' InternalIPs). Listed
    /// addresses that are not members yet are sent an announcement every
    /// `announce_interval`; members not listed are not removed (SWIM decides liveness).
    pub fn set_peers(&self, peers: BTreeSet<SocketAddr>) {
        let _ = self.commands.send(Command::SetPeers(peers));
    }

    /// Leaves cleanly: tells the others this speaker is gone (they drop it at once instead
    /// of after the failure detector's timeout), then stops.
    pub async fn leave(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Leave(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

fn foca_config(t: &ProbeTiming) -> Config {
    let mut c = Config::new_lan(NonZeroU32::MIN.saturating_add(31));
    c.probe_period = t.probe_period;
    c.probe_rtt = t.probe_rtt;
    c.num_indirect_probes = NonZeroUsize::MIN.saturating_add(2);
    c.suspect_to_down_after = t.suspect_to_down_after;
    c.max_transmissions = NonZeroU8::MIN.saturating_add(7);
    c.max_packet_size = NonZeroUsize::MIN.saturating_add(1400 - 1);
    c.notify_down_members = true;
    if let Some(g) = c.periodic_gossip.as_mut() {
        g.frequency = t.gossip_interval;
    }
    c
}

type SpeakerFoca = Foca<MemberId, SpeakerCodec, StdRng, NoCustomBroadcast>;

struct Swim {
    foca: SpeakerFoca,
    runtime: AccumulatingRuntime<MemberId>,
    socket: UdpSocket,
    envelope: Envelope,
    /// Pending foca timers, in deadline order (ties in submission order, as foca needs).
    timers: BTreeMap<(Instant, u64), Timer<MemberId>>,
    seq: u64,
    peers: BTreeSet<SocketAddr>,
    metrics: MembershipMetrics,
    members: watch::Sender<LiveMembers>,
    timing: ProbeTiming,
}

impl Swim {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2048];
        let mut announce = tokio::time::interval(self.timing.announce_interval);
        announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.publish();
        loop {
            let next_timer = self.timers.keys().next().map(|(at, _)| *at);
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, _from)) => self.handle_datagram(&buf[..len.min(buf.len())]),
                    Err(error) => tracing::warn!(%error, "membership: receiving"),
                },
                command = commands.recv() => match command {
                    Some(Command::SetPeers(peers)) => {
                        self.peers = peers;
                        self.announce_to_strangers();
                    }
                    Some(Command::Leave(done)) => {
                        if let Err(error) = self.foca.leave_cluster(&mut self.runtime) {
                            tracing::warn!(%error, "membership: leaving");
                        }
                        self.flush().await;
                        let _ = done.send(());
                        return;
                    }
                    None => return,
                },
                () = sleep_until_opt(next_timer) => self.fire_timers(),
                _ = announce.tick() => self.announce_to_strangers(),
            }
            self.flush().await;
        }
    }

    fn handle_datagram(&mut self, datagram: &[u8]) {
        let payload = match self.envelope.open(datagram) {
            Ok(p) => p,
            Err(error) => {
                let reason = match error {
                    OpenError::Truncated(_) | OpenError::Magic => DropReason::Malformed,
                    OpenError::Authentication => DropReason::Unauthenticated,
                };
                self.metrics
                    .dropped
                    .get_or_create(&DropLabels { reason })
                    .inc();
                tracing::debug!(%error, "membership: datagram dropped");
                return;
            }
        };
        if let Err(error) = self.foca.handle_data(payload, &mut self.runtime) {
            if matches!(error, foca::Error::Decode(_) | foca::Error::MalformedPacket) {
                self.metrics
                    .dropped
                    .get_or_create(&DropLabels {
                        reason: DropReason::Undecodable,
                    })
                    .inc();
            }
            tracing::debug!(%error, "membership: message not accepted");
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let timer = entry.remove();
            let probe = matches!(timer, Timer::ProbeRandomMember(_));
            if let Err(error) = self.foca.handle_timer(timer, &mut self.runtime) {
                tracing::debug!(%error, "membership: timer");
            }
            if probe {
                // Suspicions start and end without notifications; refresh the gauges once
                // per probe period.
                self.update_gauges();
            }
        }
    }

    fn announce_to_strangers(&mut self) {
        let own = self.foca.identity().addr;
        let known: BTreeSet<SocketAddr> = self.foca.iter_members().map(|m| m.id().addr).collect();
        for peer in &self.peers {
            if *peer == own || known.contains(peer) {
                continue;
            }
            let stranger = MemberId {
                node: None,
                addr: *peer,
                generation: 0,
            };
            if let Err(error) = self.foca.announce(stranger, &mut self.runtime) {
                tracing::debug!(%error, %peer, "membership: announcing");
            }
        }
    }

    /// Sends what foca queued, schedules its timers and reacts to its notifications.
    async fn flush(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            let datagram = self.envelope.seal(&data);
            if let Err(error) = self.socket.send_to(&datagram, to.addr).await {
                tracing::debug!(%error, to = %to.addr, "membership: sending");
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.seq += 1;
            self.timers.insert((now + after, self.seq), timer);
        }
        let mut changed = false;
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => {
                    tracing::info!(member = ?id, "membership: member up");
                    changed = true;
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::info!(member = ?id, "membership: member down");
                    changed = true;
                }
                OwnedNotification::Rename(old, new) => {
                    tracing::info!(?old, ?new, "membership: member restarted");
                    changed = true;
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::warn!(identity = ?id, "membership: we were declared down; rejoined");
                    changed = true;
                }
                OwnedNotification::Defunct => {
                    tracing::error!("membership: declared down and cannot rejoin");
                    changed = true;
                }
                OwnedNotification::Active | OwnedNotification::Idle => changed = true,
            }
        }
        if changed {
            self.publish();
        }
    }

    fn publish(&mut self) {
        let mut live: BTreeSet<NodeName> = self
            .foca
            .iter_members()
            .filter_map(|m| m.id().node.clone())
            .collect();
        if let Some(own) = self.foca.identity().node.clone() {
            live.insert(own);
        }
        self.members.send_if_modified(|cur| {
            if **cur == live {
                false
            } else {
                *cur = Arc::new(live);
                true
            }
        });
        self.update_gauges();
    }

    fn update_gauges(&self) {
        let (mut alive, mut suspect, mut down) = (1i64, 0i64, 0i64);
        for m in self.foca.iter_membership_state() {
            match m.state() {
                State::Alive => alive += 1,
                State::Suspect => suspect += 1,
                State::Down => down += 1,
            }
        }
        for (state, n) in [
            (MemberStateLabel::Alive, alive),
            (MemberStateLabel::Suspect, suspect),
            (MemberStateLabel::Down, down),
        ] {
            self.metrics
                .members
                .get_or_create(&MemberStateLabels { state })
                .set(n);
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
