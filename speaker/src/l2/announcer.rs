//! The L2 driver: one task per interface that answers ARP / neighbour solicitations for the
//! addresses this node owns there and announces newly owned ones.
//!
//! ```text
//!  speaker core ── set_owned(addr → [iface]) ──▶ L2Announcer (diff per interface)
//!                  set_links(LinkTable)             │ watch::Sender<owned on iface>
//!                                                   ▼
//!                         ┌──────────── interface task (one per interface) ───────────┐
//!  AF_PACKET socket ──▶   │ readable → responder::decide → send reply, count          │
//!  (BPF: ARP + NS only)   │ owned changed → join/leave solicited-node groups,         │
//!                         │                 schedule announcement bursts             │
//!                         │ timer → gratuitous ARP / unsolicited NA                   │
//!                         └────────────────────────────────────────────────────────────┘
//! ```
//!
//! Reconciliation is by diff: an interface task starts when the first address needs it and
//! stops (closing its socket and so its multicast memberships) when the last one leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::interfaces::{InterfaceName, Link, LinkTable};
use super::metrics::{IgnoredLabels, L2Metrics};
use super::ndp::{multicast_mac, solicited_node_multicast};
use super::responder::{Decision, LinkIdentity, Protocol, announcement, decide};
use crate::sys::packet::{PacketSocket, PacketType};

/// How announcements are sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnouncerConfig {
    /// Announcements sent on becoming owner: one at once, the rest `burst_interval` apart.
    pub burst_count: u32,
    /// Just over one second: Linux ignores a second update of a neighbour entry within its
    /// `locktime` (1 s by default), so faster repeats would be wasted.
    pub burst_interval: Duration,
    /// Re-announce every owned address this often, for switches whose MAC tables age out
    /// entries of quiet hosts. Off by default.
    pub reannounce: Option<Duration>,
}

impl Default for AnnouncerConfig {
    fn default() -> Self {
        AnnouncerConfig {
            burst_count: 3,
            burst_interval: Duration::from_millis(1100),
            reannounce: None,
        }
    }
}

/// Why an interface could not be used. The address stays wanted there; the announcer
/// retries when [`L2Announcer::set_links`] reports a change.
#[derive(Debug, thiserror::Error)]
pub enum L2Error {
    #[error("interface {0} does not exist or is down")]
    InterfaceMissing(InterfaceName),
    #[error("interface {0} has no ethernet address")]
    InterfaceWithoutMac(InterfaceName),
    #[error("opening a packet socket on {interface}")]
    OpenSocket {
        interface: InterfaceName,
        #[source]
        source: io::Error,
    },
}

type Owned = Arc<BTreeSet<IpAddr>>;

#[derive(Debug)]
struct InterfaceTask {
    index: u32,
    identity: LinkIdentity,
    owned: watch::Sender<Owned>,
    task: JoinHandle<()>,
}

impl Drop for InterfaceTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The L2 driver. Create and use it inside a tokio runtime (it spawns tasks), from a thread
/// in the network namespace whose interfaces it serves.
#[derive(Debug)]
pub struct L2Announcer {
    config: AnnouncerConfig,
    metrics: L2Metrics,
    links: Arc<LinkTable>,
    /// Desired: addresses per interface.
    wanted: BTreeMap<InterfaceName, BTreeSet<IpAddr>>,
    running: BTreeMap<InterfaceName, InterfaceTask>,
}

impl L2Announcer {
    pub fn new(config: AnnouncerConfig, metrics: L2Metrics, links: Arc<LinkTable>) -> Self {
        L2Announcer {
            config,
            metrics,
            links,
            wanted: BTreeMap::new(),
            running: BTreeMap::new(),
        }
    }

