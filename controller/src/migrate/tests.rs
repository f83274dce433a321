//! One test (or more) per mapping rule of `convert`. The MetalLB manifests are written here
//! for the tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn run(yaml: &str) -> Conversion {
    run_with(yaml, &Options::default())
}

fn run_with(yaml: &str, options: &Options) -> Conversion {
    let (documents, findings) = input::read("test.yaml", yaml);
    assert!(findings.is_empty(), "{findings:?}");
    let conversion = convert(&documents, options);
    // Whatever is converted round-trips and passes the CRDs' CEL rules.
    for c in &conversion.objects {
        round_trips_and_passes_cel(&c.object);
    }
    conversion
}

fn round_trips_and_passes_cel(object: &Object) {
    fn check<T>(o: &T, kind: &str)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let yaml = serde_yaml::to_string(o).unwrap();
        let back: T = serde_yaml::from_str(&yaml).unwrap();
        assert_eq!(&back, o, "{yaml}");
        if kind == "Secret" {
            return;
        }
        let crd = ferrolb_api::crds()
            .into_iter()
            .find(|c| c.spec.names.kind == kind)
            .unwrap();
        let schema = serde_json::to_value(
            crd.spec.versions[0]
                .schema
                .as_ref()
                .unwrap()
                .open_api_v3_schema
                .as_ref(),
        )
        .unwrap();
        let value = serde_json::to_value(o).unwrap();
        if let Err(errors) = kube_cel::Validator::new().validate(&schema, &value, None) {
            panic!("refused by CEL: {errors}\n{yaml}");
        }
    }
    match object {
        Object::Secret(o) => check(o, "Secret"),
        Object::Pool(o) => check(o, "IPAddressPool"),
        Object::Peer(o) => check(o, "BGPPeer"),
        Object::BgpAdvertisement(o) => check(o, "BGPAdvertisement"),
        Object::L2Advertisement(o) => check(o, "L2Advertisement"),
    }
}

