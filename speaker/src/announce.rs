//! The pure function: ([`World`], this node) → what this node announces.
//!
//! [`plan`] computes it from scratch; [`Planner`] keeps the result per address and
//! recomputes only the addresses an update touched ([`Dirty`]), which is what the speaker
//! runs. A property test holds the two equal.
//!
//! Eligibility of a node for an address of a Service, checked in this order (the first
//! failing rule is the reason given, [`NotAnnounced`]):
//!
//! 1. the address lies in a pool ([`NotAnnounced::NotInPool`]) that an advertisement of the
//!    mode selects together with the Service's labels ([`NotAnnounced::NoAdvertisement`]);
//! 2. the Node is known ([`NotAnnounced::NodeUnknown`]), not labelled
//!    `node.kubernetes.io/exclude-from-external-load-balancers`
//!    ([`NotAnnounced::NodeExcluded`]), and its `NetworkUnavailable` is not True
//!    ([`NotAnnounced::NetworkUnavailable`]);
//! 3. its speaker is alive: a member of the membership, or with membership off a Ready
//!    Node ([`NotAnnounced::SpeakerNotLive`]);
//! 4. it matches the nodeSelectors of one of those advertisements
//!    ([`NotAnnounced::NodeNotSelected`]);
//! 5. with `externalTrafficPolicy: Local`, an EndpointSlice of the Service has a ready,
//!    not terminating endpoint whose `nodeName` is the node
//!    ([`NotAnnounced::NoLocalEndpoint`]).
//!
//! Several Services on one address (shared IPs) are announced together: a node is eligible
//! for the address if it is eligible for any of them.
//!
//! **L2**: the eligible nodes are ranked by [`crate::election`]; the first owns the address.
//! Every speaker computes the same owner from the same world. The owner answers on the
//! interfaces of the advertisements that selected it (an advertisement without interfaces:
//! automatic choice, which then wins over explicit lists).
//!
//! **BGP**: every eligible node announces. Each advertisement that selected the node sends
//! the address, truncated to its aggregation length, to the node's peers it names (all of
//! them when it names none), with its communities and local preference and the node's
//! InternalIP of the address's family as next hop. Two advertisements yielding the same
//! prefix to the same peer merge: communities are united, the higher local preference wins.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ferrolb_api::validate::Community as ApiCommunity;
use ipnet::IpNet;

use crate::bgp::wire::{Community, LargeCommunity};
use crate::bgp::{Password, PeerConfig, PeerKey, RouteAttrs, RouteSet};
use crate::election;
use crate::l2::InterfaceName;
use crate::membership::NodeName;
use crate::world::{
    BgpAdvEntry, Dirty, L2AdvEntry, NodeEntry, PeerName, SecretKey, ServiceEntry, ServiceKey,
    TrafficPolicy, World,
};

/// How long a peer keeps our routes after our session drops, when graceful restart is on:
/// long enough for a DaemonSet pod to be replaced.
pub const GRACEFUL_RESTART_TIME: Duration = Duration::from_secs(120);

/// Why an address of a Service is not announced by this node in one mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NotAnnounced {
    /// The address lies in no (readable) IPAddressPool.
    NotInPool,
    /// No advertisement of this mode selects the address's pool and the Service.
    NoAdvertisement,
    /// This node's Node object is not known (yet).
    NodeUnknown,
    /// The node is labelled `node.kubernetes.io/exclude-from-external-load-balancers`.
    NodeExcluded,
    /// The node's `NetworkUnavailable` condition is True.
    NetworkUnavailable,
    /// The node's speaker is not a live member (or, membership off, the Node is not Ready).
    SpeakerNotLive,
    /// No advertisement that selects the address selects this node.
    NodeNotSelected,
    /// `externalTrafficPolicy: Local` and no ready endpoint of the Service on this node.
    NoLocalEndpoint,
    /// L2: another node won the election.
    OwnedElsewhere,
    /// BGP: none of the advertisements' peers has a session from this node.
    NoPeer,
    /// BGP: the node has no InternalIP of the address's family to use as next hop.
    NoNextHop,
}

