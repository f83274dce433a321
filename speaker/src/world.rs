//! What the speaker knows about the cluster: a typed, compact copy of the objects it watches,
//! and which addresses an update touches.
//!
//! Objects are converted once, when they arrive ([`ServiceEntry::from_service`],
//! [`NodeEntry::from_node`], …), into the little the speaker needs: parsed addresses, compiled
//! selectors, checked peer settings (the api crate's parsers, so what the speaker announces is
//! exactly what the controller and the CRDs accept). The pure function
//! ([`crate::announce`]) then reads this [`World`] and never a Kubernetes object.
//!
//! Every update returns a [`Dirty`]: the addresses whose announcement may have changed, or
//! "everything" for the kinds that affect every address (nodes, pools, advertisements,
//! peers, membership). An update that does not change the typed entry (a Node heartbeat, a
//! Service's unrelated field) touches nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;

use ferrolb_api::addr::AddressRanges;
use ferrolb_api::annotations::ServiceAnnotation;
use ferrolb_api::selector::Selector;
use ferrolb_api::validate::{self, AdvertisementSettings, PeerSettings};
use ferrolb_api::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement, PasswordSecret};
use k8s_openapi::api::core::v1::{Node, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use crate::l2::InterfaceName;
use crate::membership::NodeName;

/// Labels of an object.
pub type Labels = BTreeMap<String, String>;

/// The label that keeps a node out of every external load balancer (a Kubernetes convention,
/// honoured by cloud providers too).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";
/// The label an EndpointSlice names its Service with.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// namespace/name of a Service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    pub namespace: String,
    pub name: String,
}

impl ServiceKey {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ServiceKey {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// namespace/name of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SliceKey {
    pub namespace: String,
    pub name: String,
}

/// namespace/name of a Secret a BGPPeer references.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(name: impl Into<String>) -> Self {
                $name(name.into())
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
    };
}

name_type!(
    /// The name of an IPAddressPool.
    PoolName
);
name_type!(
    /// The name of an L2Advertisement or a BGPAdvertisement.
    AdvertisementName
);
name_type!(
    /// The name of a BGPPeer.
    PeerName
);

/// `spec.externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    /// Only nodes with a ready endpoint of the Service may receive its traffic.
    Local,
}

/// A LoadBalancer Service this speaker serves, as far as announcing it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceEntry {
    pub uid: String,
    pub labels: Labels,
    /// `status.loadBalancer.ingress[].ip`, in order, without duplicates.
    pub addresses: Vec<IpAddr>,
    /// The pool of each address, from `ferrolb.io/ip-allocated-from-pool` (address order; a
    /// shorter list applies its last name to the remaining addresses).
    pub pools: Vec<PoolName>,
    pub traffic_policy: TrafficPolicy,
}

impl ServiceEntry {
    /// The typed entry for `svc`, or `None` when ferrolb does not serve it: not of type
    /// LoadBalancer, or of another `loadBalancerClass` than `class` (`None`: Services without
    /// a class).
    pub fn from_service(svc: &Service, class: Option<&str>) -> Option<(ServiceKey, Self)> {
        let spec = svc.spec.as_ref()?;
        if spec.type_.as_deref() != Some("LoadBalancer")
            || spec.load_balancer_class.as_deref() != class
        {
            return None;
        }
        let key = ServiceKey::new(
            svc.metadata.namespace.clone().unwrap_or_default(),
            svc.metadata.name.clone()?,
        );
        let mut addresses: Vec<IpAddr> = Vec::new();
        let ingress = svc
            .status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref());
        for entry in ingress.into_iter().flatten() {
            // The same parser the controller and the CRDs use: no zones, no IPv4-mapped IPv6.
            if let Some(ip) = entry.ip.as_deref().and_then(validate::parse_ip)
                && !addresses.contains(&ip)
            {
                addresses.push(ip);
            }
        }
        let pools = ServiceAnnotation::IpAllocatedFromPool
            .lookup_in(svc.metadata.annotations.as_ref())
            .map(|found| {
                found
                    .value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(PoolName::new)
                    .collect()
            })
            .unwrap_or_default();
        let traffic_policy = match spec.external_traffic_policy.as_deref() {
            Some("Local") => TrafficPolicy::Local,
            _ => TrafficPolicy::Cluster,
        };
        Some((
            key,
            ServiceEntry {
                uid: svc.metadata.uid.clone().unwrap_or_default(),
                labels: svc.metadata.labels.clone().unwrap_or_default(),
                addresses,
                pools,
                traffic_policy,
            },
        ))
    }

    /// The pool the controller attributed `addr` to, if the annotation says.
    pub fn pool_hint(&self, addr: IpAddr) -> Option<&PoolName> {
        let index = self.addresses.iter().position(|a| *a == addr)?;
        self.pools.get(index).or_else(|| self.pools.last())
    }
}