fn pools(c: &Conversion) -> Vec<&IPAddressPool> {
    c.objects
        .iter()
        .filter_map(|c| match &c.object {
            Object::Pool(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn pool<'a>(c: &'a Conversion, name: &str) -> &'a IPAddressPool {
    pools(c)
        .into_iter()
        .find(|p| p.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no pool {name}: {:?}", c.findings))
}

fn peer(c: &Conversion) -> &BGPPeer {
    c.objects
        .iter()
        .find_map(|c| match &c.object {
            Object::Peer(p) => Some(p),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no peer: {:?}", c.findings))
}

fn bgp_adv(c: &Conversion) -> &BGPAdvertisement {
    c.objects
        .iter()
        .find_map(|c| match &c.object {
            Object::BgpAdvertisement(a) => Some(a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no BGPAdvertisement: {:?}", c.findings))
}

fn l2_adv(c: &Conversion) -> &L2Advertisement {
    c.objects
        .iter()
        .find_map(|c| match &c.object {
            Object::L2Advertisement(a) => Some(a),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no L2Advertisement: {:?}", c.findings))
}

fn secrets(c: &Conversion) -> Vec<&Secret> {
    c.objects
        .iter()
        .filter_map(|c| match &c.object {
            Object::Secret(s) => Some(s),
            _ => None,
        })
        .collect()
}

/// The findings as (severity, field, reason), for matching.
fn findings(c: &Conversion) -> Vec<(Severity, &str, &Reason)> {
    c.findings
        .iter()
        .map(|f| (f.severity(), f.field.as_str(), &f.reason))
        .collect()
}

fn only_finding(c: &Conversion) -> &Finding {
    assert_eq!(c.findings.len(), 1, "{:#?}", c.findings);
    &c.findings[0]
}

fn pool_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: {name}\n  namespace: metallb-system\nspec:\n{spec}\n---\n"
    )
}

// ---------------------------------------------------------------- IPAddressPool

#[test]
fn pool_fields_and_labels_carry_over_and_the_namespace_goes() {
    let c = run(r#"
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: web
  namespace: metallb-system
  labels: {tier: web}
  annotations: {kubectl.kubernetes.io/last-applied-configuration: "{}"}
  uid: 0b0c3f9e-0000-4000-8000-000000000001
  resourceVersion: "42"
spec:
  addresses: [198.51.100.0/26, 198.51.100.100 - 198.51.100.110, "2001:db8:1::/120"]
  autoAssign: false
  avoidBuggyIPs: true
status:
  assignedIPv4: 3
"#);
    assert!(c.findings.is_empty(), "{:?}", c.findings);
    let p = pool(&c, "web");
    assert_eq!(
        p.metadata,
        ObjectMeta {
            name: Some("web".into()),
            labels: Some(BTreeMap::from([("tier".into(), "web".into())])),
            ..ObjectMeta::default()
        }
    );
    assert_eq!(
        p.spec,
        IPAddressPoolSpec {
            addresses: vec![
                "198.51.100.0/26".into(),
                "198.51.100.100-198.51.100.110".into(),
                "2001:db8:1::/120".into()
            ],
            auto_assign: false,
            avoid_buggy_ips: true,
            service_allocation: None,
        }
    );
    assert_eq!(p.status, None);
}

#[test]
fn pool_auto_assign_defaults_to_true_as_in_metallb() {
    let c = run(&pool_yaml("p", "  addresses: [198.51.100.0/24]"));
    assert!(pool(&c, "p").spec.auto_assign);
}

#[test]
fn pool_cidr_with_host_bits_is_written_as_its_network_with_a_note() {
    let c = run(&pool_yaml("p", "  addresses: [198.51.100.7/24]"));
    assert_eq!(pool(&c, "p").spec.addresses, ["198.51.100.0/24"]);
    let f = only_finding(&c);
    assert_eq!(f.severity(), Severity::Note);
    assert_eq!(f.field, "spec.addresses[0]");
    assert_eq!(
        f.to_string(),
        "note: IPAddressPool metallb-system/p: spec.addresses[0]: \"198.51.100.7/24\" is written as 198.51.100.0/24, the network it means (as in MetalLB)"
    );
}

#[test]
fn pool_with_a_bad_address_is_an_error_from_ferrolbs_parser() {
    let c = run(&pool_yaml(
        "p",
        "  addresses: [198.51.100.0/24, 198.51.100.300/32]",
    ));
    assert!(c.has_errors());
    assert!(pools(&c).is_empty());
    let f = only_finding(&c);
    assert_eq!(f.field, "spec.addresses[1]");
    assert!(matches!(
        &f.reason,
        Reason::Address(ferrolb_api::addr::AddressError::NotAnAddress { .. })
    ));
}

#[test]
fn pool_without_addresses_is_an_error() {
    let c = run(&pool_yaml("p", "  autoAssign: true"));
    assert_eq!(
        findings(&c),
        [(Severity::Error, "spec.addresses", &Reason::NoAddresses)]
    );
}

#[test]
fn pool_priority_keeps_metallbs_order_unset_last() {
    let c = run(&[
        pool_yaml(
            "unset",
            "  addresses: [198.51.100.0/28]\n  serviceAllocation:\n    namespaces: [web]",
        ),
        pool_yaml(
            "five",
            "  addresses: [198.51.100.16/28]\n  serviceAllocation:\n    priority: 5\n    namespaces: [web]",
        ),
        pool_yaml(
            "one",
            "  addresses: [198.51.100.32/28]\n  serviceAllocation:\n    priority: 1\n    serviceSelectors: [{matchLabels: {app: web}}]",
        ),
    ]
    .concat());
    let priority = |name| {
        pool(&c, name)
            .spec
            .service_allocation
            .as_ref()
            .unwrap()
            .priority
    };
    assert_eq!(
        (priority("one"), priority("five"), priority("unset")),
        (1, 5, i32::MAX)
    );
    assert_eq!(
        findings(&c),
        [(
            Severity::Note,
            "spec.serviceAllocation.priority",
            &Reason::PriorityUnset { written: i32::MAX }
        )]
    );
    let allocation = pool(&c, "one").spec.service_allocation.clone().unwrap();
    assert_eq!(allocation.service_selectors.len(), 1);
    assert_eq!(
        pool(&c, "five")
            .spec
            .service_allocation
            .as_ref()
            .unwrap()
            .namespaces,
        ["web"]
    );
}

#[test]
fn pool_priority_out_of_ferrolbs_range_or_negative_is_reported() {
    let c = run(&[
        pool_yaml(
            "neg",
            "  addresses: [198.51.100.0/28]\n  serviceAllocation:\n    priority: -3\n    namespaces: [a]",
        ),
        pool_yaml(
            "huge",
            "  addresses: [198.51.100.16/28]\n  serviceAllocation:\n    priority: 9999999999\n    namespaces: [a]",
        ),
    ]
    .concat());
    let priority = |name| {
        pool(&c, name)
            .spec
            .service_allocation
            .as_ref()
            .unwrap()
            .priority
    };
    assert_eq!(priority("neg"), -3);
    assert_eq!(priority("huge"), i32::MAX - 1);
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Warning,
                "spec.serviceAllocation.priority",
                &Reason::PriorityNegative { value: -3 }
            ),
            (
                Severity::Warning,
                "spec.serviceAllocation.priority",
                &Reason::PriorityTooLarge {
                    value: 9_999_999_999,
                    written: i32::MAX - 1
                }
            )
        ]
    );
}

#[test]
fn service_allocation_selecting_nothing_becomes_auto_assign_false() {
    let c = run(&[
        pool_yaml(
            "prio-only",
            "  addresses: [198.51.100.0/28]\n  serviceAllocation:\n    priority: 3",
        ),
        pool_yaml(
            "manual",
            "  addresses: [198.51.100.16/28]\n  autoAssign: false\n  serviceAllocation:\n    priority: 3",
        ),
    ]
    .concat());
    for name in ["prio-only", "manual"] {
        let p = pool(&c, name);
        assert!(!p.spec.auto_assign, "{name}");
        assert_eq!(p.spec.service_allocation, None, "{name}");
    }
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Warning,
                "spec.serviceAllocation",
                &Reason::AllocationSelectsNothing
            ),
            (
                Severity::Note,
                "spec.serviceAllocation",
                &Reason::AllocationIgnored
            )
        ]
    );
}

#[test]
fn namespace_selectors_carry_over_and_bad_selectors_are_errors() {
    let c = run(&pool_yaml(
        "p",
        "  addresses: [198.51.100.0/28]\n  serviceAllocation:\n    priority: 2\n    namespaceSelectors:\n      - matchExpressions: [{key: team, operator: In, values: [a, b]}]",
    ));
    assert!(c.findings.is_empty(), "{:?}", c.findings);
    let a = pool(&c, "p").spec.service_allocation.clone().unwrap();
    assert_eq!(
        serde_json::to_value(&a.namespace_selectors).unwrap(),
        json!([{"matchExpressions": [{"key": "team", "operator": "In", "values": ["a", "b"]}]}])
    );

    let c = run(&pool_yaml(
        "p",
        "  addresses: [198.51.100.0/28]\n  serviceAllocation:\n    namespaceSelectors:\n      - matchExpressions: [{key: team, operator: Within, values: [a]}]",
    ));
    assert!(c.has_errors());
    let f = c
        .findings
        .iter()
        .find(|f| f.severity() == Severity::Error)
        .unwrap();
    assert_eq!(f.field, "spec.serviceAllocation.namespaceSelectors[0]");
    assert!(matches!(f.reason, Reason::Selector(_)));
}

#[test]
fn unknown_fields_are_named_and_not_carried() {
    let c = run(&pool_yaml(
        "p",
        "  addresses: [198.51.100.0/28]\n  nodeSelectors: [{matchLabels: {a: b}}]\n  serviceAllocation:\n    namespaces: [x]\n    priority: 1\n    weight: 3",
    ));
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Warning,
                "spec.nodeSelectors",
                &Reason::UnknownField
            ),
            (
                Severity::Warning,
                "spec.serviceAllocation.weight",
                &Reason::UnknownField
            ),
        ]
    );
    assert!(!c.has_errors());
}

