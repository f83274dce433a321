//! The IP allocator: pure, synchronous, no Kubernetes I/O.
//!
//! The reconciler converts `IPAddressPool`s into [`PoolSpec`]s and LoadBalancer Services into
//! [`ServiceRequest`]s, calls the allocator, and writes out what it returns. Time is an input
//! (`now`), never read here, so every result is a function of the calls made.
//!
//! How the reconciler drives it:
//!
//! 1. On start and on every leader change: [`Allocator::set_pool`] for every valid pool, then
//!    [`Allocator::load`] with every served Service and the addresses its status carries. The
//!    report lists addresses that are no longer valid (outside every usable pool, duplicated —
//!    the Service created first keeps it —, conflicting sharing); nothing is allocated yet.
//!    Then [`Allocator::reassign`] (or `assign`) every Service, which keeps what is valid
//!    and allocates what is missing.
//! 2. On a Service event: [`Allocator::assign`] with its current request; on deletion (or type
//!    or class changed away) [`Allocator::release`]. One call touches one Service.
//! 3. On a pool event: [`Allocator::set_pool`] / [`Allocator::remove_pool`]; the result names
//!    exactly the Services whose addresses became invalid (already released; re-allocate them
//!    with `reassign` at once and emit an Event — until then a RequireDualStack Service may
//!    hold one family only) and those whose address stays but is now attributed to another
//!    pool. Afterwards retry [`Allocator::unsatisfied`] Services: a new pool may serve them.
//! 4. Pool status: [`Allocator::pool_counters`], [`Allocator::overlapping_pools`].
//!
//! Rules (each has a unit test named for it in `tests.rs`):
//!
//! - Pools are interval sets; nothing enumerates a pool. The lowest free address of a pool
//!   is found with one ordered-map lookup per pool entry ([`runs`]), whatever is held.
//! - An address is held by one Service, or by one sharing group, whatever pools overlap.
//! - Pool choice: the requested pool; else pools whose `serviceAllocation` selects the
//!   Service, by ascending priority, ties by name; then pools without
//!   `serviceAllocation`, by name. `autoAssign: false` pools only when requested by name or
//!   by address. A `serviceAllocation` with no namespace and no selector selects everyone.
//! - Families: SingleStack one address of the first family; PreferDualStack one per listed
//!   family where possible; RequireDualStack both or none. Families are chosen independently,
//!   so a dual-stack Service may get its two addresses from two pools.
//! - Requested addresses define the Service's addresses completely: one per family, each in a
//!   family the Service serves, each in a pool it may use, each free or shared compatibly.
//! - Sharing: same key, no common port+protocol, both `Cluster` or both `Local` with the same
//!   pod selector. A Service with a key joins a compatible group's address before taking a
//!   new one.
//! - Sticky: an address stays while the Service may still use it. An address that is no
//!   longer valid is released (and a refused Service holds nothing it cannot keep).
//! - Address choice: the lowest free address of the first pool that has one; an address freed
//!   within the reuse delay is taken from a pool only when that pool has nothing else.

mod pools;
#[cfg(test)]
mod proptests;
mod runs;
#[cfg(test)]
mod tests;

use std::collections::hash_map::{Entry, RandomState};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_api::addr::{AddressRanges, IntervalSet};
use ferrolb_api::conditions::IpAllocatedReason;
use ferrolb_api::selector::{Selector, any_matches};

pub use ferrolb_api::addr::Family;

use pools::{PoolBits, PoolId, Pools, fidx};
use runs::RunSet;

/// How long a freed address is avoided: clients and caches may still point at it.
pub const DEFAULT_REUSE_DELAY: Duration = Duration::from_secs(300);

// ---- keys ----------------------------------------------------------------------------------

/// A Service, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
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

/// An `IPAddressPool` name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolName(pub String);

impl fmt::Display for PoolName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for PoolName {
    fn from(s: &str) -> Self {
        PoolName(s.to_string())
    }
}

/// An `allow-shared-ip` key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SharingKey(pub String);

impl fmt::Display for SharingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

pub type Labels = BTreeMap<String, String>;

// ---- inputs --------------------------------------------------------------------------------

/// A pool as the allocator needs it (the reconciler converts the `IPAddressPool`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    pub name: PoolName,
    pub ranges: AddressRanges,
    pub auto_assign: bool,
    pub avoid_buggy_ips: bool,
    pub allocation: Option<ServiceAllocation>,
}

/// Which Services a pool prefers to serve, and how strongly.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceAllocation {
    /// Lower first, ties by pool name (as `ferrolb.io` defines it; MetalLB instead treats 0
    /// as "unset", after every other priority).
    pub priority: i32,
    /// The namespace matches when it is listed here or selected by `namespace_selectors`
    /// (or when both are empty).
    pub namespaces: Vec<String>,
    pub namespace_selectors: Vec<Selector>,
    /// When not empty, one of them must select the Service's labels.
    pub service_selectors: Vec<Selector>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IpFamilyPolicy {
    SingleStack,
    PreferDualStack,
    RequireDualStack,
}

impl fmt::Display for IpFamilyPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamilyPolicy::SingleStack => "SingleStack",
            IpFamilyPolicy::PreferDualStack => "PreferDualStack",
            IpFamilyPolicy::RequireDualStack => "RequireDualStack",
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
}

/// One Service port as sharing sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServicePort {
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for ServicePort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        };
        write!(f, "{}/{p}", self.port)
    }
}

/// `externalTrafficPolicy`, with the pod selector that `Local` sharing must agree on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local {
        pod_selector: Labels,
    },
}

/// What a LoadBalancer Service asks of the allocator (the reconciler converts the Service;
/// annotations are parsed there, with `ferrolb_api::addr::parse_ip_list`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceRequest {
    pub key: ServiceKey,
    /// `metadata.creationTimestamp` in seconds: on a duplicate at [`Allocator::load`] the
    /// older Service keeps the address (ties: the lower key).
    pub created: i64,
    pub labels: Labels,
    /// Shared between the Services of a namespace.
    pub namespace_labels: Arc<Labels>,
    pub ip_family_policy: IpFamilyPolicy,
    /// `spec.ipFamilies` in order; empty means the family of the first requested address, or
    /// IPv4.
    pub ip_families: Vec<Family>,
    pub requested_ips: Vec<IpAddr>,
    pub requested_pool: Option<PoolName>,
    pub sharing_key: Option<SharingKey>,
    pub ports: Vec<ServicePort>,
    pub traffic_policy: TrafficPolicy,
}

impl ServiceRequest {
    /// A Cluster-policy SingleStack IPv4 request with no labels, ports or annotations.
    pub fn new(key: ServiceKey) -> Self {
        ServiceRequest {
            key,
            created: 0,
            labels: Labels::new(),
            namespace_labels: Arc::default(),
            ip_family_policy: IpFamilyPolicy::SingleStack,
            ip_families: vec![Family::V4],
            requested_ips: Vec::new(),
            requested_pool: None,
            sharing_key: None,
            ports: Vec::new(),
            traffic_policy: TrafficPolicy::Cluster,
        }
    }
}

/// A Service and the addresses its status already carries, for [`Allocator::load`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingService {
    pub request: ServiceRequest,
    pub addresses: Vec<IpAddr>,
    /// The pools the addresses were attributed to (the `ip-allocated-from-pool` annotation),
    /// in address order; a shorter list applies its last name to the remaining addresses (one
    /// name, MetalLB's form, applies to all). Kept when the pool still covers the address.
    pub pools: Vec<PoolName>,
}

// ---- outputs -------------------------------------------------------------------------------

/// One address of a Service and the pool it is attributed to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssignedAddress {
    pub ip: IpAddr,
    pub pool: PoolName,
}

/// A Service's addresses after [`Allocator::assign`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// In the Service's family order.
    pub addresses: Vec<AssignedAddress>,
    /// PreferDualStack families that could not be served, with the reason.
    pub unmet: Vec<Refusal>,
    /// Whether the addresses differ from before the call.
    pub changed: bool,
}

