//! The controller's state: the allocator and what the reconciler keeps around it (pools,
//! namespace labels, which Services wait for what). Synchronous and without I/O: each method
//! takes an object or an event and returns what to write and which Services to look at again.
//! The reconciler holds it behind one lock, for a few microseconds per call.
//!
//! Work per event is proportional to what it touches:
//!
//! - a Service event reconciles that Service; when it frees or changes an address, the
//!   Services waiting for exactly that address, or for a free address of that pool and family,
//!   are woken ([`Waits`]), not every unsatisfied Service;
//! - a pool event wakes the Services whose addresses it invalidated or re-attributed, and the
//!   unsatisfied ones (a new or grown pool may serve them); a pool event that changes nothing
//!   the allocator sees (e.g. its own status) wakes nobody;
//! - a namespace whose labels changed wakes the Services of that namespace.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrolb_api::IPAddressPool;
use ferrolb_api::addr::Family;
use ferrolb_api::conditions::IpAllocatedReason;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use serde_json::Value;

use crate::allocator::{
    Allocator, AssignedAddress, ExistingService, Labels, PoolChange, PoolCounters, PoolName,
    PoolSpec, Refusal, ServiceKey, ServiceRequest,
};
use crate::convert::{self, ClassFilter, InvalidPool};
use crate::status::{self, EventReason, EventSpec, EventType, Wanted, WantedCondition};

/// What to do for one Service after [`Engine::reconcile`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Strategic merge patch of the status subresource; `None`: the status is right.
    pub status: Option<Value>,
    /// Merge patch of the Service's annotations; `None`: they are right.
    pub annotation: Option<Value>,
    /// Events of the transition, to emit once the patches succeeded.
    pub events: Vec<EventSpec>,
    /// Events to emit whatever happens to the status (deprecated annotations).
    pub notices: Vec<EventSpec>,
    /// What the transition was (for `ferrolb_allocations_total`); `None`: no transition.
    pub outcome: Option<Outcome>,
    /// Other Services to reconcile: they waited for something this one gave up.
    pub wake: Vec<ServiceKey>,
}

/// A Service's transition, as counted by `ferrolb_allocations_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A condition with this reason is written.
    Condition(IpAllocatedReason),
    /// The Service is no longer served and gave its addresses back.
    Released,
}

/// What wakes a waiting Service.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum WakeOn {
    /// A free address of this family in this pool (the Service found the pool exhausted).
    FreeIn(PoolName, Family),
    /// A change of the holders of this address (requested, or shared with a conflict).
    Holder(IpAddr),
}

fn wake_on(refusal: &Refusal) -> Vec<WakeOn> {
    match refusal {
        Refusal::PoolExhausted { family, pools } => pools
            .iter()
            .map(|p| WakeOn::FreeIn(p.clone(), *family))
            .collect(),
        Refusal::RequestedIpInUse { ip, .. }
        | Refusal::SharingPortConflict { ip, .. }
        | Refusal::SharingTrafficPolicyMismatch { ip, .. } => vec![WakeOn::Holder(*ip)],
        // Only a pool edit or an edit of the Service itself can help these; both reconcile it.
        _ => Vec::new(),
    }
}

/// Which Services wait for what, both ways.
#[derive(Debug, Default)]
struct Waits {
    by_service: HashMap<ServiceKey, Vec<WakeOn>>,
    by_cause: HashMap<WakeOn, BTreeSet<ServiceKey>>,
}

impl Waits {
    fn set(&mut self, key: &ServiceKey, causes: Vec<WakeOn>) {
        self.clear(key);
        if causes.is_empty() {
            return;
        }
        for c in &causes {
            self.by_cause
                .entry(c.clone())
                .or_default()
                .insert(key.clone());
        }
        self.by_service.insert(key.clone(), causes);
    }