#[test]
fn too_many_pool_entries_is_an_error() {
    let entries: Vec<String> = (0..1025)
        .map(|i| format!("198.51.{}.{}/32", i / 256, i % 256))
        .collect();
    let c = run(&pool_yaml("p", &format!("  addresses: {entries:?}")));
    assert!(c.findings.iter().any(|f| f.reason
        == Reason::TooMany {
            count: 1025,
            max: 1024
        }));
}

proptest! {
    /// For any set of MetalLB pools with namespaces and priorities, ferrolb's order of the
    /// converted pools (ascending priority, ties by name) is MetalLB's order (positive
    /// priorities ascending, then priority 0; MetalLB leaves ties unordered, so ties are
    /// compared by name here).
    #[test]
    fn pool_order_is_metallbs(priorities in prop::collection::vec(0i64..6, 1..8)) {
        let yaml: String = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| pool_yaml(
                &format!("pool-{i}"),
                &format!("  addresses: [198.51.100.{}/32]\n  serviceAllocation:\n    priority: {p}\n    namespaces: [web]", i),
            ))
            .collect();
        // Without run()'s CEL checks, which cost a second per case; the mapping is the point.
        let (documents, _) = input::read("test.yaml", &yaml);
        let c = convert(&documents, &Options::default());
        prop_assert!(!c.has_errors());
        let mut metallb: Vec<(bool, i64, String)> = priorities
            .iter()
            .enumerate()
            .map(|(i, p)| (*p == 0, *p, format!("pool-{i}")))
            .collect();
        metallb.sort();
        let mut ferrolb: Vec<(i32, String)> = pools(&c)
            .iter()
            .map(|p| (p.spec.service_allocation.as_ref().unwrap().priority, p.metadata.name.clone().unwrap()))
            .collect();
        ferrolb.sort();
        let metallb: Vec<String> = metallb.into_iter().map(|(_, _, n)| n).collect();
        let ferrolb: Vec<String> = ferrolb.into_iter().map(|(_, n)| n).collect();
        prop_assert_eq!(metallb, ferrolb);
    }
}

// ---------------------------------------------------------------- L2Advertisement