fn sharing_note(theirs: &Option<SharingKey>, ours: &Option<SharingKey>) -> String {
    match (theirs, ours) {
        (None, _) => " (it does not allow sharing)".into(),
        (Some(t), None) => format!(" (shared under key {t}; this service has no sharing key)"),
        (Some(t), Some(o)) => format!(" (shared under key {t}; this service's key is {o})"),
    }
}

fn names(pools: &[PoolName]) -> String {
    pools
        .iter()
        .map(|p| p.0.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Why a Service got no address (of a family). Each message names the pool, address or key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("requested address {ip} is {family}, but the {policy} service serves {served}")]
    RequestedFamilyNotServed {
        ip: IpAddr,
        family: Family,
        policy: IpFamilyPolicy,
        served: String,
    },
    #[error(
        "two {family} addresses requested, {first} and {second}; request at most one per family"
    )]
    RequestedTwoOfFamily {
        family: Family,
        first: IpAddr,
        second: IpAddr,
    },
    #[error(
        "the service is RequireDualStack but requests only {ip}; request one address per \
         family, or none"
    )]
    RequireDualStackNeedsBoth { ip: IpAddr },
    #[error("requested pool {pool} does not exist")]
    RequestedPoolMissing { pool: PoolName },
    #[error(
        "requested pool {pool} does not serve this service (its serviceAllocation does not select it)"
    )]
    RequestedPoolNotAllowed { pool: PoolName },
    #[error("requested pool {pool} has no {family} addresses")]
    RequestedPoolLacksFamily { pool: PoolName, family: Family },
    #[error("no address pool with {family} addresses may be used by this service")]
    NoPoolForFamily { family: Family },
    #[error("no free {family} address left in pool {}", names(pools))]
    PoolExhausted {
        family: Family,
        pools: Vec<PoolName>,
    },
    #[error("requested address {ip} is not in any pool this service may use")]
    RequestedIpNotInPool { ip: IpAddr },
    #[error(
        "requested address {ip} is in use by service {holder}{}",
        sharing_note(holder_key, own_key)
    )]
    RequestedIpInUse {
        ip: IpAddr,
        holder: ServiceKey,
        holder_key: Option<SharingKey>,
        own_key: Option<SharingKey>,
    },
    #[error(
        "address {ip} is shared under key {key} by service {holder}, which also uses port {port}"
    )]
    SharingPortConflict {
        ip: IpAddr,
        key: SharingKey,
        holder: ServiceKey,
        port: ServicePort,
    },
    #[error(
        "address {ip} is shared under key {key} by service {holder} with another \
         externalTrafficPolicy or pod selector; sharing needs both Cluster, or both Local \
         with the same selector"
    )]
    SharingTrafficPolicyMismatch {
        ip: IpAddr,
        key: SharingKey,
        holder: ServiceKey,
    },
}

impl Refusal {
    /// The reason of the Service condition `ferrolb.io/IPAllocated=False`.
    pub fn reason(&self) -> IpAllocatedReason {
        match self {
            Refusal::RequestedFamilyNotServed { .. }
            | Refusal::RequestedTwoOfFamily { .. }
            | Refusal::RequireDualStackNeedsBoth { .. } => IpAllocatedReason::InvalidAnnotation,
            Refusal::RequestedPoolMissing { .. }
            | Refusal::RequestedPoolNotAllowed { .. }
            | Refusal::RequestedPoolLacksFamily { .. }
            | Refusal::NoPoolForFamily { .. } => IpAllocatedReason::NoMatchingPool,
            Refusal::PoolExhausted { .. } => IpAllocatedReason::PoolExhausted,
            Refusal::RequestedIpNotInPool { .. } | Refusal::RequestedIpInUse { .. } => {
                IpAllocatedReason::RequestedIPUnavailable
            }
            Refusal::SharingPortConflict { .. } | Refusal::SharingTrafficPolicyMismatch { .. } => {
                IpAllocatedReason::SharingConflict
            }
        }
    }
}

/// Why an address a Service carried is not (or no longer) its own.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAddress {
    #[error("it is not in any pool the service may use")]
    NotInUsablePool,
    #[error("the service does not ask for an {family} address")]
    FamilyNotWanted { family: Family },
    #[error("the service asks for {requested} instead")]
    NotRequested { requested: IpAddr },
    #[error("the service already has an address of that family")]
    SecondOfFamily,
    #[error(
        "service {holder}, created earlier, holds it{}",
        sharing_note(holder_key, own_key)
    )]
    HeldByOlder {
        holder: ServiceKey,
        holder_key: Option<SharingKey>,
        own_key: Option<SharingKey>,
    },
    #[error("sharing it with service {holder} conflicts: {refusal}")]
    SharingConflict {
        holder: ServiceKey,
        refusal: Box<Refusal>,
    },
    #[error("{0}")]
    InvalidRequest(Box<Refusal>),
    #[error("the service is listed more than once")]
    DuplicateService,
}

/// An address taken from (or refused to) a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalidated {
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub reason: InvalidAddress,
}

impl fmt::Display for Invalidated {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "address {} of service {} is not valid: {}",
            self.ip, self.service, self.reason
        )
    }
}

/// An address that stays with its Service but is now attributed to another pool.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Reattributed {
    pub service: ServiceKey,
    pub ip: IpAddr,
    pub pool: PoolName,
}

/// What a pool edit did to Services. Both lists are sorted by Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolChange {
    /// Addresses released because their Service may no longer use them.
    pub invalidated: Vec<Invalidated>,
    pub reattributed: Vec<Reattributed>,
}

/// Addresses [`Allocator::load`] did not take back, sorted by Service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoadReport {
    pub rejected: Vec<Invalidated>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FamilyCounters {
    /// Held addresses attributed to the pool.
    pub assigned: u128,
    /// Addresses of the pool nobody holds (recently freed ones included). Saturates at
    /// `u128::MAX` for `::/0`.
    pub available: u128,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolCounters {
    pub v4: FamilyCounters,
    pub v6: FamilyCounters,
}

// ---- internal state ------------------------------------------------------------------------

type SvcId = u32;
type GroupId = u32;

/// Who holds an address: a Service without a sharing key, or a sharing group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Holder {
    Service(SvcId),
    Group(GroupId),
}

/// Per held address; packed into 8 bytes because there is one per address.
#[derive(Clone, Copy, Debug)]
struct Slot {
    /// A [`Holder`]: a group id with [`GROUP_BIT`] set, else a service id.
    packed: u32,
    /// The pool the address is attributed to (it lies in that pool).
    pool: PoolId,
}

const GROUP_BIT: u32 = 1 << 31;

impl Slot {
    fn new(holder: Holder, pool: PoolId) -> Self {
        let mut s = Slot { packed: 0, pool };
        s.set_holder(holder);
        s
    }

    fn holder(&self) -> Holder {
        if self.packed & GROUP_BIT != 0 {
            Holder::Group(self.packed & !GROUP_BIT)
        } else {
            Holder::Service(self.packed)
        }
    }

    fn set_holder(&mut self, holder: Holder) {
        self.packed = match holder {
            Holder::Service(id) => id,
            Holder::Group(id) => id | GROUP_BIT,
        };
    }
}

#[derive(Debug)]
struct FamilyState<T> {
    owner: BTreeMap<T, Slot>,
    /// Freed within the reuse delay and not held again.
    recent: BTreeMap<T, Instant>,
    expiry: BTreeSet<(Instant, T)>,
    /// Runs of held ∪ recent addresses.
    runs: RunSet<T>,
    /// The same with `.0`/`.255` bridged, for `avoidBuggyIPs` pools: kept (IPv4 only) while
    /// such a pool exists, so nobody else pays for its upkeep.
    bridged: Option<RunSet<T>>,
}

impl<T: PoolBits> FamilyState<T> {
    fn new() -> Self {
        FamilyState {
            owner: BTreeMap::new(),
            recent: BTreeMap::new(),
            expiry: BTreeSet::new(),
            runs: RunSet::new(false),
            bridged: None,
        }
    }

    fn occupy(&mut self, x: T) {
        self.runs.insert(x);
        if let Some(b) = &mut self.bridged {
            b.insert(x);
        }
    }