/// The nodes on which one EndpointSlice has a ready endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceEntry {
    pub service: ServiceKey,
    pub ready_nodes: BTreeSet<NodeName>,
}

impl SliceEntry {
    /// `None` for a slice that names no Service (not made by the EndpointSlice controller
    /// for a Service, so nothing ferrolb announces depends on it).
    pub fn from_slice(slice: &EndpointSlice) -> Option<(SliceKey, Self)> {
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let service = slice
            .metadata
            .labels
            .as_ref()?
            .get(SERVICE_NAME_LABEL)?
            .clone();
        let key = SliceKey {
            namespace: namespace.clone(),
            name: slice.metadata.name.clone()?,
        };
        let ready_nodes = slice
            .endpoints
            .iter()
            .filter(|e| {
                let c = e.conditions.as_ref();
                // Kubernetes: a missing `ready` means ready, a missing `terminating` means
                // not terminating. A terminating endpoint never counts, even when it is
                // still ready (publishNotReadyAddresses): it is going away.
                let ready = c.and_then(|c| c.ready).unwrap_or(true);
                let terminating = c.and_then(|c| c.terminating).unwrap_or(false);
                ready && !terminating
            })
            .filter_map(|e| e.node_name.as_deref())
            .filter_map(|n| NodeName::new(n).ok())
            .collect();
        Some((
            key,
            SliceEntry {
                service: ServiceKey::new(namespace, service),
                ready_nodes,
            },
        ))
    }
}

/// A node, as far as eligibility goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeEntry {
    pub labels: Labels,
    /// Its `NetworkUnavailable` condition is True.
    pub network_unavailable: bool,
    /// Its `Ready` condition is True (liveness when membership is off).
    pub ready: bool,
    /// Its InternalIP addresses, in the order the Node lists them.
    pub internal_ips: Vec<IpAddr>,
}

impl NodeEntry {
    pub fn from_node(node: &Node) -> Option<(NodeName, Self)> {
        let name = NodeName::new(node.metadata.name.clone()?).ok()?;
        let status = node.status.as_ref();
        let condition = |type_: &str| {
            status
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == type_))
                .is_some_and(|c| c.status == "True")
        };
        let internal_ips = status
            .and_then(|s| s.addresses.as_ref())
            .into_iter()
            .flatten()
            .filter(|a| a.type_ == "InternalIP")
            .filter_map(|a| validate::parse_ip(&a.address))
            .collect();
        Some((
            name,
            NodeEntry {
                labels: node.metadata.labels.clone().unwrap_or_default(),
                network_unavailable: condition("NetworkUnavailable"),
                ready: condition("Ready"),
                internal_ips,
            },
        ))
    }

    pub fn excluded(&self) -> bool {
        self.labels.contains_key(EXCLUDE_LABEL)
    }

    /// The first InternalIP of the family of `like`.
    pub fn internal_ip_like(&self, like: IpAddr) -> Option<IpAddr> {
        self.internal_ips
            .iter()
            .copied()
            .find(|a| a.is_ipv4() == like.is_ipv4())
    }
}

/// An IPAddressPool: its labels and addresses, or why they could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub labels: Labels,
    pub addresses: Result<AddressRanges, String>,
}

impl PoolEntry {
    pub fn from_pool(pool: &IPAddressPool) -> Option<(PoolName, Self)> {
        let name = PoolName::new(pool.metadata.name.clone()?);
        Some((
            name,
            PoolEntry {
                labels: pool.metadata.labels.clone().unwrap_or_default(),
                addresses: AddressRanges::parse(&pool.spec.addresses).map_err(|e| e.to_string()),
            },
        ))
    }

