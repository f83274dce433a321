//! Unit tests of the engine: what it writes and whom it wakes, each named for the rule.
//! `World` plays the API server: it applies the plans' patches to its Services.

#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("team", name)
}

fn pool(name: &str, spec: Value) -> IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
        "metadata": {"name": name, "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn service(name: &str, annotations: Value, spec: Value) -> Service {
    let mut s = json!({
        "metadata": {"name": name, "namespace": "team", "uid": format!("uid-{name}"),
            "generation": 1, "creationTimestamp": "2025-01-01T00:00:00Z",
            "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ipFamilyPolicy": "SingleStack",
                 "ipFamilies": ["IPv4"], "ports": [{"port": 80, "protocol": "TCP"}]},
    });
    for (k, v) in spec.as_object().unwrap() {
        s["spec"][k] = v.clone();
    }
    serde_json::from_value(s).unwrap()
}

/// The API server's side: applies patches as a strategic merge would for these fields.
fn apply(svc: &mut Service, plan: &Plan) {
    if let Some(patch) = &plan.status {
        let mut v = serde_json::to_value(&*svc).unwrap();
        if v.get("status").is_none() || v["status"].is_null() {
            v["status"] = json!({});
        }
        let p = &patch["status"];
        if let Some(lb) = p.get("loadBalancer") {
            v["status"]["loadBalancer"] = if lb["ingress"].is_null() {
                json!({})
            } else {
                lb.clone()
            };
        }
        if let Some(conds) = p.get("conditions").and_then(Value::as_array) {
            let mut current: Vec<Value> = v["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in conds {
                current.retain(|x| x["type"] != c["type"]);
                if c.get("$patch").is_none() {
                    current.push(c.clone());
                }
            }
            v["status"]["conditions"] = json!(current);
        }
        *svc = serde_json::from_value(v).unwrap();
    }
    if let Some(patch) = &plan.annotation {
        let annotations = svc
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        for (k, val) in patch["metadata"]["annotations"].as_object().unwrap() {
            match val.as_str() {
                Some(s) => {
                    annotations.insert(k.clone(), s.to_string());
                }
                None => {
                    annotations.remove(k);
                }
            }
        }
    }
}

struct World {
    engine: Engine,
    services: BTreeMap<ServiceKey, Service>,
    t: Instant,
}

impl World {
    fn new(pools: &[IPAddressPool]) -> Self {
        let mut engine = Engine::new(ClassFilter::default(), Duration::from_secs(300));
        let t = Instant::now();
        for p in pools {
            engine.apply_pool(p, t);
        }
        engine.load(std::iter::empty());
        World {
            engine,
            services: BTreeMap::new(),
            t,
        }
    }

    fn wall() -> Timestamp {
        "2025-06-01T00:00:00Z".parse().unwrap()
    }

    /// Reconciles a Service and applies its plan; returns the plan.
    fn reconcile(&mut self, k: &ServiceKey) -> Plan {
        let svc = self.services.get_mut(k).unwrap();
        let plan = self.engine.reconcile(svc, self.t, World::wall());
        apply(svc, &plan);
        plan
    }

    /// Creates (or replaces) a Service and reconciles it until nothing changes.
    fn put(&mut self, svc: Service) -> Plan {
        let k = convert::service_key(&svc);
        self.services.insert(k.clone(), svc);
        let plan = self.reconcile(&k);
        let again = self.reconcile(&k);
        assert_eq!(again.status, None, "a second reconcile writes nothing");
        assert_eq!(again.annotation, None);
        plan
    }

    fn delete(&mut self, name: &str) -> Vec<ServiceKey> {
        self.services.remove(&key(name));
        self.engine.forget(&key(name), self.t)
    }

    fn ingress(&self, name: &str) -> Vec<IpAddr> {
        convert::ingress_ips(&self.services[&key(name)])
    }

    fn condition(&self, name: &str) -> (String, String, String) {
        let c = status::current_condition(&self.services[&key(name)]).unwrap();
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }
}

