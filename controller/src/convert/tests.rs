//! Unit tests of the conversions, each named for the rule.

#![allow(clippy::unwrap_used)]

use super::*;
use serde_json::json;

fn service(v: serde_json::Value) -> Service {
    serde_json::from_value(v).unwrap()
}

fn lb(annotations: serde_json::Value, spec: serde_json::Value) -> Service {
    let mut s = json!({
        "metadata": {
            "name": "web", "namespace": "team",
            "creationTimestamp": "2025-01-02T03:04:05Z",
            "labels": {"app": "web"},
            "annotations": annotations,
        },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilyPolicy": "SingleStack",
            "ipFamilies": ["IPv4"],
            "ports": [{"port": 80, "protocol": "TCP"}],
            "selector": {"app": "web"},
        }
    });
    if let (Some(base), Some(extra)) = (s["spec"].as_object_mut(), spec.as_object()) {
        for (k, v) in extra {
            base.insert(k.clone(), v.clone());
        }
    }
    service(s)
}

fn request(svc: &Service) -> Result<Converted, InvalidRequest> {
    service_request(svc, Arc::default())
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn class_filter_serves_loadbalancers_of_its_class_only() {
    let none = ClassFilter::new(None);
    let ours = ClassFilter::new(Some("ferrolb.io/lb".into()));
    let plain = lb(json!({}), json!({}));
    let classed = lb(json!({}), json!({"loadBalancerClass": "ferrolb.io/lb"}));
    let other = lb(json!({}), json!({"loadBalancerClass": "example.com/other"}));
    let cluster_ip = lb(json!({}), json!({"type": "ClusterIP"}));
    assert!(none.serves(&plain));
    assert!(!none.serves(&classed));
    assert!(!none.serves(&other));
    assert!(!none.serves(&cluster_ip));
    assert!(ours.serves(&classed));
    assert!(!ours.serves(&plain));
    assert!(!ours.serves(&other));
}

#[test]
fn a_plain_service_becomes_a_cluster_policy_single_stack_request() {
    let r = request(&lb(json!({}), json!({}))).unwrap();
    assert_eq!(r.request.key, ServiceKey::new("team", "web"));
    assert_eq!(r.request.created, 1735787045);
    assert_eq!(r.request.ip_family_policy, IpFamilyPolicy::SingleStack);
    assert_eq!(r.request.ip_families, vec![Family::V4]);
    assert_eq!(
        r.request.ports,
        vec![ServicePort {
            port: 80,
            protocol: Protocol::Tcp
        }]
    );
    assert_eq!(r.request.traffic_policy, TrafficPolicy::Cluster);
    assert_eq!(r.request.labels.get("app").map(String::as_str), Some("web"));
    assert!(r.request.requested_ips.is_empty());
    assert!(r.deprecated.is_empty());
}

#[test]
fn families_and_policy_follow_the_spec() {
    let r = request(&lb(
        json!({}),
        json!({"ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv6", "IPv4"]}),
    ))
    .unwrap();
    assert_eq!(r.request.ip_family_policy, IpFamilyPolicy::RequireDualStack);
    assert_eq!(r.request.ip_families, vec![Family::V6, Family::V4]);
}

#[test]
fn local_traffic_policy_carries_the_pod_selector() {
    let r = request(&lb(json!({}), json!({"externalTrafficPolicy": "Local"}))).unwrap();
    assert_eq!(
        r.request.traffic_policy,
        TrafficPolicy::Local {
            pod_selector: [("app".to_string(), "web".to_string())].into()
        }
    );
}

#[test]
fn requested_ips_annotation_wins_over_spec_load_balancer_ip() {
    let r = request(&lb(
        json!({"ferrolb.io/loadBalancerIPs": "198.51.100.7, 2001:db8::7"}),
        json!({"loadBalancerIP": "198.51.100.99"}),
    ))
    .unwrap();
    assert_eq!(
        r.request.requested_ips,
        vec![ip("198.51.100.7"), ip("2001:db8::7")]
    );
    let r = request(&lb(json!({}), json!({"loadBalancerIP": "198.51.100.99"}))).unwrap();
    assert_eq!(r.request.requested_ips, vec![ip("198.51.100.99")]);
}

#[test]
fn metallb_spellings_are_honoured_and_reported() {
    let r = request(&lb(
        json!({
            "metallb.universe.tf/loadBalancerIPs": "198.51.100.7",
            "metallb.io/address-pool": "blue",
            "metallb.io/allow-shared-ip": "k",
        }),
        json!({}),
    ))
    .unwrap();
    assert_eq!(r.request.requested_ips, vec![ip("198.51.100.7")]);
    assert_eq!(r.request.requested_pool, Some(PoolName::from("blue")));
    assert_eq!(r.request.sharing_key, Some(SharingKey("k".into())));
    let keys: Vec<&str> = r.deprecated.iter().map(|d| d.key).collect();
    assert_eq!(
        keys,
        [
            "metallb.universe.tf/loadBalancerIPs",
            "metallb.io/address-pool",
            "metallb.io/allow-shared-ip"
        ]
    );
    assert!(
        r.deprecated[1]
            .message
            .contains("use ferrolb.io/address-pool")
    );
}