    fn vacate(&mut self, x: T) {
        let FamilyState {
            owner,
            recent,
            runs,
            bridged,
            ..
        } = self;
        let occupied = |s: T, e: T| {
            owner.range(s..=e).next().is_some() || recent.range(s..=e).next().is_some()
        };
        runs.remove(x, occupied);
        if let Some(b) = bridged {
            b.remove(x, occupied);
        }
    }
}

/// A Service's request as kept between calls, compact: most Services have no labels, no
/// annotations and Cluster policy, and pay for none of it.
#[derive(Clone, Debug)]
struct Stored {
    created: i64,
    namespace_labels: Arc<Labels>,
    policy: IpFamilyPolicy,
    families: [Option<Family>; 2],
    /// The first two ports; more (rare) live in `extras`.
    ports: [Option<ServicePort>; 2],
    extras: Option<Box<Extras>>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Extras {
    labels: Labels,
    requested: Vec<IpAddr>,
    requested_pool: Option<PoolName>,
    sharing: Option<SharingKey>,
    local: Option<Labels>,
    more_ports: Vec<ServicePort>,
}

static NO_LABELS: Labels = BTreeMap::new();

impl Stored {
    fn from_request(r: ServiceRequest) -> (ServiceKey, Stored) {
        let mut families = [None, None];
        for f in r.ip_families {
            if families[0].is_none() {
                families[0] = Some(f);
            } else if families[0] != Some(f) && families[1].is_none() {
                families[1] = Some(f);
            }
        }
        let local = match r.traffic_policy {
            TrafficPolicy::Cluster => None,
            TrafficPolicy::Local { pod_selector } => Some(pod_selector),
        };
        let mut ports = [None, None];
        let mut more_ports = Vec::new();
        for (i, p) in r.ports.into_iter().enumerate() {
            match ports.get_mut(i) {
                Some(slot) => *slot = Some(p),
                None => more_ports.push(p),
            }
        }
        let extras = Extras {
            labels: r.labels,
            requested: r.requested_ips,
            requested_pool: r.requested_pool,
            sharing: r.sharing_key,
            local,
            more_ports,
        };
        let stored = Stored {
            created: r.created,
            namespace_labels: r.namespace_labels,
            policy: r.ip_family_policy,
            families,
            ports,
            extras: (extras != Extras::default()).then(|| Box::new(extras)),
        };
        (r.key, stored)
    }

    fn to_request(&self, key: ServiceKey) -> ServiceRequest {
        let x = self.extras.as_deref().cloned().unwrap_or_default();
        ServiceRequest {
            key,
            created: self.created,
            labels: x.labels,
            namespace_labels: self.namespace_labels.clone(),
            ip_family_policy: self.policy,
            ip_families: self.families.iter().flatten().copied().collect(),
            requested_ips: x.requested,
            requested_pool: x.requested_pool,
            sharing_key: x.sharing,
            ports: self.ports().collect(),
            traffic_policy: match x.local {
                None => TrafficPolicy::Cluster,
                Some(pod_selector) => TrafficPolicy::Local { pod_selector },
            },
        }
    }

    fn ports(&self) -> impl Iterator<Item = ServicePort> + '_ {
        let more = self.extras.as_ref().map_or(&[][..], |x| &x.more_ports[..]);
        self.ports.iter().flatten().chain(more).copied()
    }

    fn labels(&self) -> &Labels {
        self.extras.as_ref().map_or(&NO_LABELS, |x| &x.labels)
    }
    fn requested(&self) -> &[IpAddr] {
        self.extras.as_ref().map_or(&[], |x| &x.requested)
    }
    fn requested_pool(&self) -> Option<&PoolName> {
        self.extras.as_ref().and_then(|x| x.requested_pool.as_ref())
    }
    fn sharing(&self) -> Option<&SharingKey> {
        self.extras.as_ref().and_then(|x| x.sharing.as_ref())
    }
    fn local(&self) -> Option<&Labels> {
        self.extras.as_ref().and_then(|x| x.local.as_ref())
    }

    /// The first family: as listed, else that of the first requested address, else IPv4.
    fn primary(&self) -> Family {
        self.families[0]
            .or_else(|| self.requested().first().map(|ip| Family::of(*ip)))
            .unwrap_or(Family::V4)
    }

    /// The families to serve and the requested address of each, or why the request is
    /// contradictory.
    fn wanted(&self) -> Result<Wanted, Refusal> {
        let primary = self.primary();
        let base = match self.policy {
            IpFamilyPolicy::SingleStack => [Some(primary), None],
            IpFamilyPolicy::PreferDualStack => [Some(primary), self.families[1]],
            IpFamilyPolicy::RequireDualStack => [Some(primary), Some(primary.other())],
        };
        let mut requested: [Option<IpAddr>; 2] = [None, None];
        for &ip in self.requested() {
            let family = Family::of(ip);
            if !base.contains(&Some(family)) {
                let served = base
                    .iter()
                    .flatten()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>();
                return Err(Refusal::RequestedFamilyNotServed {
                    ip,
                    family,
                    policy: self.policy,
                    served: served.join(" and "),
                });
            }
            if let Some(first) = requested[fidx(family)] {
                return Err(Refusal::RequestedTwoOfFamily {
                    family,
                    first,
                    second: ip,
                });
            }
            requested[fidx(family)] = Some(ip);
        }
        let mut families = base;
        if let Some(&ip) = self.requested().first() {
            if self.policy == IpFamilyPolicy::RequireDualStack && self.requested().len() < 2 {
                return Err(Refusal::RequireDualStackNeedsBoth { ip });
            }
            for f in &mut families {
                if f.is_some_and(|fam| requested[fidx(fam)].is_none()) {
                    *f = None;
                }
            }
        }
        Ok(Wanted {
            policy: self.policy,
            families,
            requested,
        })
    }
}

struct Wanted {
    policy: IpFamilyPolicy,
    families: [Option<Family>; 2],
    requested: [Option<IpAddr>; 2],
}

impl Wanted {
    fn families(&self) -> impl Iterator<Item = Family> + '_ {
        self.families.iter().flatten().copied()
    }
    fn has(&self, f: Family) -> bool {
        self.families.contains(&Some(f))
    }
    fn requested(&self, f: Family) -> Option<IpAddr> {
        self.requested[fidx(f)]
    }
}

#[derive(Debug)]
struct ServiceEntry {
    /// `namespace/name` (neither may contain '/'), one allocation for both.
    key: Box<str>,
    req: Stored,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
}

impl ServiceEntry {
    fn parts(&self) -> (&str, &str) {
        self.key.split_once('/').unwrap_or(("", &self.key))
    }
    fn namespace(&self) -> &str {
        self.parts().0
    }
    fn service_key(&self) -> ServiceKey {
        let (ns, name) = self.parts();
        ServiceKey::new(ns, name)
    }
    fn order_key(&self) -> (i64, &str) {
        (self.req.created, &self.key)
    }
}

/// Hashes are already SipHash outputs; hashing them again would only cost time.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// Service slots and an index from key hash to slot. The index stores a 64-bit hash, not a
/// second copy of the key; equal hashes of different keys (vanishingly rare, but possible)
/// spill into a side list.
#[derive(Debug, Default)]
struct Services {
    slots: Vec<Option<ServiceEntry>>,
    free: Vec<SvcId>,
    state: RandomState,
    index: HashMap<u64, SvcId, BuildHasherDefault<IdentityHasher>>,
    spill: HashMap<u64, Vec<SvcId>>,
}

impl Services {
    fn hash(&self, namespace: &str, name: &str) -> u64 {
        let mut h = self.state.build_hasher();
        h.write(namespace.as_bytes());
        h.write_u8(b'/');
        h.write(name.as_bytes());
        h.finish()
    }

    fn get(&self, id: SvcId) -> &ServiceEntry {
        // Ids come from the index, the owner maps and groups, which never outlive the slot.
        self.slots[id as usize].as_ref().expect("a live service id")
    }

    fn get_mut(&mut self, id: SvcId) -> &mut ServiceEntry {
        self.slots[id as usize].as_mut().expect("a live service id")
    }