#[test]
fn l2_advertisement_fields_carry_over() {
    let c = run(r#"
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec:
  ipAddressPools: [default]
  ipAddressPoolSelectors: [{matchLabels: {mode: l2}}]
  nodeSelectors: [{matchLabels: {kubernetes.io/hostname: node1}}]
  interfaces: [eth0, bond0.100]
"#);
    let spec = &l2_adv(&c).spec;
    assert_eq!(spec.ip_address_pools, ["default"]);
    assert_eq!(spec.ip_address_pool_selectors.len(), 1);
    assert_eq!(spec.node_selectors.len(), 1);
    assert_eq!(spec.interfaces, ["eth0", "bond0.100"]);
    assert!(spec.service_selectors.is_empty());
    assert_eq!(
        findings(&c),
        [(
            Severity::Warning,
            "spec.ipAddressPools",
            &Reason::UnknownReference {
                kind: "IPAddressPool",
                name: "default".into()
            }
        )]
    );
}

#[test]
fn l2_advertisement_with_a_bad_interface_is_refused_by_ferrolbs_validator() {
    let c = run(
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\nspec:\n  interfaces: [\"eth0:1\"]\n",
    );
    let f = only_finding(&c);
    assert_eq!(f.severity(), Severity::Error);
    assert!(matches!(
        f.reason,
        Reason::Invalid(ferrolb_api::validate::InvalidField::NotAnInterfaceName { .. })
    ));
    assert_eq!(
        f.to_string(),
        "error: L2Advertisement metallb-system/l2: spec.interfaces[0]: \"eth0:1\" is not a network interface name: 1 to 15 letters, digits, \"_\", \".\" or \"-\""
    );
}

// ---------------------------------------------------------------- BGPAdvertisement

const COMMUNITIES: &str = r#"
apiVersion: metallb.io/v1beta1
kind: Community
metadata: {name: communities, namespace: metallb-system}
spec:
  communities:
    - {name: no-advertise, value: "65535:65282"}
    - {name: tenant, value: "large:64512:7:1"}
---
"#;

#[test]
fn bgp_advertisement_resolves_aliases_and_normalises_communities() {
    let c = run(&format!(
        "{COMMUNITIES}{}",
        r#"
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: adv, namespace: metallb-system}
spec:
  communities: [no-advertise, "064512:0100", tenant, "65535:65282", "large:1:2:3"]
  localPref: 150
  aggregationLength: 32
  aggregationLengthV6: 120
  ipAddressPoolSelectors: [{matchLabels: {bgp: "yes"}}]
  nodeSelectors: [{matchLabels: {rack: r1}}]
  peers: [tor]
"#
    ));
    let spec = &bgp_adv(&c).spec;
    assert_eq!(
        spec.communities,
        ["65535:65282", "64512:100", "large:64512:7:1", "large:1:2:3"]
    );
    assert_eq!(spec.local_pref, Some(150));
    assert_eq!(
        (spec.aggregation_length, spec.aggregation_length_v6),
        (32, 120)
    );
    assert_eq!(spec.peers, ["tor"]);
    assert_eq!(spec.node_selectors.len(), 1);
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Note,
                "spec.communities[0]",
                &Reason::CommunityAlias {
                    alias: "no-advertise".into(),
                    value: "65535:65282".into()
                }
            ),
            (
                Severity::Note,
                "spec.communities[2]",
                &Reason::CommunityAlias {
                    alias: "tenant".into(),
                    value: "large:64512:7:1".into()
                }
            ),
            (
                Severity::Warning,
                "spec.peers",
                &Reason::UnknownReference {
                    kind: "BGPPeer",
                    name: "tor".into()
                }
            ),
        ]
    );
}

#[test]
fn bgp_advertisement_defaults_match_metallbs() {
    let c = run(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv}\nspec:\n  localPref: 0\n",
    );
    let spec = &bgp_adv(&c).spec;
    assert_eq!(
        (spec.aggregation_length, spec.aggregation_length_v6),
        (32, 128)
    );
    assert_eq!(spec.local_pref, None);
    assert!(spec.communities.is_empty() && spec.ip_address_pools.is_empty());
    assert!(c.findings.is_empty());
}

#[test]
fn unknown_community_and_bad_aliases_are_errors() {
    let c = run(
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv}\nspec:\n  communities: [gold, \"70000:1\"]\n",
    );
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Error,
                "spec.communities[0]",
                &Reason::UnknownCommunity {
                    value: "gold".into()
                }
            ),
            (
                Severity::Error,
                "spec.communities[1]",
                &Reason::UnknownCommunity {
                    value: "70000:1".into()
                }
            ),
        ]
    );
    let c = run(&format!(
        "{COMMUNITIES}{}",
        "apiVersion: metallb.io/v1beta1\nkind: Community\nmetadata: {name: more, namespace: metallb-system}\nspec:\n  communities:\n    - {name: tenant, value: \"1:1\"}\n    - {name: bad, value: \"x:1\"}\n"
    ));
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Error,
                "spec.communities[0]",
                &Reason::DuplicateAlias {
                    alias: "tenant".into(),
                    other: "Community metallb-system/communities".into()
                }
            ),
            (
                Severity::Error,
                "spec.communities[1]",
                &Reason::BadAlias {
                    alias: "bad".into(),
                    value: "x:1".into()
                }
            ),
        ]
    );
}

