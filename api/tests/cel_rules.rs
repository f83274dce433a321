//! Every CEL rule of the CRDs, evaluated (with kube-cel) against objects it must accept and
//! objects it must refuse, with the exact message a user sees. The lab proves the same rules
//! against a real API server.
#![allow(clippy::unwrap_used)] // test helpers may unwrap (clippy.toml covers only #[test] fns)

use ferrolb_api::rules;
use kube_cel::Validator;
use serde_json::{Value, json};

/// The openAPIV3Schema of a kind, as the generated CRD holds it.
fn schema(kind: &str) -> Value {
    let crd = ferrolb_api::crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap_or_else(|| panic!("no CRD for {kind}"));
    let schema = crd.spec.versions[0].schema.as_ref().unwrap();
    serde_json::to_value(schema.open_api_v3_schema.as_ref().unwrap()).unwrap()
}

/// The errors the API server would report for `spec`, as "path: message", after defaulting.
fn errors(kind: &str, spec: Value) -> Vec<String> {
    let object = json!({
        "apiVersion": "ferrolb.io/v1alpha1",
        "kind": kind,
        "metadata": {"name": "test"},
        "spec": spec,
    });
    match Validator::new().validate_with_defaults(&schema(kind), &object, None) {
        Ok(()) => Vec::new(),
        Err(errors) => errors.iter().map(ToString::to_string).collect(),
    }
}

fn pool_errors(address: &str) -> Vec<String> {
    errors(
        "IPAddressPool",
        json!({"addresses": ["192.0.2.1", address]}),
    )
}

#[test]
fn pool_addresses_accepted() {
    for good in [
        "198.51.100.0/24",
        "198.51.100.7",
        "198.51.100.7/32",
        // Host bits mean the network, as in MetalLB and ferrolb_api::addr.
        "198.51.100.7/24",
        "2001:db8::1/64",
        "0.0.0.0/0",
        "2001:db8::/64",
        "2001:db8::1",
        "2001:db8::1/128",
        "::/0",
        "198.51.100.10-198.51.100.20",
        "198.51.100.10 - 198.51.100.20",
        "198.51.100.5-198.51.100.5",
        "2001:db8::1-2001:db8::ff",
        // CEL cannot order IPv6 addresses; the controller refuses this one (Valid=False).
        "2001:db8::ff-2001:db8::1",
    ] {
        assert_eq!(pool_errors(good), Vec::<String>::new(), "{good}");
    }
}

#[test]
fn pool_addresses_refused_with_one_clear_message_each() {
    let not_an_entry = |v: &str| {
        format!(
            "spec.addresses[1]: \"{v}\" is not a CIDR (198.51.100.0/24), a range \
             (198.51.100.10-198.51.100.20) or a single address"
        )
    };
    for bad in [
        "banana",
        "",
        " 198.51.100.1",
        "198.51.100.256",
        "198.51.100.0/24/1",
        "198.51.100.0/024",
        "198.51.100.0/",
        "198.51.100.0/x",
        "198.51.100.1-",
        "198.51.100.1-198.51.100.2-198.51.100.3",
        "::ffff:192.0.2.1",
        "2001:db8::1%eth0",
        "198.51.100.01",
    ] {
        assert_eq!(pool_errors(bad), [not_an_entry(bad)], "{bad:?}");
    }
    assert_eq!(
        pool_errors("198.51.100.0/33"),
        [
            "spec.addresses[1]: \"198.51.100.0/33\": prefix length 33 is longer than an IPv4 address (at most 32)"
        ]
    );
    assert_eq!(
        pool_errors("2001:db8::/129"),
        [
            "spec.addresses[1]: \"2001:db8::/129\": prefix length 129 is longer than an IPv6 address (at most 128)"
        ]
    );
    assert_eq!(
        pool_errors("198.51.100.20-198.51.100.10"),
        ["spec.addresses[1]: \"198.51.100.20-198.51.100.10\": the range ends before it starts"]
    );
    // The octets are compared as one number, not one by one.
    assert_eq!(
        pool_errors("198.51.101.0-198.51.100.255"),
        ["spec.addresses[1]: \"198.51.101.0-198.51.100.255\": the range ends before it starts"]
    );
    assert_eq!(
        pool_errors("198.51.100.1-2001:db8::1"),
        [
            "spec.addresses[1]: \"198.51.100.1-2001:db8::1\" mixes IPv4 and IPv6: both ends of a range must be of one family"
        ]
    );
}