    pub fn contains(&self, addr: IpAddr) -> bool {
        self.addresses.as_ref().is_ok_and(|r| r.contains(addr))
    }
}

/// Which pools an advertisement selects.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolChoice {
    pub names: BTreeSet<PoolName>,
    pub selectors: Vec<Selector>,
}

impl PoolChoice {
    /// Names and selectors both empty: every pool.
    pub fn selects(&self, name: &PoolName, labels: &Labels) -> bool {
        (self.names.is_empty() && self.selectors.is_empty())
            || self.names.contains(name)
            || self.selectors.iter().any(|s| s.matches(labels))
    }
}

/// A list of label selectors where an empty list means "all".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SelectorList(pub Vec<Selector>);

impl SelectorList {
    pub fn matches(&self, labels: &Labels) -> bool {
        self.0.is_empty() || self.0.iter().any(|s| s.matches(labels))
    }

    fn compile(field: &str, selectors: &[LabelSelector]) -> Result<Self, String> {
        selectors
            .iter()
            .enumerate()
            .map(|(i, s)| Selector::new(s).map_err(|e| format!("{field}[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()
            .map(SelectorList)
    }
}

fn pool_choice(names: &[String], selectors: &[LabelSelector]) -> Result<PoolChoice, String> {
    Ok(PoolChoice {
        names: names.iter().map(PoolName::new).collect(),
        selectors: SelectorList::compile("spec.ipAddressPoolSelectors", selectors)?.0,
    })
}

/// An L2Advertisement, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct L2AdvEntry {
    pub pools: PoolChoice,
    pub node_selectors: SelectorList,
    /// Empty: interfaces are chosen automatically.
    pub interfaces: Vec<InterfaceName>,
    pub service_selectors: SelectorList,
}

impl L2AdvEntry {
    /// The entry, or the reason the advertisement is ignored (an invalid selector or
    /// interface name: announcing it anyway could announce from nodes or for Services the
    /// admin meant to exclude).
    #[allow(clippy::type_complexity)]
    pub fn from_advertisement(
        adv: &L2Advertisement,
    ) -> Option<(AdvertisementName, Result<Self, String>)> {
        let name = AdvertisementName::new(adv.metadata.name.clone()?);
        let spec = &adv.spec;
        let entry = (|| {
            validate::l2_advertisement(spec).map_err(join_errors)?;
            Ok(L2AdvEntry {
                pools: pool_choice(&spec.ip_address_pools, &spec.ip_address_pool_selectors)?,
                node_selectors: SelectorList::compile("spec.nodeSelectors", &spec.node_selectors)?,
                interfaces: spec
                    .interfaces
                    .iter()
                    .map(|i| InterfaceName::new(i.as_str()))
                    .collect(),
                service_selectors: SelectorList::compile(
                    "spec.serviceSelectors",
                    &spec.service_selectors,
                )?,
            })
        })();
        Some((name, entry))
    }
}

/// A BGPAdvertisement, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BgpAdvEntry {
    pub settings: AdvertisementSettings,
    pub pools: PoolChoice,
    pub node_selectors: SelectorList,
    /// Empty: every peer of the node.
    pub peers: BTreeSet<PeerName>,
}

impl BgpAdvEntry {
    #[allow(clippy::type_complexity)]
    pub fn from_advertisement(
        adv: &BGPAdvertisement,
    ) -> Option<(AdvertisementName, Result<Self, String>)> {
        let name = AdvertisementName::new(adv.metadata.name.clone()?);
        let spec = &adv.spec;
        let entry = (|| {
            Ok(BgpAdvEntry {
                settings: validate::bgp_advertisement(spec).map_err(join_errors)?,
                pools: pool_choice(&spec.ip_address_pools, &spec.ip_address_pool_selectors)?,
                node_selectors: SelectorList::compile("spec.nodeSelectors", &spec.node_selectors)?,
                peers: spec.peers.iter().map(PeerName::new).collect(),
            })
        })();
        Some((name, entry))
    }
}

/// A BGPPeer, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerEntry {
    pub settings: PeerSettings,
    pub node_selectors: SelectorList,
}