#[test]
fn aggregation_shorter_than_a_selected_pool_is_an_error_from_ferrolbs_check() {
    let text = format!(
        "{}{}",
        pool_yaml("small", "  addresses: [198.51.100.0/28]"),
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv}\nspec:\n  ipAddressPools: [small]\n  aggregationLength: 24\n",
    );
    let c = run(&text);
    let f = only_finding(&c);
    assert_eq!(f.severity(), Severity::Error);
    assert!(matches!(
        f.reason,
        Reason::Invalid(ferrolb_api::validate::InvalidField::AggregationShorterThanPool { .. })
    ));
    // A pool the advertisement does not select is not checked.
    let c = run(&text.replace(
        "ipAddressPools: [small]",
        "ipAddressPoolSelectors: [{matchLabels: {x: y}}]",
    ));
    assert!(c.findings.is_empty(), "{:?}", c.findings);
}

// ---------------------------------------------------------------- BGPPeer

fn peer_yaml(version: &str, spec: &str) -> String {
    format!(
        "apiVersion: metallb.io/{version}\nkind: BGPPeer\nmetadata:\n  name: tor\n  namespace: metallb-system\nspec:\n{spec}\n---\n"
    )
}

#[test]
fn peer_fields_carry_over() {
    let c = run(&peer_yaml(
        "v1beta2",
        r#"  myASN: 64512
  peerASN: 4200000001
  peerAddress: 127.0.0.1
  sourceAddress: 127.0.0.1
  peerPort: 1179
  holdTime: 9s
  keepaliveTime: 3s
  connectTime: 5s
  routerID: 192.0.2.11
  nodeSelectors: [{matchLabels: {rack: r1}}]
  ebgpMultiHop: true
  enableGracefulRestart: true"#,
    ));
    assert!(c.findings.is_empty(), "{:?}", c.findings);
    let spec = &peer(&c).spec;
    assert_eq!(
        serde_json::to_value(spec).unwrap(),
        json!({
            "myASN": 64512, "peerASN": 4200000001u32, "peerAddress": "127.0.0.1",
            "sourceAddress": "127.0.0.1", "peerPort": 1179, "holdTime": "9s",
            "keepaliveTime": "3s", "connectTime": "5s", "routerID": "192.0.2.11",
            "nodeSelectors": [{"matchLabels": {"rack": "r1"}}],
            "ebgpMultiHop": true, "enableGracefulRestart": true
        })
    );
}

#[test]
fn peer_defaults_match_metallbs() {
    let c = run(&peer_yaml(
        "v1beta1",
        "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  peerPort: 0",
    ));
    let spec = &peer(&c).spec;
    assert_eq!(spec.peer_port, 179);
    assert_eq!(spec.hold_time, "90s");
    assert_eq!(spec.keepalive_time, None);
    assert_eq!(spec.connect_time, "10s");
    assert_eq!(spec.password_secret, None);
    assert!(c.findings.is_empty());
}