/// A BGPPeer spec: the minimal valid one with `changes` merged in.
fn peer(changes: Value) -> Value {
    let mut spec = json!({"myASN": 64512, "peerASN": 64513, "peerAddress": "127.0.0.1"});
    for (k, v) in changes.as_object().unwrap() {
        spec[k] = v.clone();
    }
    spec
}

/// The CEL errors for a peer, after checking that `ferrolb_api::validate` gives the same.
fn peer_errors(changes: Value) -> Vec<String> {
    let spec = peer(changes);
    let cel = errors("BGPPeer", spec.clone());
    // serde applies the same defaults the API server applies before validating.
    let typed: ferrolb_api::BGPPeerSpec = serde_json::from_value(spec).unwrap();
    let ours: Vec<String> = match ferrolb_api::validate::bgp_peer(&typed) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(cel.clone()),
        sorted(ours),
        "CEL and validate::bgp_peer disagree"
    );
    cel
}

#[test]
fn peers_accepted() {
    for changes in [
        json!({}),
        json!({"peerAddress": "2001:db8::1", "sourceAddress": "2001:db8::2"}),
        json!({"myASN": 4_294_967_295u32, "peerASN": 1}),
        json!({"holdTime": "3s", "keepaliveTime": "1s"}),
        json!({"holdTime": "0s", "keepaliveTime": "0s"}),
        json!({"holdTime": "0s"}),
        json!({"holdTime": "18h12m15s"}),
        json!({"holdTime": "1h", "keepaliveTime": "59m59s"}),
        json!({"connectTime": "1s"}),
        json!({"connectTime": "65535s"}),
        json!({"routerID": "192.0.2.1"}),
        json!({"passwordSecret": {"name": "bgp", "namespace": "ferrolb-system"}}),
    ] {
        assert_eq!(
            peer_errors(changes.clone()),
            Vec::<String>::new(),
            "{changes}"
        );
    }
}

#[test]
fn peers_refused() {
    let cases = [
        (
            json!({"myASN": 0}),
            vec!["spec.myASN: AS number 0 is reserved (RFC 7607) and cannot be used"],
        ),
        (
            json!({"peerASN": 0}),
            vec!["spec.peerASN: AS number 0 is reserved (RFC 7607) and cannot be used"],
        ),
        (
            json!({"peerAddress": "300.1.1.1"}),
            vec!["spec.peerAddress: \"300.1.1.1\" is not an IP address"],
        ),
        (
            json!({"sourceAddress": "eth0"}),
            vec!["spec.sourceAddress: \"eth0\" is not an IP address"],
        ),
        (
            json!({"routerID": "2001:db8::1"}),
            vec![
                "spec.routerID: \"2001:db8::1\" is not a router ID: write it as an IPv4 address such as 192.0.2.1",
            ],
        ),
        (
            json!({"holdTime": "90"}),
            vec![
                "spec.holdTime: \"90\" is not a duration in whole seconds such as 90s, 3m or 1m30s",
            ],
        ),
        (
            json!({"holdTime": "1.5s"}),
            vec![
                "spec.holdTime: \"1.5s\" is not a duration in whole seconds such as 90s, 3m or 1m30s",
            ],
        ),
        (
            json!({"holdTime": "2s"}),
            vec![
                "spec.holdTime: \"2s\" is out of range: a hold time is 0s (no keepalives) or between 3s and 65535s",
            ],
        ),
        (
            json!({"holdTime": "18h12m16s"}),
            vec![
                "spec.holdTime: \"18h12m16s\" is out of range: a hold time is 0s (no keepalives) or between 3s and 65535s",
            ],
        ),
        (
            json!({"keepaliveTime": "90s"}),
            vec!["spec.keepaliveTime: keepaliveTime 90s must be shorter than holdTime 90s"],
        ),
        (
            json!({"holdTime": "1m", "keepaliveTime": "2m"}),
            vec!["spec.keepaliveTime: keepaliveTime 2m must be shorter than holdTime 1m"],
        ),
        (
            json!({"holdTime": "0s", "keepaliveTime": "1s"}),
            vec![
                "spec.keepaliveTime: keepaliveTime 1s must be 0s when holdTime is 0s (no keepalives)",
            ],
        ),
        (
            json!({"keepaliveTime": "soon"}),
            vec![
                "spec.keepaliveTime: \"soon\" is not a duration in whole seconds such as 90s, 3m or 1m30s",
            ],
        ),
        (
            json!({"connectTime": "0s"}),
            vec![
                "spec.connectTime: \"0s\" is out of range: a connect time is between 1s and 65535s",
            ],
        ),
    ];
    for (changes, expected) in cases {
        assert_eq!(peer_errors(changes.clone()), expected, "{changes}");
    }
}