impl PeerEntry {
    #[allow(clippy::type_complexity)]
    pub fn from_peer(peer: &BGPPeer) -> Option<(PeerName, Result<Self, String>)> {
        let name = PeerName::new(peer.metadata.name.clone()?);
        let entry = (|| {
            Ok(PeerEntry {
                settings: validate::bgp_peer(&peer.spec).map_err(join_errors)?,
                node_selectors: SelectorList::compile(
                    "spec.nodeSelectors",
                    &peer.spec.node_selectors,
                )?,
            })
        })();
        Some((name, entry))
    }

    pub fn secret(&self) -> Option<(SecretKey, &str)> {
        self.settings.password_secret.as_ref().map(secret_ref)
    }
}

fn secret_ref(s: &PasswordSecret) -> (SecretKey, &str) {
    (
        SecretKey {
            namespace: s.namespace.clone(),
            name: s.name.clone(),
        },
        s.key.as_str(),
    )
}

/// The data of a referenced Secret.
pub type SecretData = BTreeMap<String, Vec<u8>>;

pub fn secret_data(secret: &Secret) -> Option<(SecretKey, SecretData)> {
    let key = SecretKey {
        namespace: secret.metadata.namespace.clone().unwrap_or_default(),
        name: secret.metadata.name.clone()?,
    };
    let data = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    Some((key, data))
}

fn join_errors<E: fmt::Display>(errors: Vec<E>) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// What an update may have changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty {
    /// Every address, and the BGP sessions.
    pub all: bool,
    pub addresses: BTreeSet<IpAddr>,
}

impl Dirty {
    pub fn all() -> Self {
        Dirty {
            all: true,
            addresses: BTreeSet::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.addresses.is_empty()
    }

    pub fn merge(&mut self, other: Dirty) {
        self.all |= other.all;
        if self.all {
            self.addresses.clear();
        } else {
            self.addresses.extend(other.addresses);
        }
    }

    fn addresses(addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        Dirty {
            addresses: addrs.into_iter().collect(),
            ..Dirty::default()
        }
    }
}

/// One change to the world, as the watchers report it.
#[derive(Debug, Clone)]
pub enum Update {
    Service(ServiceKey, Option<ServiceEntry>),
    Slice(SliceKey, Option<SliceEntry>),
    Node(NodeName, Option<NodeEntry>),
    Pool(PoolName, Option<PoolEntry>),
    L2Advertisement(AdvertisementName, Option<Result<L2AdvEntry, String>>),
    BgpAdvertisement(AdvertisementName, Option<Result<BgpAdvEntry, String>>),
    Peer(PeerName, Option<Result<PeerEntry, String>>),
    Secret(SecretKey, Option<SecretData>),
    /// The live speakers (`None`: membership is off, Node readiness decides).
    Live(Option<BTreeSet<NodeName>>),
}

/// Everything the pure function reads.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub services: BTreeMap<ServiceKey, ServiceEntry>,
    /// Which Services hold each address (more than one when shared).
    pub by_address: BTreeMap<IpAddr, BTreeSet<ServiceKey>>,
    pub slices: BTreeMap<SliceKey, SliceEntry>,
    /// Ready endpoints per node, per Service (a count over slices, so one slice's removal
    /// does not hide another slice's endpoint on the same node).
    pub ready: BTreeMap<ServiceKey, BTreeMap<NodeName, u32>>,
    pub nodes: BTreeMap<NodeName, NodeEntry>,
    pub pools: BTreeMap<PoolName, PoolEntry>,
    pub l2_advertisements: BTreeMap<AdvertisementName, Result<L2AdvEntry, String>>,
    pub bgp_advertisements: BTreeMap<AdvertisementName, Result<BgpAdvEntry, String>>,
    pub peers: BTreeMap<PeerName, Result<PeerEntry, String>>,
    pub secrets: BTreeMap<SecretKey, SecretData>,
    /// `None`: membership off; liveness is Node readiness.
    pub live: Option<BTreeSet<NodeName>>,
}

impl World {
    pub fn new() -> Self {
        World::default()
    }