#[test]
fn v1beta1_node_selectors_read_as_label_selectors() {
    let c = run(&peer_yaml(
        "v1beta1",
        "  myASN: 64512\n  peerASN: 64513\n  peerAddress: 192.0.2.1\n  nodeSelectors:\n    - matchExpressions: [{key: rack, operator: NotIn, values: [r9]}]",
    ));
    assert_eq!(
        serde_json::to_value(&peer(&c).spec.node_selectors).unwrap(),
        json!([{"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["r9"]}]}])
    );
}

#[test]
fn peer_timers_become_whole_seconds_the_way_metallb_derives_them() {
    let spec = |timers: &str| {
        let c = run(&peer_yaml(
            "v1beta2",
            &format!("  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n{timers}"),
        ));
        let s = &peer(&c).spec;
        (
            s.hold_time.clone(),
            s.keepalive_time.clone(),
            s.connect_time.clone(),
            findings(&c)
                .into_iter()
                .map(|(_, field, reason)| (field.to_owned(), reason.clone()))
                .collect::<Vec<_>>(),
        )
    };
    // Only keepalive: MetalLB holds three keepalives.
    assert_eq!(
        spec("  keepaliveTime: 30s"),
        (
            "90s".into(),
            Some("30s".into()),
            "10s".into(),
            vec![(
                "spec.holdTime".into(),
                Reason::HoldFromKeepalive {
                    written: "90s".into()
                }
            )]
        )
    );
    // Only hold: keepalive stays unset (a third of the hold time, in both).
    assert_eq!(spec("  holdTime: 1m30s").0, "1m30s");
    assert_eq!(spec("  holdTime: 1m30s").1, None);
    // Go forms ferrolb does not read are rewritten; fractions are cut, never to 0s.
    let (hold, keepalive, connect, found) =
        spec("  holdTime: 10.5s\n  keepaliveTime: 500ms\n  connectTime: 1h0m0s");
    assert_eq!(
        (hold.as_str(), keepalive.as_deref(), connect.as_str()),
        ("10s", Some("1s"), "1h0m0s")
    );
    assert_eq!(
        found,
        [
            (
                "spec.keepaliveTime".into(),
                Reason::DurationRounded {
                    value: "500ms".into(),
                    written: "1s".into()
                }
            ),
            (
                "spec.holdTime".into(),
                Reason::DurationRounded {
                    value: "10.5s".into(),
                    written: "10s".into()
                }
            ),
        ]
    );
    assert_eq!(spec("  holdTime: 2h").0, "2h");
    assert_eq!(spec("  holdTime: 90000ms").0, "90s");
}

#[test]
fn peer_timers_ferrolb_refuses_are_errors() {
    let c = run(&peer_yaml(
        "v1beta2",
        "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  holdTime: 90s\n  keepaliveTime: 90s",
    ));
    let f = only_finding(&c);
    assert_eq!(
        f.to_string(),
        "error: BGPPeer metallb-system/tor: spec.keepaliveTime: keepaliveTime 90s must be shorter than holdTime 90s"
    );
    let c = run(&peer_yaml(
        "v1beta2",
        "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  holdTime: soon",
    ));
    assert_eq!(
        findings(&c),
        [(
            Severity::Error,
            "spec.holdTime",
            &Reason::NotADuration {
                value: "soon".into()
            }
        )]
    );
}

#[test]
fn dynamic_asn_internal_is_my_asn_and_the_rest_is_refused() {
    let asn = |fields: &str| {
        let c = run(&peer_yaml(
            "v1beta2",
            &format!("  myASN: 64512\n  peerAddress: 127.0.0.1\n{fields}"),
        ));
        (
            c.objects.iter().find_map(|o| match &o.object {
                Object::Peer(p) => Some(p.spec.peer_asn),
                _ => None,
            }),
            findings(&c)
                .into_iter()
                .map(|(s, f, r)| (s, f.to_owned(), r.clone()))
                .collect::<Vec<_>>(),
        )
    };
    assert_eq!(
        asn("  dynamicASN: internal"),
        (
            Some(64512),
            vec![(
                Severity::Note,
                "spec.dynamicASN".into(),
                Reason::DynamicInternal { asn: 64512 }
            )]
        )
    );
    assert_eq!(
        asn("  dynamicASN: external"),
        (
            None,
            vec![(
                Severity::Error,
                "spec.dynamicASN".into(),
                Reason::DynamicAsn {
                    mode: "external".into()
                }
            )]
        )
    );
    assert_eq!(
        asn("  peerASN: 1\n  dynamicASN: internal").1[0].2,
        Reason::PeerAsnAndDynamic
    );
    assert_eq!(asn("").1[0].2, Reason::MissingPeerAsn);
}

#[test]
fn unnumbered_and_addressless_peers_are_refused() {
    let c = run(&peer_yaml(
        "v1beta2",
        "  myASN: 64512\n  peerASN: 64512\n  interface: eth1",
    ));
    assert_eq!(
        findings(&c),
        [(
            Severity::Error,
            "spec.interface",
            &Reason::Unnumbered {
                interface: "eth1".into()
            }
        )]
    );
    let c = run(&peer_yaml("v1beta2", "  myASN: 64512\n  peerASN: 64512"));
    assert_eq!(
        findings(&c),
        [(
            Severity::Error,
            "spec.peerAddress",
            &Reason::MissingPeerAddress
        )]
    );
    let c = run(&peer_yaml(
        "v1beta2",
        "  myASN: 64512\n  peerASN: 64512\n  peerAddress: router.example",
    ));
    assert!(matches!(
        only_finding(&c).reason,
        Reason::Invalid(ferrolb_api::validate::InvalidField::NotAnIpAddress { .. })
    ));
}

#[test]
fn bfd_vrf_and_address_family_settings_are_reported() {
    let c = run(&peer_yaml(
        "v1beta2",
        "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  bfdProfile: fast\n  vrf: red\n  disableMP: true\n  dualStackAddressFamily: true",
    ));
    assert!(!c.has_errors());
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Warning,
                "spec.bfdProfile",
                &Reason::Bfd {
                    profile: "fast".into()
                }
            ),
            (
                Severity::Warning,
                "spec.vrf",
                &Reason::Vrf { vrf: "red".into() }
            ),
            (Severity::Note, "spec.disableMP", &Reason::AddressFamilies),
            (
                Severity::Note,
                "spec.dualStackAddressFamily",
                &Reason::AddressFamilies
            ),
        ]
    );
}