fn small_pool() -> IPAddressPool {
    pool("two", json!({"addresses": ["198.51.100.10-198.51.100.11"]}))
}

#[test]
fn a_served_service_gets_an_address_condition_and_annotation() {
    let mut w = World::new(&[small_pool()]);
    let plan = w.put(service("a", json!({}), json!({})));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::Allocated))
    );
    assert_eq!(plan.events[0].reason, EventReason::IpAllocated);
    assert_eq!(w.ingress("a"), vec![ip("198.51.100.10")]);
    let (status, reason, message) = w.condition("a");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Allocated"));
    assert_eq!(message, "allocated 198.51.100.10 from pool two");
    assert_eq!(status::current_pools(&w.services[&key("a")]), Some("two"));
}

#[test]
fn a_service_of_another_class_is_never_touched() {
    let mut w = World::new(&[small_pool()]);
    let plan = w.put(service(
        "a",
        json!({}),
        json!({"loadBalancerClass": "example.com/other"}),
    ));
    assert_eq!(plan, Plan::default());
    assert!(w.ingress("a").is_empty());
    assert!(!w.engine.is_served(&key("a")));
}

#[test]
fn the_third_service_of_a_two_address_pool_is_pool_exhausted_naming_the_pool() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    let plan = w.put(service("c", json!({}), json!({})));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::PoolExhausted))
    );
    let (status, reason, message) = w.condition("c");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "PoolExhausted")
    );
    assert!(message.contains("pool two"), "{message}");
    assert_eq!(plan.events[0].reason, EventReason::AllocationFailed);
}

#[test]
fn growing_the_pool_wakes_exactly_the_waiting_service() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    w.put(service("c", json!({}), json!({})));
    let grown = pool("two", json!({"addresses": ["198.51.100.10-198.51.100.12"]}));
    let wake = w.engine.apply_pool(&grown, w.t);
    assert_eq!(wake, vec![key("c")]);
    let plan = w.reconcile(&key("c"));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::Allocated))
    );
    assert_eq!(w.ingress("c"), vec![ip("198.51.100.12")]);
    // The others did not move.
    assert_eq!(w.ingress("a"), vec![ip("198.51.100.10")]);
    assert_eq!(w.ingress("b"), vec![ip("198.51.100.11")]);
}

#[test]
fn a_freed_address_wakes_the_services_waiting_on_its_pool() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    w.put(service("c", json!({}), json!({})));
    assert_eq!(w.delete("a"), vec![key("c")]);
    w.reconcile(&key("c"));
    assert_eq!(w.ingress("c"), vec![ip("198.51.100.10")]);
    // Nobody waits any more: the next release wakes no one.
    assert!(w.delete("b").is_empty());
}

#[test]
fn a_pool_status_update_wakes_nobody() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    w.put(service("c", json!({}), json!({})));
    let mut same = small_pool();
    same.status = Some(Default::default());
    assert!(w.engine.apply_pool(&same, w.t).is_empty());
}

#[test]
fn a_deleted_pool_reallocates_exactly_its_services_with_the_reason() {
    let mut w = World::new(&[
        small_pool(),
        pool("other", json!({"addresses": ["203.0.113.0/30"]})),
    ]);
    w.put(service(
        "a",
        json!({"ferrolb.io/address-pool": "two"}),
        json!({}),
    ));
    w.put(service(
        "b",
        json!({"ferrolb.io/address-pool": "other"}),
        json!({}),
    ));
    let wake = w.engine.delete_pool(&PoolName::from("two"), w.t);
    assert_eq!(wake, vec![key("a")]);
    let plan = w.reconcile(&key("a"));
    // It asked for the deleted pool by name: nothing else may serve it.
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::NoMatchingPool))
    );
    assert!(
        plan.events[0].note.contains("pool two was deleted"),
        "{}",
        plan.events[0].note
    );
    assert!(w.ingress("a").is_empty());
    assert_eq!(w.ingress("b"), vec![ip("203.0.113.0")]);
}