    /// Applies one update and says what it touched.
    pub fn apply(&mut self, update: Update) -> Dirty {
        match update {
            Update::Service(key, entry) => self.set_service(key, entry),
            Update::Slice(key, entry) => self.set_slice(key, entry),
            Update::Node(name, entry) => {
                if replace(&mut self.nodes, name, entry) {
                    Dirty::all()
                } else {
                    Dirty::default()
                }
            }
            Update::Pool(name, entry) => everything_if(replace(&mut self.pools, name, entry)),
            Update::L2Advertisement(name, entry) => {
                everything_if(replace(&mut self.l2_advertisements, name, entry))
            }
            Update::BgpAdvertisement(name, entry) => {
                everything_if(replace(&mut self.bgp_advertisements, name, entry))
            }
            Update::Peer(name, entry) => everything_if(replace(&mut self.peers, name, entry)),
            Update::Secret(key, data) => {
                // A password appearing or changing starts or restarts a session, which
                // changes where routes go: rare enough to recompute everything.
                let referenced = self.referenced_secrets().contains(&key);
                everything_if(replace(&mut self.secrets, key, data) && referenced)
            }
            Update::Live(live) => {
                if self.live == live {
                    Dirty::default()
                } else {
                    self.live = live;
                    Dirty::all()
                }
            }
        }
    }

    fn set_service(&mut self, key: ServiceKey, entry: Option<ServiceEntry>) -> Dirty {
        let old = self.services.get(&key);
        if old == entry.as_ref() {
            return Dirty::default();
        }
        let mut touched: BTreeSet<IpAddr> = BTreeSet::new();
        if let Some(old) = old {
            for a in &old.addresses {
                touched.insert(*a);
                if let Some(holders) = self.by_address.get_mut(a) {
                    holders.remove(&key);
                    if holders.is_empty() {
                        self.by_address.remove(a);
                    }
                }
            }
        }
        match entry {
            Some(entry) => {
                for a in &entry.addresses {
                    touched.insert(*a);
                    self.by_address.entry(*a).or_default().insert(key.clone());
                }
                self.services.insert(key, entry);
            }
            None => {
                self.services.remove(&key);
            }
        }
        Dirty::addresses(touched)
    }

    fn set_slice(&mut self, key: SliceKey, entry: Option<SliceEntry>) -> Dirty {
        let old = self.slices.get(&key);
        if old == entry.as_ref() {
            return Dirty::default();
        }
        let mut services: BTreeSet<ServiceKey> = BTreeSet::new();
        if let Some(old) = self.slices.remove(&key) {
            if let Some(counts) = self.ready.get_mut(&old.service) {
                for n in &old.ready_nodes {
                    if let Some(c) = counts.get_mut(n) {
                        *c -= 1;
                        if *c == 0 {
                            counts.remove(n);
                        }
                    }
                }
                if counts.is_empty() {
                    self.ready.remove(&old.service);
                }
            }
            services.insert(old.service);
        }
        if let Some(entry) = entry {
            let counts = self.ready.entry(entry.service.clone()).or_default();
            for n in &entry.ready_nodes {
                *counts.entry(n.clone()).or_default() += 1;
            }
            if counts.is_empty() {
                self.ready.remove(&entry.service);
            }
            services.insert(entry.service.clone());
            self.slices.insert(key, entry);
        }
        // Endpoints only matter to Services with Local traffic policy.
        Dirty::addresses(
            services
                .iter()
                .filter_map(|s| self.services.get(s))
                .filter(|s| s.traffic_policy == TrafficPolicy::Local)
                .flat_map(|s| s.addresses.iter().copied()),
        )
    }

    /// Replaces every object of one kind at once (after a watcher's re-list): objects not in
    /// `entries` are removed. Costs what the differences touch.
    pub fn replace_all(&mut self, kind: Kind, updates: Vec<Update>) -> Dirty {
        let mut dirty = Dirty::default();
        let mut keep = KeySet::default();
        for u in &updates {
            keep.note(u);
        }
        let gone: Vec<Update> = match kind {
            Kind::Service => gone(&self.services, &keep.services, Update::Service),
            Kind::Slice => gone(&self.slices, &keep.slices, Update::Slice),
            Kind::Node => gone(&self.nodes, &keep.nodes, Update::Node),
            Kind::Pool => gone(&self.pools, &keep.pools, Update::Pool),
            Kind::L2Advertisement => gone(
                &self.l2_advertisements,
                &keep.l2_advertisements,
                Update::L2Advertisement,
            ),
            Kind::BgpAdvertisement => gone(
                &self.bgp_advertisements,
                &keep.bgp_advertisements,
                Update::BgpAdvertisement,
            ),
            Kind::Peer => gone(&self.peers, &keep.peers, Update::Peer),
        };
        for u in gone.into_iter().chain(updates) {
            dirty.merge(self.apply(u));
        }
        dirty
    }