    /// Sets the complete set of owned addresses with the interfaces to answer on. Addresses
    /// not in `owned` stop being answered at once. Returns the interfaces that could not be
    /// served (their addresses are retried on the next [`L2Announcer::set_links`]).
    pub fn set_owned(&mut self, owned: &BTreeMap<IpAddr, Vec<InterfaceName>>) -> Vec<L2Error> {
        let mut wanted: BTreeMap<InterfaceName, BTreeSet<IpAddr>> = BTreeMap::new();
        for (addr, ifaces) in owned {
            for iface in ifaces {
                wanted.entry(iface.clone()).or_default().insert(*addr);
            }
        }
        self.wanted = wanted;
        self.reconcile()
    }

    /// Tells the announcer the interfaces changed: tasks whose interface vanished, went down
    /// or changed MAC, index or link-local address are restarted (a restart re-announces, which
    /// is what a changed MAC needs), and wanted interfaces that failed before are retried.
    pub fn set_links(&mut self, links: Arc<LinkTable>) -> Vec<L2Error> {
        self.links = links;
        self.reconcile()
    }

    /// What is being answered now, per interface (for status reporting).
    pub fn serving(&self) -> BTreeMap<InterfaceName, BTreeSet<IpAddr>> {
        self.running
            .iter()
            .map(|(name, t)| (name.clone(), (**t.owned.borrow()).clone()))
            .collect()
    }

    fn reconcile(&mut self) -> Vec<L2Error> {
        let mut errors = Vec::new();
        // Stop tasks no longer wanted or whose link changed under them.
        let links = Arc::clone(&self.links);
        self.running.retain(|name, task| {
            let still_wanted = self.wanted.contains_key(name);
            let same_link = links.get(name).is_some_and(|l| {
                l.up && l.index == task.index && l.identity() == Some(task.identity)
            });
            still_wanted && same_link
        });
        for (name, addrs) in &self.wanted {
            let addrs: Owned = Arc::new(addrs.clone());
            if let Some(task) = self.running.get(name) {
                task.owned.send_if_modified(|cur| {
                    if *cur == addrs {
                        false
                    } else {
                        *cur = addrs;
                        true
                    }
                });
                continue;
            }
            match self.start(name, addrs) {
                Ok(task) => {
                    self.running.insert(name.clone(), task);
                }
                Err(e) => errors.push(e),
            }
        }
        errors
    }

    fn start(&self, name: &InterfaceName, addrs: Owned) -> Result<InterfaceTask, L2Error> {
        let link: &Link = self
            .links
            .get(name)
            .filter(|l| l.up)
            .ok_or_else(|| L2Error::InterfaceMissing(name.clone()))?;
        let identity = link
            .identity()
            .ok_or_else(|| L2Error::InterfaceWithoutMac(name.clone()))?;
        let socket = PacketSocket::open(link.index)
            .and_then(PacketSocket::into_async)
            .map_err(|source| L2Error::OpenSocket {
                interface: name.clone(),
                source,
            })?;
        // The task starts with an empty set and sees `addrs` as its first change, so the
        // initial addresses take the same path (join groups, announce) as later ones.
        let (tx, rx) = watch::channel(Owned::default());
        tx.send_replace(addrs);
        let worker = Worker {
            name: name.clone(),
            index: link.index,
            identity,
            socket,
            config: self.config.clone(),
            metrics: self.metrics.clone(),
            current: Owned::default(),
            groups: MulticastGroups::default(),
            schedule: BTreeMap::new(),
        };
        let task = tokio::spawn(worker.run(rx));
        tracing::info!(interface = %name, index = link.index, mac = %identity.mac, "l2: serving interface");
        Ok(InterfaceTask {
            index: link.index,
            identity,
            owned: tx,
            task,
        })
    }
}

/// Next announcement due for an address: when, and how many are left (`None`: periodic,
/// forever).
#[derive(Debug, Clone, Copy)]
struct Due {
    at: Instant,
    remaining: Option<u32>,
}

struct Worker {
    name: InterfaceName,
    index: u32,
    identity: LinkIdentity,
    socket: AsyncFd<PacketSocket>,
    config: AnnouncerConfig,
    metrics: L2Metrics,
    current: Owned,
    groups: MulticastGroups,
    schedule: BTreeMap<IpAddr, Due>,
}