#[test]
fn a_shrunk_pool_moves_the_service_to_another_address_with_ip_changed() {
    let mut w = World::new(&[pool("p", json!({"addresses": ["198.51.100.0/29"]}))]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    assert_eq!(w.ingress("a"), vec![ip("198.51.100.0")]);
    let shrunk = pool("p", json!({"addresses": ["198.51.100.1-198.51.100.7"]}));
    assert_eq!(w.engine.apply_pool(&shrunk, w.t), vec![key("a")]);
    let plan = w.reconcile(&key("a"));
    assert_eq!(plan.events[0].reason, EventReason::IpChanged);
    assert!(
        plan.events[0].note.contains("pool p changed"),
        "{}",
        plan.events[0].note
    );
    assert_eq!(w.ingress("a"), vec![ip("198.51.100.2")]);
    assert_eq!(w.ingress("b"), vec![ip("198.51.100.1")]);
}

#[test]
fn load_keeps_the_addresses_services_carry_and_writes_nothing() {
    let mut w = World::new(&[pool("p", json!({"addresses": ["198.51.100.0/29"]}))]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    w.delete("a");
    w.put(service("c", json!({}), json!({})));
    let before: Vec<_> = ["b", "c"].iter().map(|n| w.ingress(n)).collect();

    // A new leader: a fresh engine loads what the Services carry.
    let mut engine = Engine::new(ClassFilter::default(), Duration::from_secs(300));
    engine.apply_pool(&pool("p", json!({"addresses": ["198.51.100.0/29"]})), w.t);
    let keys = engine.load(w.services.values());
    assert_eq!(keys, vec![key("b"), key("c")]);
    w.engine = engine;
    for k in keys {
        let plan = w.reconcile(&k);
        assert_eq!(plan.status, None, "{k} keeps its address");
        assert_eq!(plan.annotation, None);
    }
    let after: Vec<_> = ["b", "c"].iter().map(|n| w.ingress(n)).collect();
    assert_eq!(before, after);
}

#[test]
fn a_duplicate_found_at_load_is_reallocated_with_a_note() {
    let mut w = World::new(&[pool("p", json!({"addresses": ["198.51.100.0/29"]}))]);
    let carrying = |name: &str, created: &str| {
        let mut s = service(name, json!({}), json!({}));
        s.metadata.creation_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            created.parse().unwrap(),
        ));
        s.status = serde_json::from_value(
            json!({"loadBalancer": {"ingress": [{"ip": "198.51.100.3", "ipMode": "VIP"}]}}),
        )
        .unwrap();
        s
    };
    w.services
        .insert(key("old"), carrying("old", "2025-01-01T00:00:00Z"));
    w.services
        .insert(key("new"), carrying("new", "2025-02-01T00:00:00Z"));
    let keys = w.engine.load(w.services.values());
    for k in &keys {
        w.reconcile(k);
    }
    assert_eq!(w.ingress("old"), vec![ip("198.51.100.3")]);
    assert_eq!(w.ingress("new"), vec![ip("198.51.100.0")]);
}

#[test]
fn a_requested_address_held_by_another_waits_for_it() {
    let mut w = World::new(&[pool("p", json!({"addresses": ["198.51.100.0/29"]}))]);
    w.put(service("a", json!({}), json!({})));
    let plan = w.put(service(
        "b",
        json!({"ferrolb.io/loadBalancerIPs": "198.51.100.0"}),
        json!({}),
    ));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(
            IpAllocatedReason::RequestedIPUnavailable
        ))
    );
    let (_, _, message) = w.condition("b");
    assert!(message.contains("in use by service team/a"), "{message}");
    assert_eq!(w.delete("a"), vec![key("b")]);
    w.reconcile(&key("b"));
    assert_eq!(w.ingress("b"), vec![ip("198.51.100.0")]);
}