    /// The Secrets the BGPPeers reference (the only ones the speaker may watch).
    pub fn referenced_secrets(&self) -> BTreeSet<SecretKey> {
        self.peers
            .values()
            .filter_map(|p| p.as_ref().ok())
            .filter_map(|p| p.secret().map(|(k, _)| k))
            .collect()
    }

    /// Nodes with a ready endpoint of `svc`.
    pub fn has_ready_endpoint(&self, svc: &ServiceKey, node: &NodeName) -> bool {
        self.ready.get(svc).is_some_and(|m| m.contains_key(node))
    }

    /// Whether the speaker of `node` is alive: in the membership, or (membership off) its
    /// Node is Ready.
    pub fn is_live(&self, node: &NodeName, entry: &NodeEntry) -> bool {
        match &self.live {
            Some(members) => members.contains(node),
            None => entry.ready,
        }
    }

    /// The pool `addr` of `svc` belongs to: the one the controller recorded if it still
    /// holds the address, otherwise the first pool by name that does.
    pub fn pool_of(&self, svc: &ServiceEntry, addr: IpAddr) -> Option<(&PoolName, &PoolEntry)> {
        if let Some(hint) = svc.pool_hint(addr)
            && let Some(entry) = self.pools.get(hint)
            && entry.contains(addr)
        {
            return self.pools.get_key_value(hint);
        }
        self.pools.iter().find(|(_, p)| p.contains(addr))
    }
}

/// The kinds that are re-listed as a whole ([`World::replace_all`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Service,
    Slice,
    Node,
    Pool,
    L2Advertisement,
    BgpAdvertisement,
    Peer,
}

#[derive(Default)]
struct KeySet {
    services: BTreeSet<ServiceKey>,
    slices: BTreeSet<SliceKey>,
    nodes: BTreeSet<NodeName>,
    pools: BTreeSet<PoolName>,
    l2_advertisements: BTreeSet<AdvertisementName>,
    bgp_advertisements: BTreeSet<AdvertisementName>,
    peers: BTreeSet<PeerName>,
}

impl KeySet {
    fn note(&mut self, u: &Update) {
        match u {
            Update::Service(k, _) => {
                self.services.insert(k.clone());
            }
            Update::Slice(k, _) => {
                self.slices.insert(k.clone());
            }
            Update::Node(k, _) => {
                self.nodes.insert(k.clone());
            }
            Update::Pool(k, _) => {
                self.pools.insert(k.clone());
            }
            Update::L2Advertisement(k, _) => {
                self.l2_advertisements.insert(k.clone());
            }
            Update::BgpAdvertisement(k, _) => {
                self.bgp_advertisements.insert(k.clone());
            }
            Update::Peer(k, _) => {
                self.peers.insert(k.clone());
            }
            Update::Secret(..) | Update::Live(..) => {}
        }
    }
}

fn gone<K: Ord + Clone, V, T>(
    have: &BTreeMap<K, V>,
    keep: &BTreeSet<K>,
    make: impl Fn(K, Option<T>) -> Update,
) -> Vec<Update> {
    have.keys()
        .filter(|k| !keep.contains(k))
        .map(|k| make(k.clone(), None))
        .collect()
}

fn replace<K: Ord, V: PartialEq>(map: &mut BTreeMap<K, V>, key: K, value: Option<V>) -> bool {
    match value {
        Some(v) => {
            if map.get(&key) == Some(&v) {
                false
            } else {
                map.insert(key, v);
                true
            }
        }
        None => map.remove(&key).is_some(),
    }
}

