//! What a Service should carry, compared with what it carries: the status patch, the
//! `ip-allocated-from-pool` annotation patch and the Events of the transition. Pure: the
//! reconciler sends what these functions return.
//!
//! Status patches are strategic merge patches of the status subresource: the
//! `ferrolb.io/IPAllocated` entry of `status.conditions` is merged by its type (other
//! controllers' conditions stay), `status.loadBalancer.ingress` is replaced whole (a served
//! Service's ingress is ferrolb's). A patch is made only when a field differs, so a Service
//! that is already right costs no write.

use std::net::IpAddr;

use ferrolb_api::annotations::ServiceAnnotation;
use ferrolb_api::conditions::{IP_ALLOCATED, IpAllocatedReason};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};

use crate::allocator::AssignedAddress;
use crate::convert::ingress_ips;

/// `status.loadBalancer.ingress[].ipMode` ferrolb writes: traffic to the address reaches the
/// node with the address as destination (kube-proxy's usual handling).
pub const IP_MODE: &str = "VIP";

/// The condition ferrolb wants on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedCondition {
    pub reason: IpAllocatedReason,
    pub message: String,
}

impl WantedCondition {
    fn status(&self) -> &'static str {
        if self.reason.is_allocated() {
            "True"
        } else {
            "False"
        }
    }
}

/// What a Service should look like as far as ferrolb is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    /// `status.loadBalancer.ingress` addresses, in the Service's family order.
    pub ingress: Vec<IpAddr>,
    /// `None`: ferrolb's condition is removed (the Service is no longer served).
    pub condition: Option<WantedCondition>,
    /// The `ferrolb.io/ip-allocated-from-pool` value; `None` removes it.
    pub pools: Option<String>,
    /// Whether `status.loadBalancer.ingress` is ferrolb's to write. False for a Service of
    /// another class that still carries ferrolb's condition: only the condition goes.
    pub owns_ingress: bool,
}

impl Wanted {
    /// For a Service ferrolb serves, from its addresses (empty when refused).
    pub fn served(addresses: &[AssignedAddress], condition: WantedCondition) -> Wanted {
        Wanted {
            ingress: addresses.iter().map(|a| a.ip).collect(),
            condition: Some(condition),
            pools: pools_value(addresses),
            owns_ingress: true,
        }
    }

    /// For a Service ferrolb no longer serves: no condition, no annotation; the ingress is
    /// emptied only when `owns_ingress`.
    pub fn released(owns_ingress: bool) -> Wanted {
        Wanted {
            ingress: Vec::new(),
            condition: None,
            pools: None,
            owns_ingress,
        }
    }
}

/// The annotation value: the pools of the addresses in address order, each named once.
pub fn pools_value(addresses: &[AssignedAddress]) -> Option<String> {
    let mut names: Vec<&str> = Vec::new();
    for a in addresses {
        if !names.contains(&a.pool.0.as_str()) {
            names.push(&a.pool.0);
        }
    }
    (!names.is_empty()).then(|| names.join(","))
}

/// ferrolb's condition on the Service, if any.
pub fn current_condition(svc: &Service) -> Option<&Condition> {
    svc.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == IP_ALLOCATED)
}

/// Whether the Service carries anything ferrolb wrote (condition or annotation).
pub fn carries_ferrolb_state(svc: &Service) -> bool {
    current_condition(svc).is_some() || current_pools(svc).is_some()
}

/// The ferrolb.io spelling of `ip-allocated-from-pool` (MetalLB's spelling is MetalLB's to
/// remove).
pub fn current_pools(svc: &Service) -> Option<&str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(ServiceAnnotation::IpAllocatedFromPool.ferrolb_key())
        .map(String::as_str)
}

fn ingress_is(svc: &Service, wanted: &[IpAddr]) -> bool {
    let entries = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_deref())
        .unwrap_or(&[]);
    entries.len() == wanted.len()
        && entries.iter().zip(wanted).all(|(e, ip)| {
            e.hostname.is_none()
                && e.ip_mode.as_deref() == Some(IP_MODE)
                && e.ip.as_deref().and_then(ferrolb_api::validate::parse_ip) == Some(*ip)
        })
}