    fn clear(&mut self, key: &ServiceKey) {
        for c in self.by_service.remove(key).unwrap_or_default() {
            if let Some(set) = self.by_cause.get_mut(&c) {
                set.remove(key);
                if set.is_empty() {
                    self.by_cause.remove(&c);
                }
            }
        }
    }

    fn waiting_for(&self, cause: &WakeOn) -> impl Iterator<Item = &ServiceKey> {
        self.by_cause.get(cause).into_iter().flatten()
    }
}

/// A pool as last seen, valid or not.
#[derive(Debug, Clone)]
struct PoolEntry {
    generation: Option<i64>,
    spec: Result<PoolSpec, InvalidPool>,
}

/// Everything a pool's status is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolView {
    pub generation: Option<i64>,
    /// `Err`: the pool is ignored, and why.
    pub valid: Result<(), InvalidPool>,
    pub counters: PoolCounters,
    pub overlapping: Vec<PoolName>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Engine {
    alloc: Allocator,
    filter: ClassFilter,
    pools: BTreeMap<PoolName, PoolEntry>,
    namespaces: HashMap<String, Arc<Labels>>,
    /// Served Services (those the allocator knows, and those refused before it saw them).
    served: BTreeSet<ServiceKey>,
    waits: Waits,
    /// Sharing settings (key, ports, policy) of Services with a sharing key: a change may
    /// end a conflict another Service waits on.
    sharing: HashMap<ServiceKey, u64>,
    /// Why a Service's address went away without it changing (pool edit, start-up check),
    /// for the Event; kept until its status shows the change.
    notes: HashMap<ServiceKey, String>,
    /// MetalLB annotation keys already reported per Service.
    warned: HashMap<ServiceKey, BTreeSet<&'static str>>,
    dirty_pools: BTreeSet<PoolName>,
}

fn family_of(ip: IpAddr) -> Family {
    Family::of(ip)
}

fn describe(addresses: &[AssignedAddress]) -> String {
    let pools: BTreeSet<&PoolName> = addresses.iter().map(|a| &a.pool).collect();
    let ips: Vec<String> = addresses.iter().map(|a| a.ip.to_string()).collect();
    if pools.len() == 1 {
        let pool = pools.into_iter().next().map(|p| p.0.as_str()).unwrap_or("");
        format!("allocated {} from pool {pool}", ips.join(" and "))
    } else {
        let parts: Vec<String> = addresses
            .iter()
            .map(|a| format!("{} from pool {}", a.ip, a.pool))
            .collect();
        format!("allocated {}", parts.join(" and "))
    }
}

fn sharing_print(request: &ServiceRequest) -> Option<u64> {
    let key = request.sharing_key.as_ref()?;
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    request.ports.hash(&mut h);
    request.traffic_policy.hash(&mut h);
    Some(h.finish())
}

impl Engine {
    pub fn new(filter: ClassFilter, reuse_delay: Duration) -> Self {
        Engine {
            alloc: Allocator::new(reuse_delay),
            filter,
            pools: BTreeMap::new(),
            namespaces: HashMap::new(),
            served: BTreeSet::new(),
            waits: Waits::default(),
            sharing: HashMap::new(),
            notes: HashMap::new(),
            warned: HashMap::new(),
            dirty_pools: BTreeSet::new(),
        }
    }

    pub fn filter(&self) -> &ClassFilter {
        &self.filter
    }

    // ---- namespaces ----

    /// A namespace and its labels. Returns its served Services when the labels changed
    /// (pools may select namespaces by label).
    pub fn set_namespace(
        &mut self,
        name: &str,
        labels: Option<&BTreeMap<String, String>>,
    ) -> Vec<ServiceKey> {
        let labels = convert::namespace_labels(labels);
        match self.namespaces.get(name) {
            Some(old) if *old == labels => return Vec::new(),
            None if labels.is_empty() => {
                self.namespaces.insert(name.to_string(), labels);
                return Vec::new();
            }
            _ => {}
        }
        self.namespaces.insert(name.to_string(), labels);
        self.served_in(name)
    }