    fn find(&self, key: &ServiceKey) -> Option<SvcId> {
        let h = self.hash(&key.namespace, &key.name);
        let is = |id: &SvcId| self.get(*id).parts() == (key.namespace.as_str(), key.name.as_str());
        if let Some(id) = self.index.get(&h).filter(|id| is(id)) {
            return Some(*id);
        }
        self.spill.get(&h)?.iter().copied().find(|id| is(id))
    }

    fn insert(&mut self, key: &ServiceKey, req: Stored) -> SvcId {
        let entry = ServiceEntry {
            key: format!("{}/{}", key.namespace, key.name).into_boxed_str(),
            req,
            v4: None,
            v6: None,
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(entry);
                id
            }
            None => {
                self.slots.push(Some(entry));
                (self.slots.len() - 1) as SvcId
            }
        };
        let h = self.hash(&key.namespace, &key.name);
        match self.index.entry(h) {
            Entry::Occupied(_) => self.spill.entry(h).or_default().push(id),
            Entry::Vacant(v) => {
                v.insert(id);
            }
        }
        id
    }

    fn remove(&mut self, id: SvcId) -> ServiceEntry {
        let entry = self.slots[id as usize].take().expect("a live service id");
        let (ns, name) = entry.parts();
        let h = self.hash(ns, name);
        if self.index.get(&h) == Some(&id) {
            match self.spill.get_mut(&h).and_then(Vec::pop) {
                Some(other) => {
                    self.index.insert(h, other);
                }
                None => {
                    self.index.remove(&h);
                }
            }
        }
        if let Some(list) = self.spill.get_mut(&h) {
            list.retain(|o| *o != id);
            if list.is_empty() {
                self.spill.remove(&h);
            }
        }
        self.free.push(id);
        entry
    }

    fn ids(&self) -> impl Iterator<Item = SvcId> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.is_some())
            .map(|(i, _)| i as SvcId)
    }
}

/// Services sharing one address under one key.
#[derive(Debug)]
struct Group {
    key: SharingKey,
    local: Option<Labels>,
    ip: IpAddr,
    members: Vec<SvcId>,
}

#[derive(Debug, Default)]
struct Groups {
    slots: Vec<Option<Group>>,
    free: Vec<GroupId>,
    by_key: HashMap<SharingKey, Vec<GroupId>>,
}

impl Groups {
    fn get(&self, id: GroupId) -> &Group {
        self.slots[id as usize].as_ref().expect("a live group id")
    }

    fn get_mut(&mut self, id: GroupId) -> &mut Group {
        self.slots[id as usize].as_mut().expect("a live group id")
    }

    fn create(&mut self, group: Group) -> GroupId {
        let key = group.key.clone();
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = Some(group);
                id
            }
            None => {
                self.slots.push(Some(group));
                (self.slots.len() - 1) as GroupId
            }
        };
        self.by_key.entry(key).or_default().push(id);
        id
    }

    fn delete(&mut self, id: GroupId) {
        if let Some(g) = self.slots[id as usize].take() {
            self.unindex(&g.key, id);
            self.free.push(id);
        }
    }

    fn unindex(&mut self, key: &SharingKey, id: GroupId) {
        if let Some(list) = self.by_key.get_mut(key) {
            list.retain(|g| *g != id);
            if list.is_empty() {
                self.by_key.remove(key);
            }
        }
    }

    fn rekey(&mut self, id: GroupId, key: SharingKey, local: Option<Labels>) {
        let old = self.get(id).key.clone();
        if old != key {
            self.unindex(&old, id);
            self.by_key.entry(key.clone()).or_default().push(id);
        }
        let g = self.get_mut(id);
        g.key = key;
        g.local = local;
    }
}

/// Address integers of one family with access to that family's allocator state.
trait Fam: PoolBits {
    fn state(a: &Allocator) -> &FamilyState<Self>;
    fn state_mut(a: &mut Allocator) -> &mut FamilyState<Self>;
    fn held(e: &ServiceEntry) -> Option<Self>;
    fn set_held(e: &mut ServiceEntry, x: Option<Self>);
    fn from_ip(ip: IpAddr) -> Option<Self>;
}

impl Fam for u32 {
    fn state(a: &Allocator) -> &FamilyState<u32> {
        &a.v4
    }
    fn state_mut(a: &mut Allocator) -> &mut FamilyState<u32> {
        &mut a.v4
    }
    fn held(e: &ServiceEntry) -> Option<u32> {
        e.v4.map(u32::from)
    }
    fn set_held(e: &mut ServiceEntry, x: Option<u32>) {
        e.v4 = x.map(Ipv4Addr::from);
    }
    fn from_ip(ip: IpAddr) -> Option<u32> {
        match ip {
            IpAddr::V4(a) => Some(a.into()),
            IpAddr::V6(_) => None,
        }
    }
}

impl Fam for u128 {
    fn state(a: &Allocator) -> &FamilyState<u128> {
        &a.v6
    }
    fn state_mut(a: &mut Allocator) -> &mut FamilyState<u128> {
        &mut a.v6
    }
    fn held(e: &ServiceEntry) -> Option<u128> {
        e.v6.map(u128::from)
    }
    fn set_held(e: &mut ServiceEntry, x: Option<u128>) {
        e.v6 = x.map(Ipv6Addr::from);
    }
    fn from_ip(ip: IpAddr) -> Option<u128> {
        match ip {
            IpAddr::V6(a) => Some(a.into()),
            IpAddr::V4(_) => None,
        }
    }
}

enum Plan<T> {
    Take { x: T, pool: PoolId },
    Join { group: GroupId },
}

/// Why a Service may not join a group's address.
enum ShareProblem {
    NotSharing,
    Traffic,
    Port(ServicePort, SvcId),
}

/// Whether the pool's `serviceAllocation` (if any) selects the Service.
fn selected_by(pool: &pools::Pool, e: &ServiceEntry) -> bool {
    let Some(a) = &pool.spec.allocation else {
        return true;
    };
    let namespace_ok = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
        || a.namespaces.iter().any(|n| n == e.namespace())
        || any_matches(&a.namespace_selectors, &*e.req.namespace_labels);
    let service_ok =
        a.service_selectors.is_empty() || any_matches(&a.service_selectors, e.req.labels());
    namespace_ok && service_ok
}

/// Whether the Service may hold `ip` through this pool (the pool contains it: checked apart).
fn may_use(pool: &pools::Pool, e: &ServiceEntry, ip: IpAddr) -> bool {
    selected_by(pool, e)
        && match e.req.requested_pool() {
            Some(rp) => pool.name() == rp,
            None => pool.spec.auto_assign || e.req.requested().contains(&ip),
        }
}

// ---- the allocator -------------------------------------------------------------------------

/// Pools, the Services that hold (or want) addresses, and who holds what.
#[derive(Debug)]
pub struct Allocator {
    reuse_delay: Duration,
    pools: Pools,
    services: Services,
    groups: Groups,
    v4: FamilyState<u32>,
    v6: FamilyState<u128>,
    unsatisfied: BTreeSet<SvcId>,
}

impl Default for Allocator {
    fn default() -> Self {
        Allocator::new(DEFAULT_REUSE_DELAY)
    }
}

impl Allocator {
    /// An allocator with no pools and no Services; freed addresses are avoided for
    /// `reuse_delay`.
    pub fn new(reuse_delay: Duration) -> Self {
        Allocator {
            reuse_delay,
            pools: Pools::default(),
            services: Services::default(),
            groups: Groups::default(),
            v4: FamilyState::new(),
            v6: FamilyState::new(),
            unsatisfied: BTreeSet::new(),
        }
    }

    // ---- pools ----