impl Worker {
    async fn run(mut self, mut owned: watch::Receiver<Owned>) {
        let mut buf = vec![0u8; 2048];
        loop {
            let next_due = self.schedule.values().map(|d| d.at).min();
            tokio::select! {
                changed = owned.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let new = Arc::clone(&owned.borrow_and_update());
                    self.apply(new);
                }
                ready = self.socket.readable() => {
                    let mut guard = match ready {
                        Ok(g) => g,
                        Err(error) => {
                            tracing::error!(interface = %self.name, %error, "l2: socket failed");
                            return;
                        }
                    };
                    // One frame per turn; readiness stays set until recv would block.
                    let received = guard.get_inner().recv(&mut buf);
                    match received {
                        Ok((len, kind)) => {
                            drop(guard);
                            self.handle(&buf[..len.min(buf.len())], kind);
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => guard.clear_ready(),
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(error) => {
                            // ENETDOWN and friends: the link went away; the announcer
                            // restarts this task when the link table changes.
                            tracing::warn!(interface = %self.name, %error, "l2: receiving");
                            guard.clear_ready();
                        }
                    }
                }
                () = sleep_until_opt(next_due) => self.announce_due(),
            }
        }
    }

    fn apply(&mut self, new: Owned) {
        let now = Instant::now();
        for added in new.difference(&self.current) {
            if self.config.burst_count > 0 {
                self.schedule.insert(
                    *added,
                    Due {
                        at: now,
                        remaining: Some(self.config.burst_count),
                    },
                );
            } else if let Some(period) = self.config.reannounce {
                self.schedule.insert(
                    *added,
                    Due {
                        at: now + period,
                        remaining: None,
                    },
                );
            }
        }
        for removed in self.current.difference(&new) {
            self.schedule.remove(removed);
        }
        let groups: BTreeSet<Ipv6Addr> = new
            .iter()
            .filter_map(|a| match a {
                IpAddr::V6(v6) => Some(solicited_node_multicast(*v6)),
                IpAddr::V4(_) => None,
            })
            .collect();
        self.groups
            .reconcile(&groups, self.socket.get_ref(), self.index, &self.name);
        self.current = new;
        // Announce at once rather than on the next loop turn.
        self.announce_due();
    }

    fn handle(&mut self, frame: &[u8], kind: PacketType) {
        if kind == PacketType::Outgoing {
            // The filter drops these; this guards against a kernel without the ancillary load.
            return;
        }
        let decision = decide(frame, &self.identity, &self.current);
        let protocol = match &decision {
            Decision::Reply { protocol, .. }
            | Decision::Ignore { protocol, .. }
            | Decision::Malformed { protocol, .. } => *protocol,
        };
        let labels = L2Metrics::frame(protocol, self.name.as_str());
        self.metrics.requests_received.get_or_create(&labels).inc();
        match decision {
            Decision::Reply { address, frame, .. } => match self.socket.get_ref().send(&frame) {
                Ok(_) => {
                    self.metrics.responses_sent.get_or_create(&labels).inc();
                    tracing::debug!(interface = %self.name, %address, "l2: answered");
                }
                Err(error) => {
                    self.metrics.send_errors.get_or_create(&labels).inc();
                    tracing::warn!(interface = %self.name, %address, %error, "l2: sending reply");
                }
            },
            Decision::Ignore { reason, .. } => {
                self.metrics
                    .ignored
                    .get_or_create(&IgnoredLabels {
                        protocol: labels.protocol,
                        interface: labels.interface,
                        reason: reason.into(),
                    })
                    .inc();
            }
            Decision::Malformed { error, .. } => {
                self.metrics.malformed.get_or_create(&labels).inc();
                tracing::debug!(interface = %self.name, %error, "l2: malformed frame dropped");
            }
        }
    }