fn everything_if(changed: bool) -> Dirty {
    if changed {
        Dirty::all()
    } else {
        Dirty::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_load_balancer_services_of_our_class_are_served() {
        let lb = service(json!({
            "metadata": {"name": "a", "namespace": "ns"},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}, {"hostname": "x.example"}, {"ip": "192.0.2.10"}]}}
        }));
        let (key, entry) = ServiceEntry::from_service(&lb, None).unwrap();
        assert_eq!(key, ServiceKey::new("ns", "a"));
        assert_eq!(
            entry.addresses,
            vec![
                "192.0.2.10".parse::<IpAddr>().unwrap(),
                "2001:db8::10".parse().unwrap()
            ]
        );
        assert!(ServiceEntry::from_service(&lb, Some("other")).is_none());
        let cluster_ip = service(json!({"metadata": {"name": "b"}, "spec": {"type": "ClusterIP"}}));
        assert!(ServiceEntry::from_service(&cluster_ip, None).is_none());
        let classed = service(json!({
            "metadata": {"name": "c"},
            "spec": {"type": "LoadBalancer", "loadBalancerClass": "x.example/lb"}
        }));
        assert!(ServiceEntry::from_service(&classed, None).is_none());
        assert!(ServiceEntry::from_service(&classed, Some("x.example/lb")).is_some());
    }

    #[test]
    fn pool_annotation_applies_its_last_name_to_remaining_addresses() {
        let svc = service(json!({
            "metadata": {"name": "a", "annotations": {"ferrolb.io/ip-allocated-from-pool": "p4, p6"}},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]}}
        }));
        let (_, e) = ServiceEntry::from_service(&svc, None).unwrap();
        assert_eq!(
            e.pool_hint("2001:db8::10".parse().unwrap()),
            Some(&PoolName::new("p6"))
        );
        let svc = service(json!({
            "metadata": {"name": "a", "annotations": {"metallb.universe.tf/ip-allocated-from-pool": "one"}},
            "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.10"}, {"ip": "2001:db8::10"}]}}
        }));
        let (_, e) = ServiceEntry::from_service(&svc, None).unwrap();
        assert_eq!(
            e.pool_hint("2001:db8::10".parse().unwrap()),
            Some(&PoolName::new("one"))
        );
    }

    #[test]
    fn endpoint_readiness_follows_kubernetes_defaults_and_skips_terminating() {
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": {"name": "a-xyz", "namespace": "ns", "labels": {"kubernetes.io/service-name": "a"}},
            "addressType": "IPv4",
            "endpoints": [
                {"addresses": ["10.0.0.1"], "nodeName": "n-ready", "conditions": {"ready": true}},
                {"addresses": ["10.0.0.2"], "nodeName": "n-nil"},
                {"addresses": ["10.0.0.3"], "nodeName": "n-unready", "conditions": {"ready": false}},
                {"addresses": ["10.0.0.4"], "nodeName": "n-terminating", "conditions": {"ready": true, "terminating": true}},
                {"addresses": ["10.0.0.5"], "conditions": {"ready": true}}
            ]
        }))
        .unwrap();
        let (_, e) = SliceEntry::from_slice(&slice).unwrap();
        let names: Vec<&str> = e.ready_nodes.iter().map(|n| n.as_str()).collect();
        assert_eq!(names, ["n-nil", "n-ready"]);
        assert_eq!(e.service, ServiceKey::new("ns", "a"));
    }

    #[test]
    fn node_conditions_and_addresses() {
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {EXCLUDE_LABEL: ""}},
            "status": {
                "conditions": [
                    {"type": "Ready", "status": "True"},
                    {"type": "NetworkUnavailable", "status": "True"}
                ],
                "addresses": [
                    {"type": "Hostname", "address": "n1"},
                    {"type": "InternalIP", "address": "192.0.2.11"},
                    {"type": "InternalIP", "address": "2001:db8::11"}
                ]
            }
        }))
        .unwrap();
        let (_, e) = NodeEntry::from_node(&node).unwrap();
        assert!(e.excluded() && e.network_unavailable && e.ready);
        assert_eq!(
            e.internal_ip_like("2001:db8::1".parse().unwrap()),
            Some("2001:db8::11".parse().unwrap())
        );
    }

    fn slice_update(name: &str, svc: &str, nodes: &[&str]) -> Update {
        Update::Slice(
            SliceKey {
                namespace: "ns".into(),
                name: name.into(),
            },
            Some(SliceEntry {
                service: ServiceKey::new("ns", svc),
                ready_nodes: nodes.iter().map(|n| NodeName::new(*n).unwrap()).collect(),
            }),
        )
    }

    #[test]
    fn ready_endpoints_are_counted_over_slices() {
        let mut w = World::new();
        let key = ServiceKey::new("ns", "a");
        let n1 = NodeName::new("n1").unwrap();
        w.apply(slice_update("s1", "a", &["n1"]));
        w.apply(slice_update("s2", "a", &["n1", "n2"]));
        w.apply(Update::Slice(
            SliceKey {
                namespace: "ns".into(),
                name: "s2".into(),
            },
            None,
        ));
        assert!(w.has_ready_endpoint(&key, &n1));
        w.apply(slice_update("s1", "a", &[]));
        assert!(!w.has_ready_endpoint(&key, &n1));
        assert!(w.ready.is_empty());
    }

    fn svc_entry(addrs: &[&str], policy: TrafficPolicy) -> ServiceEntry {
        ServiceEntry {
            uid: "u".into(),
            labels: Labels::new(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
            pools: vec![],
            traffic_policy: policy,
        }
    }

    #[test]
    fn updates_touch_only_what_they_change() {
        let mut w = World::new();
        let a = ServiceKey::new("ns", "a");
        let d = w.apply(Update::Service(
            a.clone(),
            Some(svc_entry(&["192.0.2.10"], TrafficPolicy::Local)),
        ));
        assert_eq!(d.addresses.len(), 1);
        // The same entry again: nothing.
        assert!(
            w.apply(Update::Service(
                a.clone(),
                Some(svc_entry(&["192.0.2.10"], TrafficPolicy::Local))
            ))
            .is_empty()
        );
        // Address change touches old and new.
        let d = w.apply(Update::Service(
            a.clone(),
            Some(svc_entry(&["192.0.2.11"], TrafficPolicy::Local)),
        ));
        assert_eq!(d.addresses.len(), 2);
        assert!(!w.by_address.contains_key(&"192.0.2.10".parse().unwrap()));
        // Endpoints of a Local Service touch its addresses; of a Cluster one, nothing.
        assert_eq!(w.apply(slice_update("s", "a", &["n1"])).addresses.len(), 1);
        w.apply(Update::Service(
            a,
            Some(svc_entry(&["192.0.2.11"], TrafficPolicy::Cluster)),
        ));
        assert!(w.apply(slice_update("s", "a", &["n2"])).is_empty());
        // A Node that did not change touches nothing; a changed one everything.
        let n = NodeName::new("n1").unwrap();
        assert!(
            w.apply(Update::Node(n.clone(), Some(NodeEntry::default())))
                .all
        );
        assert!(
            w.apply(Update::Node(n, Some(NodeEntry::default())))
                .is_empty()
        );
    }

    #[test]
    fn relist_removes_what_is_gone() {
        let mut w = World::new();
        for name in ["a", "b"] {
            w.apply(Update::Service(
                ServiceKey::new("ns", name),
                Some(svc_entry(&["192.0.2.10"], TrafficPolicy::Cluster)),
            ));
        }
        let d = w.replace_all(
            Kind::Service,
            vec![Update::Service(
                ServiceKey::new("ns", "b"),
                Some(svc_entry(&["192.0.2.10"], TrafficPolicy::Cluster)),
            )],
        );
        assert_eq!(d.addresses.len(), 1);
        assert_eq!(w.services.len(), 1);
        assert_eq!(
            w.by_address[&"192.0.2.10".parse::<IpAddr>().unwrap()].len(),
            1
        );
    }

    #[test]
    fn invalid_advertisements_are_kept_with_their_reason() {
        let adv: L2Advertisement = serde_json::from_value(json!({
            "metadata": {"name": "bad"},
            "spec": {"interfaces": ["not a name"], "nodeSelectors": [{"matchLabels": {"a": "b"}}]}
        }))
        .unwrap();
        let (_, e) = L2AdvEntry::from_advertisement(&adv).unwrap();
        let err = e.unwrap_err();
        assert!(err.contains("spec.interfaces[0]"), "{err}");
        let adv: L2Advertisement = serde_json::from_value(json!({
            "metadata": {"name": "bad"},
            "spec": {"nodeSelectors": [{"matchExpressions": [{"key": "a", "operator": "Maybe"}]}]}
        }))
        .unwrap();
        let err = L2AdvEntry::from_advertisement(&adv).unwrap().1.unwrap_err();
        assert!(err.starts_with("spec.nodeSelectors[0]:"), "{err}");
    }
}