    /// Adds or replaces a pool. Services whose addresses it no longer covers for them lose
    /// them (listed in the result); adding addresses never invalidates anything.
    pub fn set_pool(&mut self, spec: PoolSpec, now: Instant) -> PoolChange {
        self.expire(now);
        let (id, old) = self.pools.upsert(spec);
        let affected = match (&old, self.pools.get(id)) {
            (Some(old), Some(new)) => {
                let same_rules = old.spec.auto_assign == new.spec.auto_assign
                    && old.spec.avoid_buggy_ips == new.spec.avoid_buggy_ips
                    && old.spec.allocation == new.spec.allocation;
                if same_rules {
                    old.spec.ranges.difference(&new.spec.ranges)
                } else {
                    old.spec.ranges.clone()
                }
            }
            _ => AddressRanges::default(),
        };
        let change = self.revalidate(&affected, now);
        self.recount(id);
        self.sync_bridged();
        change
    }

    /// Keeps the bridged run set exactly while some pool avoids buggy IPv4 addresses.
    fn sync_bridged(&mut self) {
        let needed = self
            .pools
            .iter()
            .any(|(_, p)| p.spec.avoid_buggy_ips && !p.spec.ranges.v4.is_empty());
        match (needed, self.v4.bridged.is_some()) {
            (true, false) => self.v4.bridged = Some(RunSet::bridged_from(&self.v4.runs)),
            (false, true) => self.v4.bridged = None,
            _ => {}
        }
    }

    /// Deletes a pool; Services left without a usable pool for their address lose it.
    pub fn remove_pool(&mut self, name: &PoolName, now: Instant) -> PoolChange {
        self.expire(now);
        let change = match self.pools.remove(name) {
            Some((_, old)) => self.revalidate(&old.spec.ranges, now),
            None => PoolChange::default(),
        };
        self.sync_bridged();
        change
    }

    /// Assigned and available addresses of a pool, per family.
    pub fn pool_counters(&self, name: &PoolName) -> Option<PoolCounters> {
        let p = self.pools.get(self.pools.id(name)?)?;
        let fc = |f: usize| FamilyCounters {
            assigned: p.assigned[f],
            available: p.usable[f].saturating_sub(p.in_use[f]),
        };
        Some(PoolCounters {
            v4: fc(0),
            v6: fc(1),
        })
    }

    /// Pools sharing at least one address with `name`, sorted.
    pub fn overlapping_pools(&self, name: &PoolName) -> Vec<PoolName> {
        self.pools.overlapping(name)
    }

    // ---- services ----

    /// Brings a Service's addresses in line with its request: keeps every address still
    /// valid, releases the others, allocates what is missing. On refusal the Service holds
    /// nothing it may not keep (and nothing at all under RequireDualStack).
    pub fn assign(&mut self, request: ServiceRequest, now: Instant) -> Result<Assignment, Refusal> {
        self.expire(now);
        let (key, stored) = Stored::from_request(request);
        let (id, before) = match self.services.find(&key) {
            Some(id) => {
                let before = self.raw_addresses(id);
                self.services.get_mut(id).req = stored;
                (id, before)
            }
            None => (self.services.insert(&key, stored), [None, None]),
        };
        self.converge(id, before, now)
    }

    /// [`Allocator::assign`] with the request last given for the Service, e.g. after a pool
    /// change took its address. `None` if the Service is unknown.
    pub fn reassign(
        &mut self,
        key: &ServiceKey,
        now: Instant,
    ) -> Option<Result<Assignment, Refusal>> {
        self.expire(now);
        let id = self.services.find(key)?;
        Some(self.converge(id, self.raw_addresses(id), now))
    }

    /// Forgets a Service and frees its addresses (shared ones once their last user goes).
    pub fn release(&mut self, key: &ServiceKey, now: Instant) -> Vec<IpAddr> {
        self.expire(now);
        let Some(id) = self.services.find(key) else {
            return Vec::new();
        };
        let before = self.addresses(id).into_iter().map(|a| a.ip).collect();
        self.drop_one::<u32>(id, now);
        self.drop_one::<u128>(id, now);
        self.unsatisfied.remove(&id);
        self.services.remove(id);
        before
    }

    /// The Service's addresses, if it is known.
    pub fn assignment(&self, key: &ServiceKey) -> Option<Vec<AssignedAddress>> {
        self.services.find(key).map(|id| self.addresses(id))
    }

    /// Services that lack an address they want (refused, or PreferDualStack with a family
    /// unmet), sorted: retry them after pool changes.
    pub fn unsatisfied(&self) -> Vec<ServiceKey> {
        let mut v: Vec<ServiceKey> = self
            .unsatisfied
            .iter()
            .map(|id| self.services.get(*id).service_key())
            .collect();
        v.sort();
        v
    }