impl NotAnnounced {
    pub const ALL: [NotAnnounced; 11] = [
        NotAnnounced::NotInPool,
        NotAnnounced::NoAdvertisement,
        NotAnnounced::NodeUnknown,
        NotAnnounced::NodeExcluded,
        NotAnnounced::NetworkUnavailable,
        NotAnnounced::SpeakerNotLive,
        NotAnnounced::NodeNotSelected,
        NotAnnounced::NoLocalEndpoint,
        NotAnnounced::OwnedElsewhere,
        NotAnnounced::NoPeer,
        NotAnnounced::NoNextHop,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotAnnounced::NotInPool => "NotInPool",
            NotAnnounced::NoAdvertisement => "NoAdvertisement",
            NotAnnounced::NodeUnknown => "NodeUnknown",
            NotAnnounced::NodeExcluded => "NodeExcluded",
            NotAnnounced::NetworkUnavailable => "NetworkUnavailable",
            NotAnnounced::SpeakerNotLive => "SpeakerNotLive",
            NotAnnounced::NodeNotSelected => "NodeNotSelected",
            NotAnnounced::NoLocalEndpoint => "NoLocalEndpoint",
            NotAnnounced::OwnedElsewhere => "OwnedElsewhere",
            NotAnnounced::NoPeer => "NoPeer",
            NotAnnounced::NoNextHop => "NoNextHop",
        }
    }
}

impl std::fmt::Display for NotAnnounced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The interfaces an owned address is answered on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InterfaceChoice {
    /// Chosen from the node's interfaces ([`crate::l2::LinkTable::select`]).
    Automatic,
    /// The union of the advertisements' `interfaces`.
    Only(BTreeSet<InterfaceName>),
}

impl InterfaceChoice {
    fn merge(&mut self, other: &InterfaceChoice) {
        match (&mut *self, other) {
            (InterfaceChoice::Automatic, _) => {}
            (_, InterfaceChoice::Automatic) => *self = InterfaceChoice::Automatic,
            (InterfaceChoice::Only(a), InterfaceChoice::Only(b)) => a.extend(b.iter().cloned()),
        }
    }

    /// The explicit list for [`crate::l2::LinkTable::select`] (empty: automatic).
    pub fn explicit(&self) -> Vec<InterfaceName> {
        match self {
            InterfaceChoice::Automatic => Vec::new(),
            InterfaceChoice::Only(set) => set.iter().cloned().collect(),
        }
    }
}

/// One address of a Service in L2 mode, seen from this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2Outcome {
    /// The elected node, if any node is eligible.
    pub owner: Option<NodeName>,
    /// Announced here on these interfaces, or why not.
    pub here: Result<InterfaceChoice, NotAnnounced>,
}

/// One address of a Service in BGP mode on this node: the peers it goes to, or why not.
pub type BgpOutcome = Result<BTreeSet<PeerName>, NotAnnounced>;

/// What this node does with each address of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceOutcome {
    pub l2: BTreeMap<IpAddr, L2Outcome>,
    pub bgp: BTreeMap<IpAddr, BgpOutcome>,
}

/// Why a BGPPeer selecting this node has no session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerProblem {
    #[error("the BGPPeer is invalid: {0}")]
    Invalid(String),
    #[error(
        "no router ID: set spec.routerID or give the node an IPv4 InternalIP to derive one from"
    )]
    NoRouterId,
    #[error("password secret {0} not found")]
    SecretMissing(SecretKey),
    #[error("password secret {secret} has no key {key:?}")]
    SecretKeyMissing { secret: SecretKey, key: String },
    #[error("password in secret {0} is not UTF-8 text")]
    PasswordNotText(SecretKey),
    #[error("BGPPeer {0} already configures a session to the same address and port")]
    Duplicate(PeerName),
}

/// Everything this node should announce.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// L2: the addresses this node owns and where to answer for them.
    pub l2: BTreeMap<IpAddr, InterfaceChoice>,
    /// BGP: the peers selecting this node, with their session configuration.
    pub peers: BTreeMap<PeerName, Result<PeerConfig, PeerProblem>>,
    /// BGP: the routes for each peer with a configuration.
    pub routes: BTreeMap<PeerName, RouteSet>,
    /// Per Service with addresses: the outcome of each address in each mode.
    pub services: BTreeMap<ServiceKey, ServiceOutcome>,
}

/// The plan for `me`, computed from scratch.
pub fn plan(world: &World, me: &NodeName) -> Plan {
    let mut planner = Planner::new(me.clone());
    planner.update(world, &Dirty::all());
    planner.plan()
}

