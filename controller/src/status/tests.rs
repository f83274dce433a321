//! Unit tests of status patches and transition Events.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::allocator::PoolName;
use serde_json::json;

fn now() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().unwrap()
}

fn svc(status: serde_json::Value, annotations: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "team", "generation": 4,
            "annotations": annotations},
        "spec": {"type": "LoadBalancer"},
        "status": status,
    }))
    .unwrap()
}

fn addr(ip: &str, pool: &str) -> AssignedAddress {
    AssignedAddress {
        ip: ip.parse().unwrap(),
        pool: PoolName::from(pool),
    }
}

fn allocated(message: &str) -> WantedCondition {
    WantedCondition {
        reason: IpAllocatedReason::Allocated,
        message: message.into(),
    }
}

fn written_condition(status: &str, reason: &str, message: &str) -> serde_json::Value {
    json!({"type": IP_ALLOCATED, "status": status, "reason": reason, "message": message,
           "observedGeneration": 4, "lastTransitionTime": "2025-01-01T00:00:00Z"})
}

#[test]
fn a_new_allocation_writes_ingress_with_vip_mode_and_a_true_condition() {
    let s = svc(json!({}), json!({}));
    let wanted = Wanted::served(
        &[addr("198.51.100.1", "p")],
        allocated("allocated 198.51.100.1 from pool p"),
    );
    let patch = status_patch(&s, &wanted, now()).unwrap();
    assert_eq!(
        patch["status"]["loadBalancer"],
        json!({"ingress": [{"ip": "198.51.100.1", "ipMode": "VIP"}]})
    );
    let c = &patch["status"]["conditions"][0];
    assert_eq!(c["type"], IP_ALLOCATED);
    assert_eq!(c["status"], "True");
    assert_eq!(c["reason"], "Allocated");
    assert_eq!(c["observedGeneration"], 4);
    assert_eq!(c["lastTransitionTime"], "2025-06-01T12:00:00Z");
    assert_eq!(
        annotation_patch(&s, &wanted),
        Some(json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": "p"}}}))
    );
    let events = transition_events(&s, &wanted, None);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, EventReason::IpAllocated);
    assert_eq!(events[0].type_, EventType::Normal);
}

#[test]
fn nothing_is_written_when_the_service_is_already_right() {
    let s = svc(
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "VIP"}]},
               "conditions": [written_condition("True", "Allocated", "allocated 198.51.100.1 from pool p")]}),
        json!({"ferrolb.io/ip-allocated-from-pool": "p"}),
    );
    let wanted = Wanted::served(
        &[addr("198.51.100.1", "p")],
        allocated("allocated 198.51.100.1 from pool p"),
    );
    assert_eq!(status_patch(&s, &wanted, now()), None);
    assert_eq!(annotation_patch(&s, &wanted), None);
    assert!(transition_events(&s, &wanted, None).is_empty());
}

#[test]
fn an_ingress_without_ip_mode_is_rewritten() {
    let s = svc(
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.1"}]},
               "conditions": [written_condition("True", "Allocated", "m")]}),
        json!({}),
    );
    let wanted = Wanted::served(&[addr("198.51.100.1", "p")], allocated("m"));
    let patch = status_patch(&s, &wanted, now()).unwrap();
    assert!(patch["status"].get("conditions").is_none());
    assert_eq!(
        patch["status"]["loadBalancer"]["ingress"][0]["ipMode"],
        "VIP"
    );
}