    /// The Services holding an address (several when shared), sorted.
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        let slot = match ip {
            IpAddr::V4(a) => self.v4.owner.get(&u32::from(a)).copied(),
            IpAddr::V6(a) => self.v6.owner.get(&u128::from(a)).copied(),
        };
        let mut v: Vec<ServiceKey> = match slot.map(|s| s.holder()) {
            None => Vec::new(),
            Some(Holder::Service(s)) => vec![self.services.get(s).service_key()],
            Some(Holder::Group(g)) => self
                .groups
                .get(g)
                .members
                .iter()
                .map(|m| self.services.get(*m).service_key())
                .collect(),
        };
        v.sort();
        v
    }

    /// Number of known Services.
    pub fn service_count(&self) -> usize {
        self.services.index.len() + self.services.spill.values().map(Vec::len).sum::<usize>()
    }

    /// Every known Service with its addresses, as [`Allocator::load`] takes them, sorted by
    /// key.
    pub fn export(&self) -> Vec<ExistingService> {
        let mut out: Vec<ExistingService> = self
            .services
            .ids()
            .map(|id| {
                let e = self.services.get(id);
                let addrs = self.addresses(id);
                ExistingService {
                    request: e.req.to_request(e.service_key()),
                    addresses: addrs.iter().map(|a| a.ip).collect(),
                    pools: addrs.into_iter().map(|a| a.pool).collect(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.request.key.cmp(&b.request.key));
        out
    }

    /// Rebuilds all Service state from the addresses Services already carry (pools are kept;
    /// Services known before are forgotten). Services are taken oldest first, so on a
    /// duplicate the older keeps the address. Nothing new is allocated: follow with
    /// `reassign` for every Service.
    pub fn load(&mut self, existing: Vec<ExistingService>) -> LoadReport {
        self.services = Services::default();
        self.groups = Groups::default();
        self.v4 = FamilyState::new();
        self.v6 = FamilyState::new();
        self.unsatisfied.clear();
        self.sync_bridged();
        let ids: Vec<PoolId> = self.pools.iter().map(|(id, _)| id).collect();
        for id in ids {
            if let Some(p) = self.pools.get_mut(id) {
                p.in_use = [0; 2];
                p.assigned = [0; 2];
            }
        }
        // Oldest first; sorting indices moves 4 bytes per step instead of whole requests.
        let mut order: Vec<u32> = (0..existing.len() as u32).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&existing[a as usize].request, &existing[b as usize].request);
            (a.created, &a.key).cmp(&(b.created, &b.key))
        });
        let mut existing: Vec<Option<ExistingService>> = existing.into_iter().map(Some).collect();
        let mut report = LoadReport::default();
        for ex in order
            .into_iter()
            .filter_map(|i| existing[i as usize].take())
        {
            let (key, stored) = Stored::from_request(ex.request);
            if self.services.find(&key).is_some() {
                for ip in ex.addresses {
                    let reason = InvalidAddress::DuplicateService;
                    report.rejected.push(Invalidated {
                        service: key.clone(),
                        ip,
                        reason,
                    });
                }
                continue;
            }
            let id = self.services.insert(&key, stored);
            let hint = |i: usize| ex.pools.get(i).or(ex.pools.last());
            let wanted = match self.services.get(id).req.wanted() {
                Ok(w) => w,
                Err(refusal) => {
                    for ip in ex.addresses {
                        let reason = InvalidAddress::InvalidRequest(Box::new(refusal.clone()));
                        report.rejected.push(Invalidated {
                            service: key.clone(),
                            ip,
                            reason,
                        });
                    }
                    self.unsatisfied.insert(id);
                    continue;
                }
            };
            let mut seen = Vec::new();
            for (i, &ip) in ex.addresses.iter().enumerate() {
                if seen.contains(&ip) {
                    continue;
                }
                seen.push(ip);
                let hint = hint(i).and_then(|n| self.pools.id(n));
                let result = match ip {
                    IpAddr::V4(_) => self.load_one::<u32>(id, ip, &wanted, hint),
                    IpAddr::V6(_) => self.load_one::<u128>(id, ip, &wanted, hint),
                };
                if let Err(reason) = result {
                    report.rejected.push(Invalidated {
                        service: key.clone(),
                        ip,
                        reason,
                    });
                }
            }
            if wanted.families().any(|f| !self.holds(id, f)) {
                self.unsatisfied.insert(id);
            }
        }
        report
            .rejected
            .sort_by(|a, b| (&a.service, a.ip).cmp(&(&b.service, b.ip)));
        report
    }

    // ---- internals ----

    fn holds(&self, id: SvcId, f: Family) -> bool {
        let e = self.services.get(id);
        match f {
            Family::V4 => e.v4.is_some(),
            Family::V6 => e.v6.is_some(),
        }
    }

    /// The Service's addresses with their pools, in family order, without allocating.
    fn raw_addresses(&self, id: SvcId) -> [Option<(IpAddr, PoolId)>; 2] {
        let e = self.services.get(id);
        let v4 = e.v4.and_then(|a| {
            self.v4
                .owner
                .get(&u32::from(a))
                .map(|s| (IpAddr::V4(a), s.pool))
        });
        let v6 = e.v6.and_then(|a| {
            self.v6
                .owner
                .get(&u128::from(a))
                .map(|s| (IpAddr::V6(a), s.pool))
        });
        match e.req.primary() {
            Family::V6 => [v6, v4],
            Family::V4 => [v4, v6],
        }
    }

    fn addresses(&self, id: SvcId) -> Vec<AssignedAddress> {
        self.raw_addresses(id)
            .into_iter()
            .flatten()
            .map(|(ip, pool)| AssignedAddress {
                ip,
                pool: self
                    .pools
                    .name(pool)
                    .cloned()
                    .unwrap_or_else(|| PoolName(String::new())),
            })
            .collect()
    }

    fn expire(&mut self, now: Instant) {
        self.expire_family::<u32>(now);
        self.expire_family::<u128>(now);
    }

    fn expire_family<T: Fam>(&mut self, now: Instant) {
        let delay = self.reuse_delay;
        let st = T::state_mut(self);
        while let Some(&(t, x)) = st.expiry.first() {
            if now.saturating_duration_since(t) < delay {
                break;
            }
            st.expiry.pop_first();
            st.recent.remove(&x);
            st.vacate(x);
        }
    }

    /// Adjusts the counters of every pool containing `x` and of its attributed pool.
    fn count<T: Fam>(&mut self, x: T, attributed: PoolId, up: bool) {
        let f = fidx(T::FAMILY);
        let step = |n: &mut u128| {
            *n = if up {
                n.saturating_add(1)
            } else {
                n.saturating_sub(1)
            }
        };
        let n = T::segments(&self.pools).pools_at(x).len();
        for i in 0..n {
            let pid = T::segments(&self.pools).pools_at(x)[i];
            if let Some(p) = self.pools.get_mut(pid).filter(|p| p.contains(x)) {
                step(&mut p.in_use[f]);
            }
        }
        if let Some(p) = self.pools.get_mut(attributed) {
            step(&mut p.assigned[f]);
        }
    }

    fn hold<T: Fam>(&mut self, x: T, slot: Slot) {
        let st = T::state_mut(self);
        match st.recent.remove(&x) {
            Some(t) => {
                st.expiry.remove(&(t, x));
            }
            None => st.occupy(x),
        }
        st.owner.insert(x, slot);
        self.count(x, slot.pool, true);
    }

    fn unhold<T: Fam>(&mut self, x: T, now: Instant) {
        let delay = self.reuse_delay;
        let st = T::state_mut(self);
        let Some(slot) = st.owner.remove(&x) else {
            return;
        };
        if delay.is_zero() {
            st.vacate(x);
        } else {
            st.recent.insert(x, now);
            st.expiry.insert((now, x));
        }
        self.count(x, slot.pool, false);
    }

    /// Takes the Service's address of family `T` away from it.
    fn drop_one<T: Fam>(&mut self, id: SvcId, now: Instant) {
        let Some(x) = T::held(self.services.get(id)) else {
            return;
        };
        T::set_held(self.services.get_mut(id), None);
        let Some(slot) = T::state(self).owner.get(&x).copied() else {
            return;
        };
        match slot.holder() {
            Holder::Service(_) => self.unhold(x, now),
            Holder::Group(g) => {
                let group = self.groups.get_mut(g);
                group.members.retain(|m| *m != id);
                if group.members.is_empty() {
                    self.groups.delete(g);
                    self.unhold(x, now);
                }
            }
        }
    }

    fn drop_all(&mut self, id: SvcId, now: Instant) {
        self.drop_one::<u32>(id, now);
        self.drop_one::<u128>(id, now);
    }

    /// The pool through which the Service may hold `x`: `prefer` when it qualifies, else
    /// the first in choice order.
    fn usable_pool<T: Fam>(&self, e: &ServiceEntry, x: T, prefer: &[PoolId]) -> Option<PoolId> {
        let mut best: Option<(u32, PoolId)> = None;
        for &pid in T::segments(&self.pools).pools_at(x) {
            let Some(pool) = self.pools.get(pid) else {
                continue;
            };
            if !pool.contains(x) || !may_use(pool, e, x.to_ip()) {
                continue;
            }
            if prefer.contains(&pid) {
                return Some(pid);
            }
            if best.is_none_or(|(rank, _)| pool.rank < rank) {
                best = Some((pool.rank, pid));
            }
        }
        best.map(|(_, pid)| pid)
    }

    fn share_check(&self, id: SvcId, e: &ServiceEntry, g: &Group) -> Result<(), ShareProblem> {
        if e.req.sharing() != Some(&g.key) {
            return Err(ShareProblem::NotSharing);
        }
        if e.req.local() != g.local.as_ref() {
            return Err(ShareProblem::Traffic);
        }
        for &m in g.members.iter().filter(|m| **m != id) {
            let other = &self.services.get(m).req;
            if let Some(p) = e.req.ports().find(|p| other.ports().any(|o| o == *p)) {
                return Err(ShareProblem::Port(p, m));
            }
        }
        Ok(())
    }

    fn share_refusal(&self, e: &ServiceEntry, ip: IpAddr, g: &Group, p: ShareProblem) -> Refusal {
        let first = |g: &Group| {
            g.members
                .first()
                .map(|m| self.services.get(*m).service_key())
        };
        let holder = first(g).unwrap_or_else(|| ServiceKey::new("", ""));
        match p {
            ShareProblem::NotSharing => Refusal::RequestedIpInUse {
                ip,
                holder,
                holder_key: Some(g.key.clone()),
                own_key: e.req.sharing().cloned(),
            },
            ShareProblem::Traffic => Refusal::SharingTrafficPolicyMismatch {
                ip,
                key: g.key.clone(),
                holder,
            },
            ShareProblem::Port(port, m) => Refusal::SharingPortConflict {
                ip,
                key: g.key.clone(),
                holder: self.services.get(m).service_key(),
                port,
            },
        }
    }

    fn converge(
        &mut self,
        id: SvcId,
        before: [Option<(IpAddr, PoolId)>; 2],
        now: Instant,
    ) -> Result<Assignment, Refusal> {
        let result = self.converge_inner(id, now);
        if matches!(&result, Ok(unmet) if unmet.is_empty()) {
            self.unsatisfied.remove(&id);
        } else {
            self.unsatisfied.insert(id);
        }
        let flat = |a: [Option<(IpAddr, PoolId)>; 2]| a.into_iter().flatten();
        let changed = !flat(before).eq(flat(self.raw_addresses(id)));
        result.map(|unmet| Assignment {
            changed,
            addresses: self.addresses(id),
            unmet,
        })
    }

    fn converge_inner(&mut self, id: SvcId, now: Instant) -> Result<Vec<Refusal>, Refusal> {
        let wanted = match self.services.get(id).req.wanted() {
            Ok(w) => w,
            Err(refusal) => {
                self.drop_all(id, now);
                return Err(refusal);
            }
        };
        self.keep_or_drop::<u32>(id, &wanted, now);
        self.keep_or_drop::<u128>(id, &wanted, now);
        let mut plans4 = None;
        let mut plans6 = None;
        let mut refusals = Vec::new();
        for f in wanted.families() {
            if self.holds(id, f) {
                continue;
            }
            let requested = wanted.requested(f);
            let planned = match f {
                Family::V4 => self.plan::<u32>(id, requested).map(|p| plans4 = Some(p)),
                Family::V6 => self.plan::<u128>(id, requested).map(|p| plans6 = Some(p)),
            };
            if let Err(r) = planned {
                refusals.push(r);
            }
        }
        let planned_any = plans4.is_some() || plans6.is_some();
        let holds_any = self.holds(id, Family::V4) || self.holds(id, Family::V6);
        let refuse = match wanted.policy {
            IpFamilyPolicy::RequireDualStack => !refusals.is_empty(),
            IpFamilyPolicy::SingleStack => !refusals.is_empty(),
            IpFamilyPolicy::PreferDualStack => !planned_any && !holds_any,
        };
        if refuse && let Some(first) = refusals.first().cloned() {
            self.drop_all(id, now);
            return Err(first);
        }
        if let Some(p) = plans4 {
            self.commit::<u32>(id, p);
        }
        if let Some(p) = plans6 {
            self.commit::<u128>(id, p);
        }
        Ok(refusals)
    }

    /// Keeps the Service's address of family `T` if it is still valid for its request (and
    /// reshapes its holder to match a changed sharing key), else releases it.
    fn keep_or_drop<T: Fam>(&mut self, id: SvcId, wanted: &Wanted, now: Instant) {
        let e = self.services.get(id);
        let Some(x) = T::held(e) else { return };
        let Some(slot) = T::state(self).owner.get(&x).copied() else {
            return;
        };
        let f = T::FAMILY;
        let valid = wanted.has(f)
            && wanted.requested(f).is_none_or(|r| r == x.to_ip())
            && self.usable_pool(e, x, &[]).is_some()
            && match slot.holder() {
                Holder::Service(_) => true,
                Holder::Group(g) => {
                    let group = self.groups.get(g);
                    group.members.len() == 1 || self.share_check(id, e, group).is_ok()
                }
            };
        if !valid {
            self.drop_one::<T>(id, now);
            return;
        }
        // Alone on its address, the Service's holder follows its own sharing settings.
        let sharing = e.req.sharing().cloned();
        let local = e.req.local().cloned();
        match (slot.holder(), sharing) {
            (Holder::Service(_), None) => {}
            (Holder::Service(_), Some(key)) => {
                let g = self.groups.create(Group {
                    key,
                    local,
                    ip: x.to_ip(),
                    members: vec![id],
                });
                if let Some(s) = T::state_mut(self).owner.get_mut(&x) {
                    s.set_holder(Holder::Group(g));
                }
            }
            (Holder::Group(g), None) => {
                self.groups.delete(g);
                if let Some(s) = T::state_mut(self).owner.get_mut(&x) {
                    s.set_holder(Holder::Service(id));
                }
            }
            (Holder::Group(g), Some(key)) => {
                let group = self.groups.get(g);
                if group.key != key || group.local != local {
                    self.groups.rekey(g, key, local);
                }
            }
        }
    }

    /// Chooses an address of family `T` for the Service without changing anything.
    fn plan<T: Fam>(&self, id: SvcId, requested: Option<IpAddr>) -> Result<Plan<T>, Refusal> {
        let e = self.services.get(id);
        let family = T::FAMILY;
        if let Some(ip) = requested {
            let Some(x) = T::from_ip(ip) else {
                return Err(Refusal::RequestedIpNotInPool { ip });
            };
            let Some(pool) = self.usable_pool(e, x, &[]) else {
                return Err(Refusal::RequestedIpNotInPool { ip });
            };
            return match T::state(self).owner.get(&x).map(|s| s.holder()) {
                None => Ok(Plan::Take { x, pool }),
                Some(Holder::Service(other)) => Err(Refusal::RequestedIpInUse {
                    ip,
                    holder: self.services.get(other).service_key(),
                    holder_key: None,
                    own_key: e.req.sharing().cloned(),
                }),
                Some(Holder::Group(g)) => {
                    let group = self.groups.get(g);
                    match self.share_check(id, e, group) {
                        Ok(()) => Ok(Plan::Join { group: g }),
                        Err(p) => Err(self.share_refusal(e, ip, group, p)),
                    }
                }
            };
        }
        // Automatic: candidate pools in choice order, searched lazily (most allocations end
        // in the first pool with room).
        let candidates = || {
            self.pools
                .in_order()
                .filter(|(_, p)| p.spec.auto_assign && !T::ranges(&p.spec).is_empty())
                .filter(|(_, p)| selected_by(p, e))
                .map(|(id, _)| id)
        };
        let requested_pool = match e.req.requested_pool() {
            Some(rp) => {
                let pid = self.pools.id(rp);
                let Some(pool) = pid.and_then(|pid| self.pools.get(pid)) else {
                    return Err(Refusal::RequestedPoolMissing { pool: rp.clone() });
                };
                if !selected_by(pool, e) {
                    return Err(Refusal::RequestedPoolNotAllowed { pool: rp.clone() });
                }
                if T::ranges(&pool.spec).is_empty() {
                    return Err(Refusal::RequestedPoolLacksFamily {
                        pool: rp.clone(),
                        family,
                    });
                }
                pid
            }
            None => {
                if candidates().next().is_none() {
                    return Err(Refusal::NoPoolForFamily { family });
                }
                None
            }
        };
        if let Some(key) = e.req.sharing() {
            let mut best: Option<(u32, T, GroupId)> = None;
            for &g in self.groups.by_key.get(key).into_iter().flatten() {
                let group = self.groups.get(g);
                let Some(x) = T::from_ip(group.ip) else {
                    continue;
                };
                if self.share_check(id, e, group).is_err() {
                    continue;
                }
                let Some(pool) = self.usable_pool(e, x, &[]) else {
                    continue;
                };
                let rank = self.pools.get(pool).map_or(u32::MAX, |p| p.rank);
                if best.is_none_or(|(r, bx, _)| (rank, x) < (r, bx)) {
                    best = Some((rank, x, g));
                }
            }
            if let Some((_, _, group)) = best {
                return Ok(Plan::Join { group });
            }
        }
        let mut tried = Vec::new();
        let pools: Box<dyn Iterator<Item = PoolId> + '_> = match requested_pool {
            Some(pid) => Box::new(std::iter::once(pid)),
            None => Box::new(candidates()),
        };
        for pid in pools {
            if let Some(x) = self.lowest_free::<T>(pid) {
                return Ok(Plan::Take { x, pool: pid });
            }
            tried.push(pid);
        }
        let pools = tried
            .iter()
            .filter_map(|p| self.pools.name(*p).cloned())
            .collect();
        Err(Refusal::PoolExhausted { family, pools })
    }

    /// The lowest free address of the pool, or failing that its lowest recently freed one.
    fn lowest_free<T: Fam>(&self, pid: PoolId) -> Option<T> {
        let pool = self.pools.get(pid)?;
        let f = fidx(T::FAMILY);
        if pool.in_use[f] >= pool.usable[f] {
            return None;
        }
        let st = T::state(self);
        let avoid = pool.avoids_buggy::<T>();
        let bridged = if avoid { st.bridged.as_ref() } else { None };
        let runs = bridged.unwrap_or(&st.runs);
        // Only if the bridged set were missing would buggy addresses need skipping here.
        let skip_buggy = avoid && bridged.is_none();
        let ranges: &IntervalSet<T> = T::ranges(&pool.spec);
        for iv in ranges.intervals() {
            let mut from = iv.start;
            while let Some(x) = runs.first_free_at_or_after(from).filter(|x| *x <= iv.end) {
                if !(skip_buggy && x.is_buggy()) {
                    return Some(x);
                }
                let Some(n) = x.next() else { break };
                from = n;
            }
        }
        for iv in ranges.intervals() {
            let recent = st.recent.range(iv.start..=iv.end).map(|(x, _)| *x);
            if let Some(x) = recent.into_iter().find(|x| !(avoid && x.is_buggy())) {
                return Some(x);
            }
        }
        None
    }

    fn commit<T: Fam>(&mut self, id: SvcId, plan: Plan<T>) {
        match plan {
            Plan::Take { x, pool } => {
                let e = self.services.get(id);
                let holder = match e.req.sharing() {
                    Some(key) => {
                        let group = Group {
                            key: key.clone(),
                            local: e.req.local().cloned(),
                            ip: x.to_ip(),
                            members: vec![id],
                        };
                        Holder::Group(self.groups.create(group))
                    }
                    None => Holder::Service(id),
                };
                self.hold(x, Slot::new(holder, pool));
                T::set_held(self.services.get_mut(id), Some(x));
            }
            Plan::Join { group } => {
                let ip = self.groups.get(group).ip;
                self.groups.get_mut(group).members.push(id);
                T::set_held(self.services.get_mut(id), T::from_ip(ip));
            }
        }
    }

    fn load_one<T: Fam>(
        &mut self,
        id: SvcId,
        ip: IpAddr,
        wanted: &Wanted,
        hint: Option<PoolId>,
    ) -> Result<(), InvalidAddress> {
        let family = T::FAMILY;
        let x = T::from_ip(ip).ok_or(InvalidAddress::FamilyNotWanted { family })?;
        let e = self.services.get(id);
        if T::held(e).is_some() {
            return Err(InvalidAddress::SecondOfFamily);
        }
        if !wanted.has(family) {
            return Err(InvalidAddress::FamilyNotWanted { family });
        }
        if let Some(requested) = wanted.requested(family).filter(|r| *r != ip) {
            return Err(InvalidAddress::NotRequested { requested });
        }
        let usable = self
            .usable_pool(e, x, &[])
            .ok_or(InvalidAddress::NotInUsablePool)?;
        // The attribution written in the annotation wins while that pool still covers the
        // address (a sharing group keeps the pool its first user got it from).
        let pool = hint
            .filter(|h| self.pools.get(*h).is_some_and(|p| p.contains(x)))
            .unwrap_or(usable);
        let plan = match T::state(self).owner.get(&x).map(|s| s.holder()) {
            None => Plan::Take { x, pool },
            Some(Holder::Service(other)) => {
                return Err(InvalidAddress::HeldByOlder {
                    holder: self.services.get(other).service_key(),
                    holder_key: None,
                    own_key: e.req.sharing().cloned(),
                });
            }
            Some(Holder::Group(g)) => {
                let group = self.groups.get(g);
                match self.share_check(id, e, group) {
                    Ok(()) => Plan::Join { group: g },
                    Err(ShareProblem::NotSharing) => {
                        let holder = group
                            .members
                            .first()
                            .map(|m| self.services.get(*m).service_key());
                        return Err(InvalidAddress::HeldByOlder {
                            holder: holder.unwrap_or_else(|| ServiceKey::new("", "")),
                            holder_key: Some(group.key.clone()),
                            own_key: e.req.sharing().cloned(),
                        });
                    }
                    Err(p) => {
                        let refusal = self.share_refusal(e, ip, group, p);
                        let holder = match &refusal {
                            Refusal::SharingPortConflict { holder, .. }
                            | Refusal::SharingTrafficPolicyMismatch { holder, .. } => {
                                holder.clone()
                            }
                            _ => ServiceKey::new("", ""),
                        };
                        return Err(InvalidAddress::SharingConflict {
                            holder,
                            refusal: Box::new(refusal),
                        });
                    }
                }
            }
        };
        self.commit(id, plan);
        Ok(())
    }

    /// After a pool edit: every held address in `affected` is checked again for each of its
    /// Services; those that may no longer hold it lose it; survivors whose pool no longer
    /// covers them are attributed to another pool.
    fn revalidate(&mut self, affected: &AddressRanges, now: Instant) -> PoolChange {
        let mut change = PoolChange::default();
        self.revalidate_family::<u32>(&affected.v4, now, &mut change);
        self.revalidate_family::<u128>(&affected.v6, now, &mut change);
        change
            .invalidated
            .sort_by(|a, b| (&a.service, a.ip).cmp(&(&b.service, b.ip)));
        change.reattributed.sort();
        change
    }

    fn revalidate_family<T: Fam>(
        &mut self,
        affected: &IntervalSet<T>,
        now: Instant,
        change: &mut PoolChange,
    ) {
        let st = T::state(self);
        let held: Vec<(T, Slot)> = affected
            .intervals()
            .iter()
            .flat_map(|iv| st.owner.range(iv.start..=iv.end).map(|(x, s)| (*x, *s)))
            .collect();
        for (x, slot) in held {
            let members = match slot.holder() {
                Holder::Service(s) => vec![s],
                Holder::Group(g) => self.groups.get(g).members.clone(),
            };
            for m in members {
                let e = self.services.get(m);
                if self.usable_pool(e, x, &[]).is_none() {
                    change.invalidated.push(Invalidated {
                        service: e.service_key(),
                        ip: x.to_ip(),
                        reason: InvalidAddress::NotInUsablePool,
                    });
                    self.drop_one::<T>(m, now);
                    self.unsatisfied.insert(m);
                }
            }
            let Some(slot) = T::state(self).owner.get(&x).copied() else {
                continue;
            };
            let members = match slot.holder() {
                Holder::Service(s) => vec![s],
                Holder::Group(g) => self.groups.get(g).members.clone(),
            };
            let Some(&first) = members
                .iter()
                .min_by_key(|m| self.services.get(**m).order_key())
            else {
                continue;
            };
            let e = self.services.get(first);
            let still = self
                .pools
                .get(slot.pool)
                .is_some_and(|p| p.contains(x) && may_use(p, e, x.to_ip()));
            if still {
                continue;
            }
            let Some(pool) = self.usable_pool(e, x, &[]) else {
                continue;
            };
            let f = fidx(T::FAMILY);
            if let Some(p) = self.pools.get_mut(slot.pool) {
                p.assigned[f] = p.assigned[f].saturating_sub(1);
            }
            if let Some(p) = self.pools.get_mut(pool) {
                p.assigned[f] = p.assigned[f].saturating_add(1);
            }
            if let Some(s) = T::state_mut(self).owner.get_mut(&x) {
                s.pool = pool;
            }
            let pool_name = self
                .pools
                .name(pool)
                .cloned()
                .unwrap_or_else(|| PoolName(String::new()));
            for m in members {
                change.reattributed.push(Reattributed {
                    service: self.services.get(m).service_key(),
                    ip: x.to_ip(),
                    pool: pool_name.clone(),
                });
            }
        }
    }

    /// Recomputes a pool's counters from the held addresses inside it.
    fn recount(&mut self, id: PoolId) {
        let (a4, i4) = self.count_in::<u32>(id);
        let (a6, i6) = self.count_in::<u128>(id);
        if let Some(p) = self.pools.get_mut(id) {
            p.assigned = [a4, a6];
            p.in_use = [i4, i6];
        }
    }

    fn count_in<T: Fam>(&self, id: PoolId) -> (u128, u128) {
        let Some(pool) = self.pools.get(id) else {
            return (0, 0);
        };
        let (mut assigned, mut in_use) = (0u128, 0u128);
        for iv in T::ranges(&pool.spec).intervals() {
            for (x, slot) in T::state(self).owner.range(iv.start..=iv.end) {
                if pool.contains(*x) {
                    in_use += 1;
                    assigned += u128::from(slot.pool == id);
                }
            }
        }
        (assigned, in_use)
    }

    /// Memory figures for the benchmark: (stored runs, recently freed addresses).
    pub fn run_count(&self) -> (usize, usize) {
        let b = self.v4.bridged.as_ref().map_or(0, RunSet::len);
        (
            self.v4.runs.len() + self.v6.runs.len() + b,
            self.v4.recent.len() + self.v6.recent.len(),
        )
    }
}