/// The status patch that brings the Service to `wanted`, or `None` when it is already there.
/// `now` becomes `lastTransitionTime` when the condition's status flips.
pub fn status_patch(svc: &Service, wanted: &Wanted, now: Timestamp) -> Option<Value> {
    let current = current_condition(svc);
    let generation = svc.metadata.generation;
    let mut status = serde_json::Map::new();
    if wanted.owns_ingress && !ingress_is(svc, &wanted.ingress) {
        let load_balancer = if wanted.ingress.is_empty() {
            json!({ "ingress": null })
        } else {
            let ingress: Vec<Value> = wanted
                .ingress
                .iter()
                .map(|ip| json!({ "ip": ip.to_string(), "ipMode": IP_MODE }))
                .collect();
            json!({ "ingress": ingress })
        };
        status.insert("loadBalancer".into(), load_balancer);
    }
    match (&wanted.condition, current) {
        (None, None) => {}
        (None, Some(_)) => {
            status.insert(
                "conditions".into(),
                json!([{ "type": IP_ALLOCATED, "$patch": "delete" }]),
            );
        }
        (Some(w), current) => {
            let same = current.is_some_and(|c| {
                c.status == w.status()
                    && c.reason == w.reason.as_str()
                    && c.message == w.message
                    && c.observed_generation == generation
            });
            if !same {
                let since = match current {
                    Some(c) if c.status == w.status() => c.last_transition_time.0,
                    _ => now,
                };
                let mut condition = json!({
                    "type": IP_ALLOCATED,
                    "status": w.status(),
                    "reason": w.reason.as_str(),
                    "message": w.message,
                    "lastTransitionTime": since.to_string(),
                });
                if let Some(g) = generation {
                    condition["observedGeneration"] = json!(g);
                }
                status.insert("conditions".into(), json!([condition]));
            }
        }
    }
    (!status.is_empty()).then(|| json!({ "status": status }))
}

/// The metadata patch for `ferrolb.io/ip-allocated-from-pool`, or `None` when it is right.
pub fn annotation_patch(svc: &Service, wanted: &Wanted) -> Option<Value> {
    let key = ServiceAnnotation::IpAllocatedFromPool.ferrolb_key();
    if current_pools(svc) == wanted.pools.as_deref() {
        return None;
    }
    let mut annotations = serde_json::Map::new();
    annotations.insert(key.to_string(), json!(wanted.pools));
    Some(json!({ "metadata": { "annotations": annotations } }))
}

/// Kubernetes Event types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    Normal,
    Warning,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The reasons of the Events ferrolb emits on Services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventReason {
    /// A Service without an address got one.
    IpAllocated,
    /// A Service could not get (or keep) an address; the note says why.
    AllocationFailed,
    /// A Service that is no longer served gave its address back.
    IpReleased,
    /// A Service's address was replaced by another.
    IpChanged,
    /// A MetalLB annotation spelling is in use; the note names the ferrolb.io key.
    DeprecatedAnnotation,
}

impl EventReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EventReason::IpAllocated => "IPAllocated",
            EventReason::AllocationFailed => "AllocationFailed",
            EventReason::IpReleased => "IPReleased",
            EventReason::IpChanged => "IPChanged",
            EventReason::DeprecatedAnnotation => {
                ferrolb_api::annotations::DEPRECATED_ANNOTATION_REASON
            }
        }
    }

    /// The Event's `action`: what the controller did.
    pub fn action(self) -> &'static str {
        match self {
            EventReason::IpAllocated | EventReason::IpChanged => "Allocate",
            EventReason::AllocationFailed => "Allocate",
            EventReason::IpReleased => "Release",
            EventReason::DeprecatedAnnotation => "ReadAnnotation",
        }
    }
}

/// An Event to emit on a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventSpec {
    pub type_: EventType,
    pub reason: EventReason,
    pub note: String,
}

fn list(ips: &[IpAddr]) -> String {
    ips.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Event of a Service no longer served that gave `released` back.
pub fn released_event(released: &[IpAddr]) -> EventSpec {
    EventSpec {
        type_: EventType::Normal,
        reason: EventReason::IpReleased,
        note: format!(
            "released {}: the service is no longer a LoadBalancer served by ferrolb",
            list(released)
        ),
    }
}

/// The Events of the transition of a served Service from what it carries to `wanted`. `why` explains a
/// change the Service did not cause (a pool edit, an address found invalid at start-up).
pub fn transition_events(svc: &Service, wanted: &Wanted, why: Option<&str>) -> Vec<EventSpec> {
    let before = ingress_ips(svc);
    let after = &wanted.ingress;
    let because = why.map(|w| format!(" ({w})")).unwrap_or_default();
    let Some(condition) = &wanted.condition else {
        return Vec::new();
    };
    if !condition.reason.is_allocated() {
        let current = current_condition(svc);
        let same = current.is_some_and(|c| {
            c.status == condition.status()
                && c.reason == condition.reason.as_str()
                && c.message == condition.message
        });
        if same && before.is_empty() {
            return Vec::new();
        }
        let released = if before.is_empty() {
            String::new()
        } else {
            format!("; released {}", list(&before))
        };
        return vec![EventSpec {
            type_: EventType::Warning,
            reason: EventReason::AllocationFailed,
            note: format!("{}{released}{because}", condition.message),
        }];
    }
    if before == *after {
        return Vec::new();
    }
    if before.is_empty() {
        vec![EventSpec {
            type_: EventType::Normal,
            reason: EventReason::IpAllocated,
            note: format!("{}{because}", condition.message),
        }]
    } else {
        vec![EventSpec {
            type_: if why.is_some() {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: EventReason::IpChanged,
            note: format!(
                "{} replaced by {}: {}{because}",
                list(&before),
                list(after),
                condition.message
            ),
        }]
    }
}

#[cfg(test)]
mod tests;