    pub fn remove_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    fn served_in(&self, namespace: &str) -> Vec<ServiceKey> {
        let from = ServiceKey::new(namespace, "");
        self.served
            .range(from..)
            .take_while(|k| k.namespace == namespace)
            .cloned()
            .collect()
    }

    // ---- pools ----

    /// An `IPAddressPool` was created or changed. Returns the Services to reconcile.
    pub fn apply_pool(&mut self, pool: &IPAddressPool, now: Instant) -> Vec<ServiceKey> {
        let name = PoolName(pool.name_any());
        let spec = convert::pool_spec(pool);
        let generation = pool.metadata.generation;
        if let Some(old) = self.pools.get_mut(&name)
            && old.spec == spec
        {
            // Nothing the allocator sees changed (a status write, a label): nobody moves.
            old.generation = generation;
            self.dirty_pools.insert(name);
            return Vec::new();
        }
        let change = match &spec {
            Ok(s) => self.alloc.set_pool(s.clone(), now),
            Err(_) => self.alloc.remove_pool(&name, now),
        };
        let why = match &spec {
            Ok(_) => format!("pool {name} changed"),
            Err(e) => format!("pool {name} is not valid: {}", e.message),
        };
        self.pools.insert(name, PoolEntry { generation, spec });
        self.after_pool_change(change, &why)
    }

    /// An `IPAddressPool` was deleted. Returns the Services to reconcile.
    pub fn delete_pool(&mut self, name: &PoolName, now: Instant) -> Vec<ServiceKey> {
        if self.pools.remove(name).is_none() {
            return Vec::new();
        }
        let change = self.alloc.remove_pool(name, now);
        self.after_pool_change(change, &format!("pool {name} was deleted"))
    }

    fn after_pool_change(&mut self, change: PoolChange, why: &str) -> Vec<ServiceKey> {
        self.dirty_pools.extend(self.pools.keys().cloned());
        let mut keys: BTreeSet<ServiceKey> = BTreeSet::new();
        for inv in change.invalidated {
            self.notes
                .insert(inv.service.clone(), format!("{inv}: {why}"));
            keys.insert(inv.service);
        }
        keys.extend(change.reattributed.into_iter().map(|r| r.service));
        keys.extend(self.alloc.unsatisfied());
        keys.into_iter().collect()
    }

    pub fn pool_names(&self) -> Vec<PoolName> {
        self.pools.keys().cloned().collect()
    }

    /// Pools whose status may have changed since the last call.
    pub fn take_dirty_pools(&mut self) -> BTreeSet<PoolName> {
        std::mem::take(&mut self.dirty_pools)
    }

    /// What the pool's status is made from; `None` for a pool not seen (or deleted).
    pub fn pool_view(&self, name: &PoolName) -> Option<PoolView> {
        let entry = self.pools.get(name)?;
        Some(match &entry.spec {
            Ok(_) => PoolView {
                generation: entry.generation,
                valid: Ok(()),
                counters: self.alloc.pool_counters(name).unwrap_or_default(),
                overlapping: self.alloc.overlapping_pools(name),
            },
            Err(e) => PoolView {
                generation: entry.generation,
                valid: Err(e.clone()),
                counters: PoolCounters::default(),
                overlapping: Vec::new(),
            },
        })
    }

    // ---- services ----