#[test]
fn a_refusal_clears_ingress_keeps_other_conditions_and_warns_once() {
    let s = svc(
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "VIP"}]},
               "conditions": [written_condition("True", "Allocated", "m")]}),
        json!({"ferrolb.io/ip-allocated-from-pool": "p"}),
    );
    let refused = WantedCondition {
        reason: IpAllocatedReason::PoolExhausted,
        message: "no free IPv4 address left in pool p".into(),
    };
    let wanted = Wanted::served(&[], refused.clone());
    let patch = status_patch(&s, &wanted, now()).unwrap();
    assert_eq!(patch["status"]["loadBalancer"], json!({"ingress": null}));
    let c = &patch["status"]["conditions"][0];
    assert_eq!(
        (c["status"].as_str(), c["reason"].as_str()),
        (Some("False"), Some("PoolExhausted"))
    );
    // The status flipped, so the transition time is now.
    assert_eq!(c["lastTransitionTime"], "2025-06-01T12:00:00Z");
    assert_eq!(
        annotation_patch(&s, &wanted),
        Some(json!({"metadata": {"annotations": {"ferrolb.io/ip-allocated-from-pool": null}}}))
    );
    let events = transition_events(&s, &wanted, None);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, EventReason::AllocationFailed);
    assert_eq!(events[0].type_, EventType::Warning);
    assert!(
        events[0]
            .note
            .contains("no free IPv4 address left in pool p")
    );
    assert!(events[0].note.contains("released 198.51.100.1"));

    // Once written, the same refusal is not reported again.
    let after = svc(
        json!({"conditions": [written_condition("False", "PoolExhausted", "no free IPv4 address left in pool p")]}),
        json!({}),
    );
    assert_eq!(status_patch(&after, &wanted, now()), None);
    assert!(transition_events(&after, &wanted, None).is_empty());
}

#[test]
fn the_transition_time_stays_while_the_condition_status_stays() {
    let s = svc(
        json!({"conditions": [written_condition("False", "PoolExhausted", "old")]}),
        json!({}),
    );
    let wanted = Wanted::served(
        &[],
        WantedCondition {
            reason: IpAllocatedReason::NoMatchingPool,
            message: "new".into(),
        },
    );
    let patch = status_patch(&s, &wanted, now()).unwrap();
    assert_eq!(
        patch["status"]["conditions"][0]["lastTransitionTime"],
        "2025-01-01T00:00:00Z"
    );
    assert!(patch["status"].get("loadBalancer").is_none());
}

#[test]
fn a_changed_address_is_ip_changed_with_the_reason_given() {
    let s = svc(
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "VIP"}]}}),
        json!({}),
    );
    let wanted = Wanted::served(
        &[addr("198.51.100.9", "q")],
        allocated("allocated 198.51.100.9 from pool q"),
    );
    let events = transition_events(&s, &wanted, Some("pool p was deleted"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].reason, EventReason::IpChanged);
    assert_eq!(events[0].type_, EventType::Warning);
    assert!(
        events[0]
            .note
            .starts_with("198.51.100.1 replaced by 198.51.100.9"),
        "{}",
        events[0].note
    );
    assert!(
        events[0].note.ends_with("(pool p was deleted)"),
        "{}",
        events[0].note
    );
}

#[test]
fn released_service_loses_condition_annotation_and_ingress() {
    let s = svc(
        json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.1", "ipMode": "VIP"}]},
               "conditions": [written_condition("True", "Allocated", "m"),
                              {"type": "other.example/Ready", "status": "True", "reason": "R",
                               "message": "", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}),
        json!({"ferrolb.io/ip-allocated-from-pool": "p"}),
    );
    let wanted = Wanted::released(true);
    let patch = status_patch(&s, &wanted, now()).unwrap();
    assert_eq!(patch["status"]["loadBalancer"], json!({"ingress": null}));
    // Strategic merge: only ferrolb's condition is deleted.
    assert_eq!(
        patch["status"]["conditions"],
        json!([{"type": IP_ALLOCATED, "$patch": "delete"}])
    );
    assert!(annotation_patch(&s, &wanted).is_some());
    assert!(transition_events(&s, &wanted, None).is_empty());
    let event = released_event(&["198.51.100.1".parse().unwrap()]);
    assert_eq!(event.reason, EventReason::IpReleased);
    assert!(
        event.note.starts_with("released 198.51.100.1"),
        "{}",
        event.note
    );

    // Another class's Service: the ingress is theirs.
    let theirs = Wanted::released(false);
    let patch = status_patch(&s, &theirs, now()).unwrap();
    assert!(patch["status"].get("loadBalancer").is_none());
}

#[test]
fn pools_value_names_each_pool_once_in_address_order() {
    assert_eq!(pools_value(&[]), None);
    assert_eq!(
        pools_value(&[addr("198.51.100.1", "a"), addr("2001:db8::1", "a")]),
        Some("a".into())
    );
    assert_eq!(
        pools_value(&[addr("2001:db8::1", "v6"), addr("198.51.100.1", "v4")]),
        Some("v6,v4".into())
    );
}