#[test]
fn an_unparsable_address_list_names_the_annotation_key() {
    let e = request(&lb(
        json!({"metallb.io/loadBalancerIPs": "198.51.100.300"}),
        json!({}),
    ))
    .unwrap_err();
    let m = e.to_string();
    assert!(
        m.starts_with("annotation metallb.io/loadBalancerIPs: "),
        "{m}"
    );
    assert!(m.contains("198.51.100.300"), "{m}");
}

#[test]
fn an_unparsable_spec_load_balancer_ip_is_named() {
    let e = request(&lb(json!({}), json!({"loadBalancerIP": "nope"}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "spec.loadBalancerIP: \"nope\" is not an IPv4 or IPv6 address"
    );
}

#[test]
fn a_pool_name_that_no_pool_could_have_is_invalid() {
    let e = request(&lb(
        json!({"ferrolb.io/address-pool": "Not A Pool"}),
        json!({}),
    ))
    .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("annotation ferrolb.io/address-pool: \"Not A Pool\" is not a pool name"),
        "{e}"
    );
}

#[test]
fn an_empty_sharing_key_is_invalid() {
    let e = request(&lb(json!({"ferrolb.io/allow-shared-ip": "  "}), json!({}))).unwrap_err();
    assert_eq!(
        e,
        InvalidRequest::EmptySharingKey {
            key: "ferrolb.io/allow-shared-ip"
        }
    );
}

#[test]
fn ports_keep_their_protocols() {
    let r = request(&lb(
        json!({}),
        json!({"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53}, {"port": 9, "protocol": "SCTP"}]}),
    ))
    .unwrap();
    let protocols: Vec<Protocol> = r.request.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(protocols, [Protocol::Udp, Protocol::Tcp, Protocol::Sctp]);
}

#[test]
fn ingress_ips_skip_hostnames_and_garbage() {
    let svc = service(json!({
        "metadata": {"name": "a", "namespace": "b"},
        "status": {"loadBalancer": {"ingress": [
            {"ip": "198.51.100.1"}, {"hostname": "lb.example"}, {"ip": "bogus"}, {"ip": "2001:db8::1"}
        ]}}
    }));
    assert_eq!(
        ingress_ips(&svc),
        vec![ip("198.51.100.1"), ip("2001:db8::1")]
    );
}

#[test]
fn allocated_from_reads_any_spelling_as_a_list() {
    let svc = service(json!({
        "metadata": {"name": "a", "namespace": "b",
            "annotations": {"metallb.io/ip-allocated-from-pool": "v4pool, v6pool"}}
    }));
    assert_eq!(
        allocated_from(&svc),
        vec![PoolName::from("v4pool"), PoolName::from("v6pool")]
    );
}

fn pool(spec: serde_json::Value) -> IPAddressPool {
    serde_json::from_value(json!({
        "apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
        "metadata": {"name": "p", "generation": 2},
        "spec": spec,
    }))
    .unwrap()
}

#[test]
fn a_pool_becomes_interval_sets_and_allocation_rules() {
    let p = pool(json!({
        "addresses": ["198.51.100.0/30", "2001:db8::/64"],
        "autoAssign": false,
        "avoidBuggyIPs": true,
        "serviceAllocation": {"priority": 5, "namespaces": ["team"],
            "namespaceSelectors": [{"matchLabels": {"tier": "web"}}]},
    }));
    let spec = pool_spec(&p).unwrap();
    assert_eq!(spec.name, PoolName::from("p"));
    assert_eq!(spec.ranges.size(Family::V4), 4);
    assert_eq!(spec.ranges.size(Family::V6), 1 << 64);
    assert!(!spec.auto_assign);
    assert!(spec.avoid_buggy_ips);
    let a = spec.allocation.as_ref().unwrap();
    assert_eq!(a.priority, 5);
    assert_eq!(a.namespaces, ["team"]);
    assert!(uses_namespace_labels(&spec));
}

#[test]
fn a_reversed_ipv6_range_is_an_invalid_address_naming_the_entry() {
    let e = pool_spec(&pool(json!({"addresses": ["2001:db8::9-2001:db8::1"]}))).unwrap_err();
    assert_eq!(e.reason, ConfigReason::InvalidAddress);
    assert!(e.message.starts_with("spec.addresses: "), "{}", e.message);
    assert!(
        e.message.contains("2001:db8::9-2001:db8::1"),
        "{}",
        e.message
    );
}

#[test]
fn a_bad_selector_is_an_invalid_selector_naming_the_field() {
    let e = pool_spec(&pool(json!({
        "addresses": ["198.51.100.0/30"],
        "serviceAllocation": {"serviceSelectors": [
            {"matchExpressions": [{"key": "app", "operator": "Near", "values": ["x"]}]}
        ]},
    })))
    .unwrap_err();
    assert_eq!(e.reason, ConfigReason::InvalidSelector);
    assert!(
        e.message
            .starts_with("spec.serviceAllocation.serviceSelectors[0]: "),
        "{}",
        e.message
    );
}