#[test]
fn inline_password_becomes_a_secret_in_ferrolbs_namespace() {
    let options = Options {
        secret_namespace: "lb".into(),
        ..Options::default()
    };
    let c = run_with(
        &peer_yaml(
            "v1beta1",
            "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  password: s3cret",
        ),
        &options,
    );
    assert_eq!(
        peer(&c).spec.password_secret,
        Some(PasswordSecret {
            name: "tor-bgp-password".into(),
            namespace: "lb".into(),
            key: "password".into()
        })
    );
    let secrets = secrets(&c);
    assert_eq!(secrets.len(), 1);
    assert_eq!(secrets[0].metadata.namespace.as_deref(), Some("lb"));
    assert_eq!(
        secrets[0].metadata.name.as_deref(),
        Some("tor-bgp-password")
    );
    assert_eq!(
        secrets[0].data.as_ref().unwrap()["password"],
        ByteString(b"s3cret".to_vec())
    );
    assert_eq!(
        findings(&c),
        [(
            Severity::Note,
            "spec.password",
            &Reason::PasswordToSecret {
                namespace: "lb".into(),
                name: "tor-bgp-password".into()
            }
        )]
    );
    assert_eq!(c.password_secrets(), ["tor-bgp-password"]);
    // The Secret comes first, so that it exists when the peer does.
    assert!(matches!(c.objects[0].object, Object::Secret(_)));
}

const PEER_WITH_SECRET_REF: &str = "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  passwordSecret: {name: tor-password, namespace: metallb-system}";

#[test]
fn password_secret_in_the_input_is_copied_to_ferrolbs_namespace() {
    let c = run(&format!(
        "{}{}",
        peer_yaml("v1beta2", PEER_WITH_SECRET_REF),
        r#"
apiVersion: v1
kind: Secret
metadata: {name: tor-password, namespace: metallb-system}
type: kubernetes.io/basic-auth
data:
  password: czNjcmV0
  username: dW51c2Vk
"#
    ));
    assert_eq!(
        peer(&c).spec.password_secret,
        Some(PasswordSecret {
            name: "tor-password".into(),
            namespace: "ferrolb-system".into(),
            key: "password".into()
        })
    );
    let secrets = secrets(&c);
    assert_eq!(secrets.len(), 1);
    assert_eq!(
        secrets[0].data.as_ref().unwrap(),
        &BTreeMap::from([("password".into(), ByteString(b"s3cret".to_vec()))])
    );
    assert_eq!(
        secrets[0].metadata.namespace.as_deref(),
        Some("ferrolb-system")
    );
    assert_eq!(
        findings(&c),
        [(
            Severity::Note,
            "spec.passwordSecret",
            &Reason::SecretCopied {
                from_namespace: "metallb-system".into(),
                name: "tor-password".into(),
                namespace: "ferrolb-system".into()
            }
        )]
    );
}

#[test]
fn password_secret_not_in_the_input_is_pointed_to_with_a_warning() {
    let c = run(&peer_yaml("v1beta2", PEER_WITH_SECRET_REF));
    assert_eq!(
        peer(&c).spec.password_secret.as_ref().unwrap().namespace,
        "ferrolb-system"
    );
    assert!(secrets(&c).is_empty());
    let f = only_finding(&c);
    assert_eq!(f.severity(), Severity::Warning);
    assert!(
        f.to_string()
            .contains("kubectl get secret -n metallb-system tor-password -o yaml"),
        "{f}"
    );
}

#[test]
fn password_problems_are_errors() {
    let c = run(&peer_yaml(
        "v1beta2",
        &format!("{PEER_WITH_SECRET_REF}\n  password: also"),
    ));
    assert_eq!(
        findings(&c),
        [(Severity::Error, "spec.password", &Reason::PasswordAndSecret)]
    );
    let c = run(&format!(
        "{}{}",
        peer_yaml("v1beta2", PEER_WITH_SECRET_REF),
        "apiVersion: v1\nkind: Secret\nmetadata: {name: tor-password, namespace: metallb-system}\nstringData: {pass: x}\n"
    ));
    assert_eq!(
        findings(&c),
        [(
            Severity::Error,
            "spec.passwordSecret",
            &Reason::SecretWithoutPassword {
                namespace: "metallb-system".into(),
                name: "tor-password".into()
            }
        )]
    );
}

#[test]
fn secrets_no_peer_uses_are_left_out_with_a_note() {
    let c = run(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: memberlist, namespace: metallb-system}\ndata: {secretkey: eA==}\n",
    );
    assert!(c.objects.is_empty());
    assert_eq!(
        findings(&c),
        [(
            Severity::Note,
            "",
            &Reason::LeftOut {
                why: KindLeftOut::UnreferencedSecret
            }
        )]
    );
}

// ---------------------------------------------------------------- the input as a whole