#[test]
fn sharing_services_share_and_a_port_conflict_waits_for_the_holder_to_change() {
    let mut w = World::new(&[pool("p", json!({"addresses": ["198.51.100.0/29"]}))]);
    let shared = |name: &str, port: u16| {
        service(
            name,
            json!({"ferrolb.io/allow-shared-ip": "k"}),
            json!({"ports": [{"port": port, "protocol": "TCP"}]}),
        )
    };
    w.put(shared("a", 80));
    w.put(shared("b", 443));
    assert_eq!(w.ingress("a"), w.ingress("b"));
    let plan = w.put(service(
        "c",
        json!({"ferrolb.io/allow-shared-ip": "k", "ferrolb.io/loadBalancerIPs": "198.51.100.0"}),
        json!({"ports": [{"port": 443, "protocol": "TCP"}]}),
    ));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::SharingConflict))
    );
    // b moves to port 8443: c may share now.
    w.services.insert(key("b"), shared("b", 8443));
    let plan = w.reconcile(&key("b"));
    assert_eq!(plan.wake, vec![key("c")]);
    w.reconcile(&key("c"));
    assert_eq!(w.ingress("c"), vec![ip("198.51.100.0")]);
}

#[test]
fn a_namespace_label_change_wakes_its_services_only() {
    let mut w = World::new(&[pool("p", json!({"addresses": ["198.51.100.0/29"]}))]);
    w.put(service("a", json!({}), json!({})));
    let mut other = service("x", json!({}), json!({}));
    other.metadata.namespace = Some("elsewhere".into());
    w.services.insert(ServiceKey::new("elsewhere", "x"), other);
    w.reconcile(&ServiceKey::new("elsewhere", "x"));
    let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
    assert_eq!(
        w.engine.set_namespace("team", Some(&labels)),
        vec![key("a")]
    );
    assert!(w.engine.set_namespace("team", Some(&labels)).is_empty());
}

#[test]
fn namespace_selectors_with_priorities_pick_the_pool() {
    let mut w = World::new(&[
        pool("general", json!({"addresses": ["203.0.113.0/30"]})),
        pool(
            "web-low",
            json!({"addresses": ["198.51.100.0/30"],
            "serviceAllocation": {"priority": 20, "namespaceSelectors": [{"matchLabels": {"tier": "web"}}]}}),
        ),
        pool(
            "web-high",
            json!({"addresses": ["198.51.100.8/30"],
            "serviceAllocation": {"priority": 10, "namespaceSelectors": [{"matchLabels": {"tier": "web"}}]}}),
        ),
    ]);
    w.put(service("before", json!({}), json!({})));
    assert_eq!(w.ingress("before"), vec![ip("203.0.113.0")]);
    let labels: BTreeMap<String, String> = [("tier".to_string(), "web".to_string())].into();
    w.engine.set_namespace("team", Some(&labels));
    w.put(service("after", json!({}), json!({})));
    assert_eq!(w.ingress("after"), vec![ip("198.51.100.8")]);
}

#[test]
fn type_change_releases_clears_and_frees_the_address() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    w.put(service("b", json!({}), json!({})));
    w.put(service("c", json!({}), json!({})));
    let mut a = w.services[&key("a")].clone();
    a.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    w.services.insert(key("a"), a);
    let plan = w.reconcile(&key("a"));
    assert_eq!(plan.wake, vec![key("c")]);
    assert_eq!(plan.events[0].reason, EventReason::IpReleased);
    assert!(w.ingress("a").is_empty());
    assert!(status::current_condition(&w.services[&key("a")]).is_none());
    assert!(!status::carries_ferrolb_state(&w.services[&key("a")]));
    // Nothing more to do for it.
    assert_eq!(w.reconcile(&key("a")), Plan::default());
}