/// The CEL errors for an advertisement, after checking that `ferrolb_api::validate` agrees.
fn advertisement_errors(spec: Value) -> Vec<String> {
    let cel = errors("BGPAdvertisement", spec.clone());
    let typed: ferrolb_api::BGPAdvertisementSpec = serde_json::from_value(spec).unwrap();
    let ours: Vec<String> = match ferrolb_api::validate::bgp_advertisement(&typed) {
        Ok(_) => Vec::new(),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    };
    assert_eq!(cel, ours, "CEL and validate::bgp_advertisement disagree");
    cel
}

#[test]
fn advertisements_accepted() {
    for spec in [
        json!({}),
        json!({"aggregationLength": 1, "aggregationLengthV6": 1}),
        json!({"aggregationLength": 24, "aggregationLengthV6": 64}),
        json!({"communities": ["65535:65282", "0:0", "large:4294967295:0:1", "large:0:0:0"]}),
    ] {
        assert_eq!(
            advertisement_errors(spec.clone()),
            Vec::<String>::new(),
            "{spec}"
        );
    }
}

#[test]
fn advertisements_refused() {
    let community = |i: usize, v: &str| {
        format!(
            "spec.communities[{i}]: \"{v}\" is not a community: write A:B with each part 0-65535 \
             (65535:65282), or large:A:B:C with each part 0-4294967295"
        )
    };
    let bad_communities = [
        "65536:1",
        "1:65536",
        "large:4294967296:1:1",
        "no-export",
        "1:2:3",
        "large:1:2",
        "-1:2",
    ];
    let mut all = vec!["1:2"];
    all.extend(bad_communities);
    let cases = [
        (
            json!({"aggregationLength": 0}),
            vec![
                "spec.aggregationLength: 0 is out of range: an IPv4 aggregation length is between 1 and 32".to_owned(),
            ],
        ),
        (
            json!({"aggregationLength": 33}),
            vec![
                "spec.aggregationLength: 33 is out of range: an IPv4 aggregation length is between 1 and 32".to_owned(),
            ],
        ),
        (
            json!({"aggregationLengthV6": 129}),
            vec![
                "spec.aggregationLengthV6: 129 is out of range: an IPv6 aggregation length is between 1 and 128".to_owned(),
            ],
        ),
        (
            json!({"communities": all}),
            bad_communities
                .iter()
                .enumerate()
                .map(|(i, v)| community(i + 1, v))
                .collect(),
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(advertisement_errors(spec.clone()), expected, "{spec}");
    }
}

#[test]
fn l2_interfaces() {
    let check = |interfaces: Value| {
        let spec = json!({ "interfaces": interfaces });
        let cel = errors("L2Advertisement", spec.clone());
        let typed: ferrolb_api::L2AdvertisementSpec = serde_json::from_value(spec).unwrap();
        let ours: Vec<String> = match ferrolb_api::validate::l2_advertisement(&typed) {
            Ok(()) => Vec::new(),
            Err(e) => e.iter().map(ToString::to_string).collect(),
        };
        assert_eq!(cel, ours, "CEL and validate::l2_advertisement disagree");
        cel
    };
    assert_eq!(
        check(json!(["eth0", "bond0.100", "br-x_1"])),
        Vec::<String>::new()
    );
    assert_eq!(
        check(json!(["eth0", "eth/0", ".."])),
        [
            "spec.interfaces[1]: \"eth/0\" is not a network interface name: 1 to 15 letters, digits, \"_\", \".\" or \"-\"",
            "spec.interfaces[2]: \"..\" is not a network interface name: 1 to 15 letters, digits, \"_\", \".\" or \"-\"",
        ]
    );
}

/// Follows a "spec.addresses[*]"-style path through a schema.
fn node<'a>(schema: &'a Value, path: &str) -> &'a Value {
    let mut here = schema;
    for part in path.split('.') {
        let (name, items) = match part.strip_suffix("[*]") {
            Some(name) => (name, true),
            None => (part, false),
        };
        here = &here["properties"][name];
        if items {
            here = &here["items"];
        }
        assert!(!here.is_null(), "{path}: no {part}");
    }
    here
}

fn all_rules_in(value: &Value, found: &mut Vec<Value>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "x-kubernetes-validations" {
                    found.extend(child.as_array().unwrap().iter().cloned());
                } else {
                    all_rules_in(child, found);
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| all_rules_in(v, found)),
        _ => {}
    }
}