#[test]
fn names_must_be_unique_once_cluster_scoped() {
    let c = run(
        "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: a}\nspec: {addresses: [198.51.100.0/28]}\n---\napiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p, namespace: b}\nspec: {addresses: [198.51.100.16/28]}\n---\napiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: p, namespace: b}\n",
    );
    assert_eq!(
        findings(&c),
        [
            (
                Severity::Error,
                "metadata.name",
                &Reason::NameCollision {
                    kind: "IPAddressPool".into(),
                    name: "p".into(),
                    other_namespace: "a".into()
                }
            ),
            (
                Severity::Warning,
                "",
                &Reason::SeveralNamespaces {
                    namespaces: "a, b".into()
                }
            ),
        ]
    );
}

#[test]
fn objects_without_a_namespace_are_taken_from_metallbs() {
    let options = Options {
        metallb_namespace: "lb-old".into(),
        ..Options::default()
    };
    let c = run_with(
        &pool_yaml("p", "  addresses: [198.51.100.7/24]")
            .replace("  namespace: metallb-system\n", ""),
        &options,
    );
    assert_eq!(
        c.findings[0].subject.object.as_ref().unwrap().to_string(),
        "IPAddressPool lb-old/p"
    );
}

#[test]
fn what_is_not_metallb_configuration_is_left_out_and_said() {
    let c = run(r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
---
apiVersion: metallb.io/v1alpha1
kind: AddressPool
metadata: {name: old}
---
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {name: fast}
---
apiVersion: metallb.io/v1beta1
kind: AddressPool
metadata: {name: legacy}
---
apiVersion: metallb.io/v1beta1
kind: ServiceL2Status
metadata: {name: l2-x}
---
kind: IPAddressPool
metadata: {name: no-version}
"#);
    let found: Vec<(Severity, String)> = c
        .findings
        .iter()
        .map(|f| (f.severity(), f.reason.to_string()))
        .collect();
    assert_eq!(
        found[0],
        (
            Severity::Note,
            "v1 Service is not MetalLB configuration: left out".into()
        )
    );
    assert_eq!(found[1].0, Severity::Error);
    assert!(
        found[1]
            .1
            .starts_with("metallb.io/v1alpha1 is not a MetalLB version")
    );
    assert_eq!(
        found[2],
        (Severity::Warning, "left out: ferrolb has no BFD".into())
    );
    assert_eq!(found[3].0, Severity::Error);
    assert_eq!(found[4].0, Severity::Note);
    assert_eq!(
        found[5],
        (
            Severity::Error,
            "not a Kubernetes object (it needs apiVersion, kind and metadata.name)".into()
        )
    );
    assert_eq!(
        c.findings[5].to_string(),
        "error: test.yaml document 6: not a Kubernetes object (it needs apiVersion, kind and metadata.name)"
    );
}

#[test]
fn a_spec_of_the_wrong_shape_is_an_error_naming_the_object() {
    let c = run(&pool_yaml("p", "  addresses: 198.51.100.0/24"));
    let f = only_finding(&c);
    assert_eq!(f.severity(), Severity::Error);
    assert_eq!(f.field, "spec");
    assert!(
        f.to_string().starts_with(
            "error: IPAddressPool metallb-system/p: spec: cannot be read: invalid type"
        ),
        "{f}"
    );
}

#[test]
fn output_is_ordered_and_commented_yaml_that_reads_back() {
    let c = run(&format!(
        "{}{}{}{}",
        "apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n---\n",
        peer_yaml(
            "v1beta2",
            "  myASN: 64512\n  peerASN: 64512\n  peerAddress: 127.0.0.1\n  password: pw"
        ),
        "apiVersion: metallb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: bgp}\n---\n",
        pool_yaml("p", "  addresses: [198.51.100.0/24]"),
    ));
    let kinds: Vec<&str> = c.objects.iter().map(|o| o.object.kind()).collect();
    assert_eq!(
        kinds,
        [
            "Secret",
            "IPAddressPool",
            "BGPPeer",
            "BGPAdvertisement",
            "L2Advertisement"
        ]
    );
    let yaml = c.to_yaml();
    assert!(yaml.starts_with(output::HEADER));
    assert!(yaml.contains("---\n# from metallb.io/v1beta1 IPAddressPool metallb-system/p\napiVersion: ferrolb.io/v1alpha1\nkind: IPAddressPool\n"), "{yaml}");
    assert!(yaml.contains("# password of metallb.io/v1beta2 BGPPeer metallb-system/tor\napiVersion: v1\nkind: Secret\n"), "{yaml}");
    let documents: Vec<Value> = serde_yaml::Deserializer::from_str(&yaml)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect();
    assert_eq!(documents.len(), 5);
    let pool: IPAddressPool = serde_json::from_value(documents[1].clone()).unwrap();
    assert_eq!(&pool, super::tests::pool(&c, "p"));
    assert_eq!(documents[0]["data"]["password"], "cHc=");
}

use serde::Deserialize;