/// Mergeable route attributes of one (peer, prefix) of one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Attrs {
    next_hop: IpAddr,
    communities: BTreeSet<Community>,
    large_communities: BTreeSet<LargeCommunity>,
    local_pref: Option<u32>,
}

impl Attrs {
    fn merge(&mut self, other: &Attrs) {
        self.communities.extend(other.communities.iter().copied());
        self.large_communities
            .extend(other.large_communities.iter().copied());
        self.local_pref = match (self.local_pref, other.local_pref) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
    }

    fn to_route_attrs(&self) -> RouteAttrs {
        RouteAttrs {
            next_hop: self.next_hop,
            communities: self.communities.clone(),
            large_communities: self.large_communities.clone(),
            local_pref: self.local_pref,
        }
    }
}

/// The cached result for one address.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AddressPlan {
    l2_here: Option<InterfaceChoice>,
    routes: BTreeMap<(PeerName, IpNet), Attrs>,
    services: BTreeMap<ServiceKey, (L2Outcome, BgpOutcome)>,
}

/// The incremental form of [`plan`].
#[derive(Debug, Clone)]
pub struct Planner {
    me: NodeName,
    peers: BTreeMap<PeerName, Result<PeerConfig, PeerProblem>>,
    addresses: BTreeMap<IpAddr, AddressPlan>,
}

impl Planner {
    pub fn new(me: NodeName) -> Self {
        Planner {
            me,
            peers: BTreeMap::new(),
            addresses: BTreeMap::new(),
        }
    }

    pub fn node(&self) -> &NodeName {
        &self.me
    }

    /// Recomputes what `dirty` names. Returns whether the plan changed.
    pub fn update(&mut self, world: &World, dirty: &Dirty) -> bool {
        let mut changed = false;
        let touched: Vec<IpAddr> = if dirty.all {
            let peers = plan_peers(world, &self.me);
            changed |= peers != self.peers;
            self.peers = peers;
            let before = self.addresses.len();
            self.addresses
                .retain(|a, _| world.by_address.contains_key(a));
            changed |= before != self.addresses.len();
            world.by_address.keys().copied().collect()
        } else {
            dirty.addresses.iter().copied().collect()
        };
        let ctx = Context::new(world, &self.me, &self.peers);
        for addr in touched {
            match world.by_address.get(&addr) {
                Some(services) => {
                    let new = ctx.address(addr, services);
                    if self.addresses.get(&addr) != Some(&new) {
                        self.addresses.insert(addr, new);
                        changed = true;
                    }
                }
                None => changed |= self.addresses.remove(&addr).is_some(),
            }
        }
        changed
    }

    /// The current plan (assembled from the per-address results).
    pub fn plan(&self) -> Plan {
        let mut plan = Plan {
            peers: self.peers.clone(),
            ..Plan::default()
        };
        let mut merged: BTreeMap<PeerName, BTreeMap<IpNet, Attrs>> = BTreeMap::new();
        for (addr, a) in &self.addresses {
            if let Some(choice) = &a.l2_here {
                plan.l2.insert(*addr, choice.clone());
            }
            for ((peer, prefix), attrs) in &a.routes {
                merged
                    .entry(peer.clone())
                    .or_default()
                    .entry(*prefix)
                    .and_modify(|m| m.merge(attrs))
                    .or_insert_with(|| attrs.clone());
            }
            for (svc, (l2, bgp)) in &a.services {
                let out = plan.services.entry(svc.clone()).or_default();
                out.l2.insert(*addr, l2.clone());
                out.bgp.insert(*addr, bgp.clone());
            }
        }
        for (peer, routes) in merged {
            let mut set = RouteSet::new();
            // One allocation per distinct attribute set, as RouteSet intends.
            let mut shared: BTreeMap<RouteAttrs, Arc<RouteAttrs>> = BTreeMap::new();
            for (prefix, attrs) in routes {
                let attrs = attrs.to_route_attrs();
                let arc = shared
                    .entry(attrs.clone())
                    .or_insert_with(|| Arc::new(attrs))
                    .clone();
                // The next hop is chosen of the prefix's family, so this cannot fail.
                if let Err(error) = set.insert(prefix, arc) {
                    tracing::error!(%error, "route refused");
                }
            }
            plan.routes.insert(peer, set);
        }
        plan
    }
}