#[test]
fn every_listed_rule_is_in_the_crds_where_listed_and_no_other() {
    for (location, rule) in rules::ALL {
        let (kind, path) = location.split_once(' ').unwrap();
        let schema = schema(kind);
        let at = &node(&schema, path)["x-kubernetes-validations"];
        let present = at.as_array().is_some_and(|r| r.contains(&rule.to_json()));
        assert!(present, "{location}: rule {} missing", rule.rule);
    }
    let mut found = Vec::new();
    for crd in ferrolb_api::crds() {
        all_rules_in(&serde_json::to_value(&crd).unwrap(), &mut found);
    }
    assert_eq!(
        found.len(),
        rules::ALL.len(),
        "a rule in the CRDs is missing from rules::ALL"
    );
}

mod agrees_with_the_parser {
    //! The CEL address rules and `ferrolb_api::addr` (the parser the controller runs) must agree,
    //! apart from the documented differences: CEL refuses blanks around an entry and leading
    //! zeros in a prefix length (the parser tolerates them), and cannot refuse an IPv6 range
    //! that ends before it starts (the parser does; the controller reports it).

    use super::*;
    use ferrolb_api::addr::{AddressEntry, AddressError};
    use kube_cel::{CompiledSchema, compile_schema};
    use proptest::prelude::*;
    use std::sync::LazyLock;

    static POOL: LazyLock<CompiledSchema> =
        LazyLock::new(|| compile_schema(&schema("IPAddressPool")));

    fn cel_accepts(entry: &str) -> bool {
        let object = json!({"spec": {"addresses": [entry]}});
        Validator::new()
            .validate_compiled(&POOL, &object, None)
            .is_ok()
    }

    fn ipv4() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
            (0u8..4).prop_map(|o| format!("198.51.100.{o}")),
            Just("198.51.100.01".to_owned()),
            Just("198.51.100".to_owned()),
        ]
    }

    fn ipv6() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<u128>().prop_map(|v| std::net::Ipv6Addr::from(v).to_string()),
            (0u16..4).prop_map(|v| format!("2001:db8::{v:x}")),
            Just("::ffff:192.0.2.1".to_owned()),
            Just("2001:db8::1%eth0".to_owned()),
        ]
    }

    fn address() -> impl Strategy<Value = String> {
        prop_oneof![ipv4(), ipv6()]
    }

    fn entry() -> impl Strategy<Value = String> {
        let blank = prop_oneof![Just(""), Just(" ")];
        prop_oneof![
            address(),
            (
                address(),
                prop_oneof![Just(String::new()), Just("0".to_owned())],
                0u32..140
            )
                .prop_map(|(a, zero, len)| format!("{a}/{zero}{len}")),
            (address(), "[0-9a-z+]{0,3}").prop_map(|(a, len)| format!("{a}/{len}")),
            (address(), blank.clone(), blank.clone(), address())
                .prop_map(|(a, b1, b2, b)| format!("{a}{b1}-{b2}{b}")),
            (blank.clone(), address(), blank).prop_map(|(b1, a, b2)| format!("{b1}{a}{b2}")),
            "[0-9a-f:./ -]{0,24}",
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn cel_and_parser_agree(entry in entry()) {
            let parsed = AddressEntry::parse(&entry);
            let cel = cel_accepts(&entry);
            let descending_ipv6 = matches!(
                parsed,
                Err(AddressError::RangeEndBelowStart { start: std::net::IpAddr::V6(_), .. })
            );
            let leading_zero_prefix = entry
                .split_once('/')
                .is_some_and(|(_, len)| len.len() > 1 && len.starts_with('0'));
            let strictly_written = entry == entry.trim() && !leading_zero_prefix;
            // CEL never lets through what the controller would refuse, except IPv6 ranges.
            prop_assert!(!cel || parsed.is_ok() || descending_ipv6, "{:?}: {:?}", entry, parsed);
            // And refuses nothing the parser takes, unless it was written loosely.
            prop_assert!(cel || parsed.is_err() || !strictly_written, "{:?}: {:?}", entry, parsed);
        }
    }
}

/// The API server gives `string()` of an integer an unbounded cost estimate and then refuses
/// the whole CRD (seen with Kubernetes 1.34); kube-cel does not estimate cost, so this guard
/// keeps integer-to-string conversions out of every rule and message.
#[test]
fn no_rule_converts_an_integer_with_string() {
    for (place, rule) in rules::ALL {
        for text in [Some(rule.rule), rule.message_expression]
            .into_iter()
            .flatten()
        {
            let calls_string = text.match_indices("string(").any(|(at, _)| {
                // `isString(` and the like are other functions; only a bare `string(` counts.
                at == 0 || !text[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
            });
            assert!(
                !calls_string,
                "{place}: use '%d'.format([x]) instead of string(x): {text}"
            );
        }
    }
}