    /// Start-up (and every new leadership): pools must be applied already; takes every
    /// Service's current addresses, then returns the Services to reconcile: every served one
    /// (to allocate what is missing) and every other one that still carries ferrolb's state.
    pub fn load<'a>(&mut self, services: impl IntoIterator<Item = &'a Service>) -> Vec<ServiceKey> {
        self.served.clear();
        self.waits = Waits::default();
        self.sharing.clear();
        self.notes.clear();
        let mut existing: Vec<ExistingService> = Vec::new();
        let mut keys = Vec::new();
        for svc in services {
            let key = convert::service_key(svc);
            if self.filter.serves(svc) {
                let labels = self.namespace_labels(&key.namespace);
                if let Ok(c) = convert::service_request(svc, labels) {
                    existing.push(convert::existing_service(c.request, svc));
                }
                self.served.insert(key.clone());
                keys.push(key);
            } else if status::carries_ferrolb_state(svc) {
                keys.push(key);
            }
        }
        let report = self.alloc.load(existing);
        for rejected in report.rejected {
            self.notes.insert(
                rejected.service.clone(),
                format!("{rejected} (found at start-up)"),
            );
        }
        self.dirty_pools.extend(self.pools.keys().cloned());
        keys
    }

    fn namespace_labels(&self, namespace: &str) -> Arc<Labels> {
        self.namespaces.get(namespace).cloned().unwrap_or_default()
    }

    /// Whether the Service is served (known to the allocator or refused by it).
    pub fn is_served(&self, key: &ServiceKey) -> bool {
        self.served.contains(key)
    }

    /// Served Services for which `present` is false: gone while the watch was down.
    pub fn served_missing(&self, present: impl Fn(&ServiceKey) -> bool) -> Vec<ServiceKey> {
        self.served
            .iter()
            .filter(|k| !present(k))
            .cloned()
            .collect()
    }

    pub fn served_count(&self) -> usize {
        self.served.len()
    }

    /// The Service's addresses as the allocator holds them.
    pub fn assignment(&self, key: &ServiceKey) -> Vec<AssignedAddress> {
        self.alloc.assignment(key).unwrap_or_default()
    }

    /// The Services holding an address (several when shared).
    pub fn holders(&self, ip: IpAddr) -> Vec<ServiceKey> {
        self.alloc.holders(ip)
    }

    /// A Service was deleted: its addresses are freed. Returns the Services to reconcile.
    pub fn forget(&mut self, key: &ServiceKey, now: Instant) -> Vec<ServiceKey> {
        self.notes.remove(key);
        self.warned.remove(key);
        if !self.served.remove(key) {
            return Vec::new();
        }
        let before = self.assignment(key);
        self.alloc.release(key, now);
        self.waits.clear(key);
        self.sharing.remove(key);
        self.wake_after(key, &before, &[], false)
    }

    /// Brings a Service in line: allocates, keeps or releases its addresses and says what to
    /// write. `now` is the allocator's clock, `wall` the time written into conditions.
    pub fn reconcile(&mut self, svc: &Service, now: Instant, wall: Timestamp) -> Plan {
        let key = convert::service_key(svc);
        if !self.filter.serves(svc) {
            let held: Vec<IpAddr> = self.assignment(&key).iter().map(|a| a.ip).collect();
            let wake = self.forget(&key, now);
            let mut plan = Plan {
                wake,
                ..Plan::default()
            };
            // Another class's controller owns the ingress of its LoadBalancer Services.
            let owns_ingress = !convert::is_load_balancer(svc);
            if status::carries_ferrolb_state(svc) {
                let wanted = Wanted::released(owns_ingress);
                plan.status = status::status_patch(svc, &wanted, wall);
                plan.annotation = status::annotation_patch(svc, &wanted);
            }
            // The API server may have dropped the ingress with the type already: the
            // allocator's view says what was given back.
            let mut released = held;
            if owns_ingress && plan.status.is_some() {
                for ip in convert::ingress_ips(svc) {
                    if !released.contains(&ip) {
                        released.push(ip);
                    }
                }
            }
            if !released.is_empty() {
                plan.outcome = Some(Outcome::Released);
                plan.events = vec![status::released_event(&released)];
            }
            return plan;
        }

        self.served.insert(key.clone());
        let before = self.assignment(&key);
        let labels = self.namespace_labels(&key.namespace);
        let mut notices = Vec::new();
        let mut sharing_changed = false;
        let (condition, waits) = match convert::service_request(svc, labels) {
            Err(invalid) => {
                self.alloc.release(&key, now);
                self.sharing.remove(&key);
                let condition = WantedCondition {
                    reason: IpAllocatedReason::InvalidAnnotation,
                    message: invalid.to_string(),
                };
                (condition, Vec::new())
            }
            Ok(converted) => {
                notices = self.deprecations(&key, &converted.deprecated);
                let print = sharing_print(&converted.request);
                let old = match print {
                    Some(p) => self.sharing.insert(key.clone(), p),
                    None => self.sharing.remove(&key),
                };
                sharing_changed = old != print;
                match self.alloc.assign(converted.request, now) {
                    Ok(assignment) => {
                        let mut message = describe(&assignment.addresses);
                        let mut waits = Vec::new();
                        for unmet in &assignment.unmet {
                            message.push_str(&format!("; not dual-stack: {unmet}"));
                            waits.extend(wake_on(unmet));
                        }
                        let condition = WantedCondition {
                            reason: IpAllocatedReason::Allocated,
                            message,
                        };
                        (condition, waits)
                    }
                    Err(refusal) => {
                        let condition = WantedCondition {
                            reason: refusal.reason(),
                            message: refusal.to_string(),
                        };
                        (condition, wake_on(&refusal))
                    }
                }
            }
        };
        self.waits.set(&key, waits);
        let after = self.assignment(&key);
        let wake = self.wake_after(&key, &before, &after, sharing_changed);

        let wanted = Wanted::served(&after, condition.clone());
        let status_patch = status::status_patch(svc, &wanted, wall);
        let events = match &status_patch {
            Some(_) => {
                status::transition_events(svc, &wanted, self.notes.get(&key).map(String::as_str))
            }
            None => {
                self.notes.remove(&key);
                Vec::new()
            }
        };
        Plan {
            outcome: status_patch
                .as_ref()
                .map(|_| Outcome::Condition(condition.reason)),
            status: status_patch,
            annotation: status::annotation_patch(svc, &wanted),
            events,
            notices,
            wake,
        }
    }

    fn deprecations(
        &mut self,
        key: &ServiceKey,
        found: &[convert::DeprecatedKey],
    ) -> Vec<EventSpec> {
        if found.is_empty() {
            self.warned.remove(key);
            return Vec::new();
        }
        let warned = self.warned.entry(key.clone()).or_default();
        found
            .iter()
            .filter(|d| warned.insert(d.key))
            .map(|d| EventSpec {
                type_: EventType::Warning,
                reason: EventReason::DeprecatedAnnotation,
                note: d.message.clone(),
            })
            .collect()
    }

    /// The Services to wake after `key` went from `before` to `after`, and the pools whose
    /// counters changed.
    fn wake_after(
        &mut self,
        key: &ServiceKey,
        before: &[AssignedAddress],
        after: &[AssignedAddress],
        sharing_changed: bool,
    ) -> Vec<ServiceKey> {
        let mut wake: BTreeSet<ServiceKey> = BTreeSet::new();
        for a in before.iter().filter(|a| !after.contains(a)) {
            self.dirty_pools.insert(a.pool.clone());
            wake.extend(self.waits.waiting_for(&WakeOn::Holder(a.ip)).cloned());
            if self.alloc.holders(a.ip).is_empty() {
                let cause = WakeOn::FreeIn(a.pool.clone(), family_of(a.ip));
                wake.extend(self.waits.waiting_for(&cause).cloned());
            }
        }
        for a in after.iter().filter(|a| !before.contains(a)) {
            self.dirty_pools.insert(a.pool.clone());
        }
        if sharing_changed {
            for a in after {
                wake.extend(self.waits.waiting_for(&WakeOn::Holder(a.ip)).cloned());
            }
        }
        wake.remove(key);
        wake.into_iter().collect()
    }
}

#[cfg(test)]
mod tests;