    fn announce_due(&mut self) {
        let now = Instant::now();
        let due: Vec<IpAddr> = self
            .schedule
            .iter()
            .filter(|(_, d)| d.at <= now)
            .map(|(a, _)| *a)
            .collect();
        for address in due {
            let frame = announcement(address, &self.identity);
            let protocol = match address {
                IpAddr::V4(_) => Protocol::Arp,
                IpAddr::V6(_) => Protocol::Ndp,
            };
            let labels = L2Metrics::frame(protocol, self.name.as_str());
            match self.socket.get_ref().send(&frame) {
                Ok(_) => {
                    self.metrics.gratuitous_sent.get_or_create(&labels).inc();
                }
                Err(error) => {
                    self.metrics.send_errors.get_or_create(&labels).inc();
                    tracing::warn!(interface = %self.name, %address, %error, "l2: sending announcement");
                }
            };
            let next = match self.schedule.get(&address).and_then(|d| d.remaining) {
                Some(n) if n > 1 => Some(Due {
                    at: now + self.config.burst_interval,
                    remaining: Some(n - 1),
                }),
                _ => self.config.reannounce.map(|p| Due {
                    at: now + p,
                    remaining: None,
                }),
            };
            match next {
                Some(d) => {
                    self.schedule.insert(address, d);
                }
                None => {
                    self.schedule.remove(&address);
                }
            }
        }
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Solicited-node multicast memberships of one interface.
///
/// Two mechanisms, because each covers what the other misses:
/// - `PACKET_ADD_MEMBERSHIP` on the packet socket puts `33:33:ff:xx:xx:xx` into the NIC's
///   multicast filter: what makes the hardware deliver the frames at all, and it works even
///   with IPv6 disabled on the interface;
/// - an IPv6 group join (`IPV6_ADD_MEMBERSHIP` on a UDP socket) makes the kernel send MLD
///   reports, without which MLD-snooping switches (and Linux bridges with snooping on) stop
///   forwarding the group to this port. The kernel's own stack ignores solicitations for
///   targets it does not hold, so joining does not make it answer.
#[derive(Debug, Default)]
struct MulticastGroups {
    joined: BTreeSet<Ipv6Addr>,
    /// UDP sockets holding IPv6 joins, with their groups; a socket holds a bounded number
    /// of groups (the kernel limits per-socket memberships by option memory).
    mld: Vec<(UdpSocket, BTreeSet<Ipv6Addr>)>,
}

const GROUPS_PER_SOCKET: usize = 64;

impl MulticastGroups {
    fn reconcile(
        &mut self,
        want: &BTreeSet<Ipv6Addr>,
        packet: &PacketSocket,
        index: u32,
        name: &InterfaceName,
    ) {
        for group in want.difference(&self.joined.clone()) {
            if let Err(error) = packet.join_multicast(multicast_mac(*group).0) {
                tracing::warn!(interface = %name, %group, %error, "l2: adding multicast mac");
            }
            if let Err(error) = self.join_ipv6(*group, index) {
                tracing::warn!(interface = %name, %group, %error, "l2: ipv6 group join (no MLD report; snooping switches may not forward solicitations)");
            }
            self.joined.insert(*group);
        }
        for group in self.joined.difference(want).copied().collect::<Vec<_>>() {
            if let Err(error) = packet.leave_multicast(multicast_mac(group).0) {
                tracing::debug!(interface = %name, %group, %error, "l2: removing multicast mac");
            }
            for (socket, groups) in &mut self.mld {
                if groups.remove(&group) {
                    let _ = socket.leave_multicast_v6(&group, index);
                }
            }
            self.joined.remove(&group);
        }
        self.mld.retain(|(_, g)| !g.is_empty());
    }

    fn join_ipv6(&mut self, group: Ipv6Addr, index: u32) -> io::Result<()> {
        if let Some((socket, groups)) = self
            .mld
            .iter_mut()
            .find(|(_, g)| g.len() < GROUPS_PER_SOCKET)
        {
            socket.join_multicast_v6(&group, index)?;
            groups.insert(group);
            return Ok(());
        }
        let socket = UdpSocket::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)))?;
        socket.join_multicast_v6(&group, index)?;
        self.mld.push((socket, BTreeSet::from([group])));
        Ok(())
    }
}