#[test]
fn a_release_is_reported_even_when_the_api_server_dropped_the_ingress_first() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    let mut a = w.services[&key("a")].clone();
    a.spec.as_mut().unwrap().type_ = Some("ClusterIP".into());
    a.status.as_mut().unwrap().load_balancer = None;
    w.services.insert(key("a"), a);
    let plan = w.reconcile(&key("a"));
    assert_eq!(plan.outcome, Some(Outcome::Released));
    assert_eq!(plan.events[0].reason, EventReason::IpReleased);
    assert!(
        plan.events[0].note.contains("198.51.100.10"),
        "{}",
        plan.events[0].note
    );
    assert!(w.engine.holders(ip("198.51.100.10")).is_empty());
}

#[test]
fn an_invalid_annotation_is_a_false_condition_and_frees_the_address() {
    let mut w = World::new(&[small_pool()]);
    w.put(service("a", json!({}), json!({})));
    let plan = w.put(service(
        "a",
        json!({"ferrolb.io/loadBalancerIPs": "198.51.100.10,banana"}),
        json!({}),
    ));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::InvalidAnnotation))
    );
    let (status, reason, message) = w.condition("a");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "InvalidAnnotation")
    );
    assert!(message.contains("ferrolb.io/loadBalancerIPs"), "{message}");
    assert!(w.ingress("a").is_empty());
    assert!(w.engine.holders(ip("198.51.100.10")).is_empty());
}

#[test]
fn a_metallb_annotation_is_reported_once_per_service() {
    let mut w = World::new(&[small_pool()]);
    let plan = w.put(service(
        "a",
        json!({"metallb.io/address-pool": "two"}),
        json!({}),
    ));
    assert_eq!(plan.notices.len(), 1);
    assert_eq!(plan.notices[0].reason, EventReason::DeprecatedAnnotation);
    assert!(plan.notices[0].note.contains("use ferrolb.io/address-pool"));
    assert!(w.reconcile(&key("a")).notices.is_empty());
}

#[test]
fn prefer_dual_stack_gets_both_families_and_require_dual_stack_both_or_none() {
    let mut w = World::new(&[pool(
        "p",
        json!({"addresses": ["198.51.100.0/30", "2001:db8::/126"]}),
    )]);
    w.put(service(
        "prefer",
        json!({}),
        json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
    ));
    assert_eq!(
        w.ingress("prefer"),
        vec![ip("198.51.100.0"), ip("2001:db8::")]
    );
    let mut w = World::new(&[pool("v4only", json!({"addresses": ["198.51.100.0/30"]}))]);
    let plan = w.put(service(
        "require",
        json!({}),
        json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
    ));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::NoMatchingPool))
    );
    assert!(w.ingress("require").is_empty());
    let plan = w.put(service(
        "prefer",
        json!({}),
        json!({"ipFamilyPolicy": "PreferDualStack", "ipFamilies": ["IPv4", "IPv6"]}),
    ));
    assert_eq!(
        plan.outcome,
        Some(Outcome::Condition(IpAllocatedReason::Allocated))
    );
    let (_, _, message) = w.condition("prefer");
    assert!(message.contains("not dual-stack"), "{message}");
}

#[test]
fn pool_view_reports_counters_validity_and_overlaps() {
    let mut w = World::new(&[
        pool("a", json!({"addresses": ["198.51.100.0/30"]})),
        pool(
            "b",
            json!({"addresses": ["198.51.100.2/31", "2001:db8::/64"]}),
        ),
        pool("bad", json!({"addresses": ["2001:db8::9-2001:db8::1"]})),
    ]);
    w.put(service(
        "s",
        json!({"ferrolb.io/address-pool": "a"}),
        json!({}),
    ));
    let a = w.engine.pool_view(&PoolName::from("a")).unwrap();
    assert_eq!(a.counters.v4.assigned, 1);
    assert_eq!(a.counters.v4.available, 3);
    assert_eq!(a.overlapping, vec![PoolName::from("b")]);
    let bad = w.engine.pool_view(&PoolName::from("bad")).unwrap();
    assert!(bad.valid.is_err());
    assert!(w.engine.take_dirty_pools().contains(&PoolName::from("a")));
    assert!(w.engine.take_dirty_pools().is_empty());
}