/// The BGPPeers selecting `me`, with their session configuration or the problem.
fn plan_peers(world: &World, me: &NodeName) -> BTreeMap<PeerName, Result<PeerConfig, PeerProblem>> {
    let mut out = BTreeMap::new();
    let Some(node) = world.nodes.get(me) else {
        return out;
    };
    let mut by_key: BTreeMap<PeerKey, PeerName> = BTreeMap::new();
    for (name, entry) in &world.peers {
        let entry = match entry {
            Ok(e) => e,
            Err(reason) => {
                out.insert(name.clone(), Err(PeerProblem::Invalid(reason.clone())));
                continue;
            }
        };
        if !entry.node_selectors.matches(&node.labels) {
            continue;
        }
        let config = peer_config(entry, node, world).and_then(|c| match by_key.get(&c.peer) {
            Some(first) => Err(PeerProblem::Duplicate(first.clone())),
            None => {
                by_key.insert(c.peer, name.clone());
                Ok(c)
            }
        });
        out.insert(name.clone(), config);
    }
    out
}

fn peer_config(
    entry: &crate::world::PeerEntry,
    node: &NodeEntry,
    world: &World,
) -> Result<PeerConfig, PeerProblem> {
    let s = &entry.settings;
    let router_id = s
        .router_id
        .or_else(|| {
            node.internal_ips.iter().find_map(|a| match a {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
        })
        .ok_or(PeerProblem::NoRouterId)?;
    let password = match entry.secret() {
        None => None,
        Some((secret, key)) => {
            let data = world
                .secrets
                .get(&secret)
                .ok_or_else(|| PeerProblem::SecretMissing(secret.clone()))?;
            let bytes = data.get(key).ok_or_else(|| PeerProblem::SecretKeyMissing {
                secret: secret.clone(),
                key: key.to_owned(),
            })?;
            let text = String::from_utf8(bytes.clone())
                .map_err(|_| PeerProblem::PasswordNotText(secret.clone()))?;
            Some(Password::new(text))
        }
    };
    let mut c = PeerConfig::new(
        PeerKey::new(s.peer_address, s.peer_port),
        s.my_asn,
        s.peer_asn,
        router_id,
    );
    c.hold_time = s.hold_time;
    c.keepalive_time = s.keepalive_time;
    c.connect_retry = s.connect_time;
    c.connect_retry_max = c.connect_retry_max.max(s.connect_time);
    c.password = password;
    c.graceful_restart = s.graceful_restart.then_some(GRACEFUL_RESTART_TIME);
    c.source_address = s.source_address;
    c.ebgp_multihop = s.ebgp_multi_hop.then_some(255);
    Ok(c)
}

/// What one address computation reads, prepared once per update.
struct Context<'a> {
    world: &'a World,
    me: &'a NodeName,
    my_node: Option<&'a NodeEntry>,
    /// This node's peers that have a session.
    my_peers: BTreeSet<&'a PeerName>,
    l2: Vec<&'a L2AdvEntry>,
    bgp: Vec<&'a BgpAdvEntry>,
}

/// The advertisements of one mode that select a (pool, Service).
struct Selected<'a, A> {
    svc_key: &'a ServiceKey,
    svc: &'a ServiceEntry,
    advs: Vec<&'a A>,
}

trait Advertisement {
    fn node_selectors(&self) -> &crate::world::SelectorList;
}

impl Advertisement for L2AdvEntry {
    fn node_selectors(&self) -> &crate::world::SelectorList {
        &self.node_selectors
    }
}

impl Advertisement for BgpAdvEntry {
    fn node_selectors(&self) -> &crate::world::SelectorList {
        &self.node_selectors
    }
}

impl<'a> Context<'a> {
    fn new(
        world: &'a World,
        me: &'a NodeName,
        peers: &'a BTreeMap<PeerName, Result<PeerConfig, PeerProblem>>,
    ) -> Self {
        Context {
            world,
            me,
            my_node: world.nodes.get(me),
            my_peers: peers
                .iter()
                .filter(|(_, c)| c.is_ok())
                .map(|(n, _)| n)
                .collect(),
            l2: world
                .l2_advertisements
                .values()
                .filter_map(|a| a.as_ref().ok())
                .collect(),
            bgp: world
                .bgp_advertisements
                .values()
                .filter_map(|a| a.as_ref().ok())
                .collect(),
        }
    }

    fn address(&self, addr: IpAddr, services: &BTreeSet<ServiceKey>) -> AddressPlan {
        // Per Service: its pool, and the advertisements of each mode selecting both.
        let mut l2_sel: Vec<Result<Selected<'a, L2AdvEntry>, NotAnnounced>> = Vec::new();
        let mut bgp_sel: Vec<Result<Selected<'a, BgpAdvEntry>, NotAnnounced>> = Vec::new();
        let mut keys: Vec<&ServiceKey> = Vec::new();
        for key in services {
            let Some((key, svc)) = self.world.services.get_key_value(key) else {
                continue;
            };
            keys.push(key);
            match self.world.pool_of(svc, addr) {
                None => {
                    l2_sel.push(Err(NotAnnounced::NotInPool));
                    bgp_sel.push(Err(NotAnnounced::NotInPool));
                }
                Some((pool, entry)) => {
                    let l2: Vec<&L2AdvEntry> = self
                        .l2
                        .iter()
                        .copied()
                        .filter(|a| {
                            a.pools.selects(pool, &entry.labels)
                                && a.service_selectors.matches(&svc.labels)
                        })
                        .collect();
                    let bgp: Vec<&BgpAdvEntry> = self
                        .bgp
                        .iter()
                        .copied()
                        .filter(|a| a.pools.selects(pool, &entry.labels))
                        .collect();
                    l2_sel.push(selected(key, svc, l2));
                    bgp_sel.push(selected(key, svc, bgp));
                }
            }
        }

        // L2: every node eligible through any of the Services is a candidate.
        let candidates: Vec<&str> = self
            .world
            .nodes
            .iter()
            .filter(|(name, node)| {
                l2_sel
                    .iter()
                    .filter_map(|s| s.as_ref().ok())
                    .any(|s| self.eligible(name, Some(node), s).is_ok())
            })
            .map(|(name, _)| name.as_str())
            .collect();
        let owner =
            election::owner(addr, candidates.iter().copied()).and_then(|n| NodeName::new(n).ok());
        let owned_here = owner.as_ref() == Some(self.me);
        let mut l2_here: Option<InterfaceChoice> = None;
        if owned_here {
            for s in l2_sel.iter().filter_map(|s| s.as_ref().ok()) {
                if self.eligible(self.me, self.my_node, s).is_err() {
                    continue;
                }
                for adv in &s.advs {
                    if !self.selects_me(*adv) {
                        continue;
                    }
                    let choice = if adv.interfaces.is_empty() {
                        InterfaceChoice::Automatic
                    } else {
                        InterfaceChoice::Only(adv.interfaces.iter().cloned().collect())
                    };
                    match &mut l2_here {
                        Some(c) => c.merge(&choice),
                        None => l2_here = Some(choice),
                    }
                }
            }
        }

        // BGP: this node's routes for the address.
        let mut routes: BTreeMap<(PeerName, IpNet), Attrs> = BTreeMap::new();
        let mut bgp_reasons: Vec<Option<NotAnnounced>> = Vec::with_capacity(bgp_sel.len());
        for s in &bgp_sel {
            let s = match s {
                Ok(s) => s,
                Err(reason) => {
                    bgp_reasons.push(Some(*reason));
                    continue;
                }
            };
            if let Err(reason) = self.eligible(self.me, self.my_node, s) {
                bgp_reasons.push(Some(reason));
                continue;
            }
            let Some(next_hop) = self.my_node.and_then(|n| n.internal_ip_like(addr)) else {
                bgp_reasons.push(Some(NotAnnounced::NoNextHop));
                continue;
            };
            let mut any = false;
            for adv in s.advs.iter().filter(|a| self.selects_me(**a)) {
                let prefix = aggregate(addr, &adv.settings);
                let attrs = attrs_of(adv, next_hop);
                for peer in &self.my_peers {
                    if !adv.peers.is_empty() && !adv.peers.contains(*peer) {
                        continue;
                    }
                    any = true;
                    routes
                        .entry(((*peer).clone(), prefix))
                        .and_modify(|m| m.merge(&attrs))
                        .or_insert_with(|| attrs.clone());
                }
            }
            bgp_reasons.push((!any).then_some(NotAnnounced::NoPeer));
        }
        let bgp_peers: BTreeSet<PeerName> = routes.keys().map(|(p, _)| p.clone()).collect();

        let mut out = BTreeMap::new();
        for (i, key) in keys.into_iter().enumerate() {
            let l2_here_result = match (&l2_here, &l2_sel[i]) {
                (Some(choice), _) => Ok(choice.clone()),
                (None, Err(reason)) => Err(*reason),
                (None, Ok(s)) => match self.eligible(self.me, self.my_node, s) {
                    Err(reason) => Err(reason),
                    // Eligible but not the owner (or the owner but the only eligible
                    // Services' advertisements do not select this node, which
                    // `eligible` already rules out).
                    Ok(()) => Err(NotAnnounced::OwnedElsewhere),
                },
            };
            let bgp = if bgp_peers.is_empty() {
                Err(bgp_reasons[i].unwrap_or(NotAnnounced::NoPeer))
            } else {
                Ok(bgp_peers.clone())
            };
            out.insert(
                key.clone(),
                (
                    L2Outcome {
                        owner: owner.clone(),
                        here: l2_here_result,
                    },
                    bgp,
                ),
            );
        }
        AddressPlan {
            l2_here,
            routes,
            services: out,
        }
    }

    fn selects_me<A: Advertisement>(&self, adv: &A) -> bool {
        self.my_node
            .is_some_and(|n| adv.node_selectors().matches(&n.labels))
    }

    /// Rules 2–5 of the module documentation for one node and one Service.
    fn eligible<A: Advertisement>(
        &self,
        name: &NodeName,
        node: Option<&NodeEntry>,
        s: &Selected<'_, A>,
    ) -> Result<(), NotAnnounced> {
        let node = node.ok_or(NotAnnounced::NodeUnknown)?;
        if node.excluded() {
            return Err(NotAnnounced::NodeExcluded);
        }
        if node.network_unavailable {
            return Err(NotAnnounced::NetworkUnavailable);
        }
        if !self.world.is_live(name, node) {
            return Err(NotAnnounced::SpeakerNotLive);
        }
        if !s
            .advs
            .iter()
            .any(|a| a.node_selectors().matches(&node.labels))
        {
            return Err(NotAnnounced::NodeNotSelected);
        }
        if s.svc.traffic_policy == TrafficPolicy::Local
            && !self.world.has_ready_endpoint(s.svc_key, name)
        {
            return Err(NotAnnounced::NoLocalEndpoint);
        }
        Ok(())
    }
}

fn selected<'a, A>(
    svc_key: &'a ServiceKey,
    svc: &'a ServiceEntry,
    advs: Vec<&'a A>,
) -> Result<Selected<'a, A>, NotAnnounced> {
    if advs.is_empty() {
        Err(NotAnnounced::NoAdvertisement)
    } else {
        Ok(Selected { svc_key, svc, advs })
    }
}

fn aggregate(addr: IpAddr, settings: &ferrolb_api::validate::AdvertisementSettings) -> IpNet {
    let len = match addr {
        IpAddr::V4(_) => settings.aggregation_length.min(32),
        IpAddr::V6(_) => settings.aggregation_length_v6.min(128),
    };
    // In range by the min above, so `new` cannot fail; fall back to the host route anyway.
    IpNet::new(addr, len)
        .map(|n| n.trunc())
        .unwrap_or_else(|_| IpNet::from(addr))
}

fn attrs_of(adv: &BgpAdvEntry, next_hop: IpAddr) -> Attrs {
    let mut communities = BTreeSet::new();
    let mut large_communities = BTreeSet::new();
    for c in &adv.settings.communities {
        match *c {
            ApiCommunity::Standard { high, low } => {
                communities.insert(Community::new(high, low));
            }
            ApiCommunity::Large {
                global,
                local1,
                local2,
            } => {
                large_communities.insert(LargeCommunity::new(global, local1, local2));
            }
        }
    }
    Attrs {
        next_hop,
        communities,
        large_communities,
        local_pref: adv.settings.local_pref,
    }
}

#[cfg(test)]
#[path = "announce_tests.rs"]
mod tests;
