//! Tests of the pure function: one per eligibility rule (named for it), shared IPs,
//! dual-stack, several advertisements, selectors, BGP attributes, and the incremental planner
//! against the from-scratch one.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ferrolb_api::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement};
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::world::{
    AdvertisementName, BgpAdvEntry, EXCLUDE_LABEL, Kind, L2AdvEntry, Labels, NodeEntry, PeerEntry,
    PoolEntry, SecretKey, ServiceEntry, ServiceKey, SliceEntry, SliceKey, TrafficPolicy, Update,
    World,
};

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn node(name: &str) -> NodeName {
    NodeName::new(name).unwrap()
}

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("ns", name)
}

const V4: &str = "192.0.2.10";
const V6: &str = "2001:db8::10";

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A cluster of nodes n1..n<count>, all Ready and live members, each with an IPv4 and an
/// IPv6 InternalIP; one pool `p` (192.0.2.0/24, 2001:db8::/64) and, unless removed, one
/// L2Advertisement `l2` for every pool.
struct Cluster {
    world: World,
}

impl Cluster {
    fn new(count: u8) -> Self {
        let mut c = Cluster {
            world: World::new(),
        };
        let mut live = BTreeSet::new();
        for i in 1..=count {
            let name = node(&format!("n{i}"));
            live.insert(name.clone());
            c.world.apply(Update::Node(
                name,
                Some(NodeEntry {
                    labels: labels(&[("kubernetes.io/hostname", &format!("n{i}"))]),
                    network_unavailable: false,
                    ready: true,
                    internal_ips: vec![ip(&format!("192.0.2.{i}")), ip(&format!("2001:db8::{i}"))],
                }),
            ));
        }
        c.world.apply(Update::Live(Some(live)));
        c.pool("p", &["192.0.2.0/24", "2001:db8::/64"], &[]);
        c.l2("l2", json!({}));
        c
    }

    fn pool(&mut self, name: &str, addresses: &[&str], pool_labels: &[(&str, &str)]) {
        let pool: IPAddressPool = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": labels(pool_labels)},
            "spec": {"addresses": addresses}
        }))
        .unwrap();
        let (n, e) = PoolEntry::from_pool(&pool).unwrap();
        self.world.apply(Update::Pool(n, Some(e)));
    }

    fn l2(&mut self, name: &str, spec: serde_json::Value) {
        let adv: L2Advertisement =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        let (n, e) = L2AdvEntry::from_advertisement(&adv).unwrap();
        self.world.apply(Update::L2Advertisement(n, Some(e)));
    }

    fn no_l2(&mut self, name: &str) {
        self.world
            .apply(Update::L2Advertisement(AdvertisementName::new(name), None));
    }

    fn bgp(&mut self, name: &str, spec: serde_json::Value) {
        let adv: BGPAdvertisement =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap();
        let (n, e) = BgpAdvEntry::from_advertisement(&adv).unwrap();
        self.world.apply(Update::BgpAdvertisement(n, Some(e)));
    }

    fn peer(&mut self, name: &str, spec: serde_json::Value) {
        let mut full = json!({"myASN": 64700, "peerASN": 64600, "peerAddress": "127.0.0.1"});
        for (k, v) in spec.as_object().unwrap() {
            full[k] = v.clone();
        }
        let peer: BGPPeer =
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": full})).unwrap();
        let (n, e) = PeerEntry::from_peer(&peer).unwrap();
        self.world.apply(Update::Peer(n, Some(e)));
    }

    fn service(&mut self, name: &str, addrs: &[&str], policy: TrafficPolicy) {
        self.service_with(name, addrs, policy, &[], &[]);
    }

    fn service_with(
        &mut self,
        name: &str,
        addrs: &[&str],
        policy: TrafficPolicy,
        svc_labels: &[(&str, &str)],
        pools: &[&str],
    ) {
        self.world.apply(Update::Service(
            key(name),
            Some(ServiceEntry {
                uid: format!("uid-{name}"),
                labels: labels(svc_labels),
                addresses: addrs.iter().map(|a| ip(a)).collect(),
                pools: pools
                    .iter()
                    .map(|p| crate::world::PoolName::new(*p))
                    .collect(),
                traffic_policy: policy,
            }),
        ));
    }

    fn endpoints(&mut self, svc: &str, slice: &str, nodes: &[&str]) {
        self.world.apply(Update::Slice(
            SliceKey {
                namespace: "ns".into(),
                name: slice.into(),
            },
            Some(SliceEntry {
                service: key(svc),
                ready_nodes: nodes.iter().map(|n| node(n)).collect(),
            }),
        ));
    }

    fn edit_node(&mut self, name: &str, f: impl FnOnce(&mut NodeEntry)) {
        let mut entry = self.world.nodes[&node(name)].clone();
        f(&mut entry);
        self.world.apply(Update::Node(node(name), Some(entry)));
    }

    fn plan(&self, me: &str) -> Plan {
        plan(&self.world, &node(me))
    }

    /// The L2 owner of `addr` as every node computes it; asserts they agree and that only
    /// the owner announces.
    fn owner(&self, addr: &str) -> Option<String> {
        let addr = ip(addr);
        let mut owners = BTreeSet::new();
        let mut announcing = Vec::new();
        for name in self.world.nodes.keys() {
            let p = self.plan(name.as_str());
            if p.l2.contains_key(&addr) {
                announcing.push(name.as_str().to_owned());
            }
            for out in p.services.values() {
                if let Some(o) = out.l2.get(&addr) {
                    owners.insert(o.owner.as_ref().map(|n| n.as_str().to_owned()));
                }
            }
        }
        assert!(owners.len() <= 1, "nodes disagree on the owner: {owners:?}");
        let owner = owners.into_iter().next().flatten();
        assert_eq!(
            announcing,
            owner.iter().cloned().collect::<Vec<_>>(),
            "exactly the owner announces"
        );
        owner
    }

    /// Why `me` does not announce `svc`'s `addr` in L2.
    fn l2_reason(&self, me: &str, svc: &str, addr: &str) -> Result<InterfaceChoice, NotAnnounced> {
        self.plan(me).services[&key(svc)].l2[&ip(addr)].here.clone()
    }

    fn bgp_outcome(&self, me: &str, svc: &str, addr: &str) -> BgpOutcome {
        self.plan(me).services[&key(svc)].bgp[&ip(addr)].clone()
    }
}

/// The nodes that may own `addr` (the election over them gives the owner).
fn owner_among(addr: &str, nodes: &[&str]) -> String {
    election::owner(ip(addr), nodes.iter().copied())
        .unwrap()
        .to_string()
}

#[test]
fn every_node_computes_the_same_single_owner() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let owner = c.owner(V4).unwrap();
    assert_eq!(owner, owner_among(V4, &["n1", "n2", "n3"]));
    for other in ["n1", "n2", "n3"].into_iter().filter(|n| *n != owner) {
        assert_eq!(
            c.l2_reason(other, "a", V4),
            Err(NotAnnounced::OwnedElsewhere)
        );
    }
    assert_eq!(c.l2_reason(&owner, "a", V4), Ok(InterfaceChoice::Automatic));
}

#[test]
fn eligibility_exclusion_label_removes_the_node() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let first = c.owner(V4).unwrap();
    c.edit_node(&first, |n| {
        n.labels.insert(EXCLUDE_LABEL.into(), "true".into());
    });
    let rest: Vec<&str> = ["n1", "n2", "n3"]
        .into_iter()
        .filter(|n| *n != first)
        .collect();
    assert_eq!(c.owner(V4).unwrap(), owner_among(V4, &rest));
    assert_eq!(
        c.l2_reason(&first, "a", V4),
        Err(NotAnnounced::NodeExcluded)
    );
}

#[test]
fn eligibility_network_unavailable_removes_the_node() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let first = c.owner(V4).unwrap();
    c.edit_node(&first, |n| n.network_unavailable = true);
    assert_ne!(c.owner(V4).unwrap(), first);
    assert_eq!(
        c.l2_reason(&first, "a", V4),
        Err(NotAnnounced::NetworkUnavailable)
    );
    // NetworkUnavailable False (or absent) is fine.
    c.edit_node(&first, |n| n.network_unavailable = false);
    assert_eq!(c.owner(V4).unwrap(), first);
}

#[test]
fn eligibility_speaker_liveness_comes_from_membership() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let first = c.owner(V4).unwrap();
    let live: BTreeSet<NodeName> = ["n1", "n2", "n3"]
        .into_iter()
        .filter(|n| *n != first)
        .map(node)
        .collect();
    c.world.apply(Update::Live(Some(live)));
    assert_ne!(c.owner(V4).unwrap(), first);
    assert_eq!(
        c.l2_reason(&first, "a", V4),
        Err(NotAnnounced::SpeakerNotLive)
    );
    // A Ready Node does not make a dead speaker live while membership is on.
    assert!(c.world.nodes[&node(&first)].ready);
}

#[test]
fn eligibility_without_membership_falls_back_to_node_readiness() {
    let mut c = Cluster::new(3);
    c.world.apply(Update::Live(None));
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let first = c.owner(V4).unwrap();
    c.edit_node(&first, |n| n.ready = false);
    assert_ne!(c.owner(V4).unwrap(), first);
    assert_eq!(
        c.l2_reason(&first, "a", V4),
        Err(NotAnnounced::SpeakerNotLive)
    );
}

#[test]
fn eligibility_node_selectors_of_the_advertisement() {
    let mut c = Cluster::new(3);
    c.l2(
        "l2",
        json!({"nodeSelectors": [
            {"matchLabels": {"kubernetes.io/hostname": "n2"}},
            {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": ["n3"]}]}
        ]}),
    );
    c.service("a", &[V4], TrafficPolicy::Cluster);
    assert_eq!(c.owner(V4).unwrap(), owner_among(V4, &["n2", "n3"]));
    assert_eq!(
        c.l2_reason("n1", "a", V4),
        Err(NotAnnounced::NodeNotSelected)
    );
    // Selecting a node by label that no node has: nobody announces.
    c.l2(
        "l2",
        json!({"nodeSelectors": [{"matchLabels": {"zone": "nowhere"}}]}),
    );
    assert_eq!(c.owner(V4), None);
}

#[test]
fn eligibility_node_selected_by_any_of_several_advertisements() {
    let mut c = Cluster::new(3);
    c.l2(
        "l2",
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n1"}}]}),
    );
    c.l2(
        "l2-b",
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n2"}}]}),
    );
    c.service("a", &[V4], TrafficPolicy::Cluster);
    assert_eq!(c.owner(V4).unwrap(), owner_among(V4, &["n1", "n2"]));
}

#[test]
fn eligibility_local_policy_needs_a_ready_endpoint_on_the_node() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4], TrafficPolicy::Local);
    // No endpoint anywhere: nobody.
    assert_eq!(c.owner(V4), None);
    assert_eq!(
        c.l2_reason("n1", "a", V4),
        Err(NotAnnounced::NoLocalEndpoint)
    );
    c.endpoints("a", "a-1", &["n3"]);
    assert_eq!(c.owner(V4).as_deref(), Some("n3"));
    // The endpoint moves: so does the owner.
    c.endpoints("a", "a-1", &["n1"]);
    assert_eq!(c.owner(V4).as_deref(), Some("n1"));
    // Endpoints of another Service do not count.
    c.endpoints("other", "other-1", &["n2"]);
    assert_eq!(c.owner(V4).as_deref(), Some("n1"));
    // A Cluster Service ignores endpoints.
    c.service("b", &["192.0.2.20"], TrafficPolicy::Cluster);
    assert!(c.owner("192.0.2.20").is_some());
}

#[test]
fn eligibility_local_policy_terminating_endpoints_are_not_counted() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4], TrafficPolicy::Local);
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "a-1", "namespace": "ns", "labels": {"kubernetes.io/service-name": "a"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "nodeName": "n1", "conditions": {"ready": true, "serving": true, "terminating": true}},
            {"addresses": ["10.0.0.2"], "nodeName": "n2", "conditions": {"ready": false, "serving": true, "terminating": false}},
            {"addresses": ["10.0.0.3"], "nodeName": "n3", "conditions": {"ready": true}}
        ]
    }))
    .unwrap();
    let (k, e) = SliceEntry::from_slice(&slice).unwrap();
    c.world.apply(Update::Slice(k, Some(e)));
    assert_eq!(c.owner(V4).as_deref(), Some("n3"));
    assert_eq!(
        c.l2_reason("n1", "a", V4),
        Err(NotAnnounced::NoLocalEndpoint)
    );
}

#[test]
fn eligibility_node_unknown_is_never_eligible() {
    let mut c = Cluster::new(2);
    c.service("a", &[V4], TrafficPolicy::Cluster);
    // A live member whose Node object is not known: not a candidate.
    let p = c.plan("n9");
    assert_eq!(
        p.services[&key("a")].l2[&ip(V4)].here,
        Err(NotAnnounced::NodeUnknown)
    );
    assert!(p.l2.is_empty());
}

#[test]
fn address_outside_every_pool_is_not_announced() {
    let mut c = Cluster::new(2);
    c.service("a", &["203.0.113.5"], TrafficPolicy::Cluster);
    assert_eq!(c.owner("203.0.113.5"), None);
    assert_eq!(
        c.l2_reason("n1", "a", "203.0.113.5"),
        Err(NotAnnounced::NotInPool)
    );
    assert_eq!(
        c.bgp_outcome("n1", "a", "203.0.113.5"),
        Err(NotAnnounced::NotInPool)
    );
}

#[test]
fn no_advertisement_no_announcement() {
    let mut c = Cluster::new(2);
    c.no_l2("l2");
    c.service("a", &[V4], TrafficPolicy::Cluster);
    assert_eq!(c.owner(V4), None);
    assert_eq!(
        c.l2_reason("n1", "a", V4),
        Err(NotAnnounced::NoAdvertisement)
    );
}

#[test]
fn advertisement_selects_pools_by_name_or_label() {
    let mut c = Cluster::new(2);
    c.pool("blue", &["198.51.100.0/24"], &[("color", "blue")]);
    c.pool("red", &["203.0.113.0/24"], &[("color", "red")]);
    c.l2("l2", json!({"ipAddressPools": ["p"]}));
    c.l2(
        "l2-blue",
        json!({"ipAddressPoolSelectors": [{"matchLabels": {"color": "blue"}}]}),
    );
    c.service("a", &[V4], TrafficPolicy::Cluster);
    c.service("b", &["198.51.100.1"], TrafficPolicy::Cluster);
    c.service("c", &["203.0.113.1"], TrafficPolicy::Cluster);
    assert!(c.owner(V4).is_some());
    assert!(c.owner("198.51.100.1").is_some());
    assert_eq!(c.owner("203.0.113.1"), None);
    assert_eq!(
        c.l2_reason("n1", "c", "203.0.113.1"),
        Err(NotAnnounced::NoAdvertisement)
    );
}

#[test]
fn overlapping_pools_follow_the_controllers_attribution() {
    let mut c = Cluster::new(2);
    c.pool("a-wide", &["192.0.2.0/24"], &[]);
    c.l2("l2", json!({"ipAddressPools": ["a-wide"]}));
    // The controller says the address came from `p`, which no advertisement selects.
    c.service_with("a", &[V4], TrafficPolicy::Cluster, &[], &["p"]);
    assert_eq!(c.owner(V4), None);
    // Attributed to `wide`: announced.
    c.service_with("a", &[V4], TrafficPolicy::Cluster, &[], &["a-wide"]);
    assert!(c.owner(V4).is_some());
    // An attribution to a pool that does not hold the address falls back to the first pool
    // by name that does.
    c.service_with("a", &[V4], TrafficPolicy::Cluster, &[], &["gone"]);
    assert!(c.owner(V4).is_some());
}

#[test]
fn service_selectors_choose_services() {
    let mut c = Cluster::new(2);
    c.l2(
        "l2",
        json!({"serviceSelectors": [{"matchLabels": {"expose": "l2"}}]}),
    );
    c.service_with("a", &[V4], TrafficPolicy::Cluster, &[("expose", "l2")], &[]);
    c.service("b", &["192.0.2.11"], TrafficPolicy::Cluster);
    assert!(c.owner(V4).is_some());
    assert_eq!(c.owner("192.0.2.11"), None);
    assert_eq!(
        c.l2_reason("n1", "b", "192.0.2.11"),
        Err(NotAnnounced::NoAdvertisement)
    );
}

#[test]
fn shared_ip_is_eligible_where_any_of_its_services_is() {
    let mut c = Cluster::new(3);
    // Two Local Services on one address, endpoints on different nodes.
    c.service("a", &[V4], TrafficPolicy::Local);
    c.service("b", &[V4], TrafficPolicy::Local);
    c.endpoints("a", "a-1", &["n1"]);
    c.endpoints("b", "b-1", &["n2"]);
    let owner = c.owner(V4).unwrap();
    assert_eq!(owner, owner_among(V4, &["n1", "n2"]));
    // Both Services report the same owner, and the owner announces both.
    let p = c.plan(&owner);
    assert_eq!(p.l2.len(), 1);
    for svc in ["a", "b"] {
        assert_eq!(
            p.services[&key(svc)].l2[&ip(V4)]
                .owner
                .as_ref()
                .unwrap()
                .as_str(),
            owner
        );
        assert!(p.services[&key(svc)].l2[&ip(V4)].here.is_ok());
    }
    // n3 has neither endpoint.
    assert_eq!(
        c.l2_reason("n3", "a", V4),
        Err(NotAnnounced::NoLocalEndpoint)
    );
}

#[test]
fn dual_stack_addresses_are_elected_independently() {
    let mut c = Cluster::new(3);
    c.service("a", &[V4, V6], TrafficPolicy::Cluster);
    let o4 = c.owner(V4).unwrap();
    let o6 = c.owner(V6).unwrap();
    assert_eq!(o4, owner_among(V4, &["n1", "n2", "n3"]));
    assert_eq!(o6, owner_among(V6, &["n1", "n2", "n3"]));
    let p = c.plan(&o6);
    assert!(p.l2.contains_key(&ip(V6)));
    assert_eq!(p.services[&key("a")].l2.len(), 2);
}

#[test]
fn interfaces_are_united_and_an_advertisement_without_them_means_automatic() {
    let mut c = Cluster::new(1);
    c.l2("l2", json!({"interfaces": ["eth1"]}));
    c.l2("l2-b", json!({"interfaces": ["eth0", "eth1"]}));
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let want: BTreeSet<InterfaceName> = ["eth0", "eth1"].into_iter().map(Into::into).collect();
    assert_eq!(c.plan("n1").l2[&ip(V4)], InterfaceChoice::Only(want));
    c.l2("l2-c", json!({}));
    assert_eq!(c.plan("n1").l2[&ip(V4)], InterfaceChoice::Automatic);
    // An advertisement that does not select this node adds no interfaces.
    c.no_l2("l2-c");
    c.l2(
        "l2-c",
        json!({"interfaces": ["eth9"], "nodeSelectors": [{"matchLabels": {"zone": "x"}}]}),
    );
    assert!(matches!(&c.plan("n1").l2[&ip(V4)], InterfaceChoice::Only(s) if s.len() == 2));
}

#[test]
fn invalid_advertisement_is_ignored() {
    let mut c = Cluster::new(2);
    c.l2("l2", json!({"interfaces": ["bad name!"]}));
    c.service("a", &[V4], TrafficPolicy::Cluster);
    assert_eq!(c.owner(V4), None);
}

#[test]
fn thirty_services_over_three_nodes_nobody_owns_more_than_half() {
    let mut c = Cluster::new(3);
    for i in 0..30 {
        c.service(
            &format!("s{i}"),
            &[&format!("192.0.2.{}", 100 + i)],
            TrafficPolicy::Cluster,
        );
    }
    for n in ["n1", "n2", "n3"] {
        let owned = c.plan(n).l2.len();
        assert!(owned <= 15, "{n} owns {owned}");
        assert!(owned > 0, "{n} owns nothing");
    }
}

// ---- BGP -----------------------------------------------------------------------------------

fn bgp_cluster() -> Cluster {
    let mut c = Cluster::new(3);
    c.no_l2("l2");
    c.peer("bird", json!({}));
    c.bgp("bgp", json!({}));
    c
}

#[test]
fn bgp_every_eligible_node_announces_host_routes() {
    let mut c = bgp_cluster();
    c.service("a", &[V4, V6], TrafficPolicy::Cluster);
    for n in ["n1", "n2", "n3"] {
        let p = c.plan(n);
        let routes = &p.routes[&PeerName::new("bird")];
        let prefixes: Vec<String> = routes.iter().map(|(p, _)| p.to_string()).collect();
        assert_eq!(prefixes, ["192.0.2.10/32", "2001:db8::10/128"]);
        let i = &n[1..];
        for (prefix, attrs) in routes.iter() {
            let want = if prefix.addr().is_ipv4() {
                ip(&format!("192.0.2.{i}"))
            } else {
                ip(&format!("2001:db8::{i}"))
            };
            assert_eq!(attrs.next_hop, want);
        }
        assert!(p.l2.is_empty());
        assert_eq!(
            c.bgp_outcome(n, "a", V4),
            Ok([PeerName::new("bird")].into())
        );
    }
}

#[test]
fn bgp_local_policy_announces_only_from_nodes_with_endpoints() {
    let mut c = bgp_cluster();
    c.service("a", &[V4], TrafficPolicy::Local);
    c.endpoints("a", "a-1", &["n1", "n3"]);
    assert!(c.bgp_outcome("n1", "a", V4).is_ok());
    assert!(c.bgp_outcome("n3", "a", V4).is_ok());
    assert_eq!(
        c.bgp_outcome("n2", "a", V4),
        Err(NotAnnounced::NoLocalEndpoint)
    );
    assert!(
        c.plan("n2")
            .routes
            .get(&PeerName::new("bird"))
            .is_none_or(|r| r.is_empty())
    );
}

#[test]
fn bgp_attributes_aggregation_and_merging() {
    let mut c = bgp_cluster();
    c.bgp(
        "bgp",
        json!({"communities": ["65535:65282", "large:1:2:3"], "localPref": 100}),
    );
    c.bgp(
        "agg",
        json!({"aggregationLength": 24, "aggregationLengthV6": 64, "communities": ["64512:1"], "localPref": 50}),
    );
    c.service("a", &[V4, V6], TrafficPolicy::Cluster);
    c.service("b", &["192.0.2.77"], TrafficPolicy::Cluster);
    let p = c.plan("n1");
    let routes = &p.routes[&PeerName::new("bird")];
    let get = |s: &str| routes.get(&s.parse().unwrap()).unwrap().clone();
    let host = get("192.0.2.10/32");
    assert_eq!(host.local_pref, Some(100));
    assert!(host.communities.contains(&Community::NO_ADVERTISE));
    assert!(
        host.large_communities
            .contains(&LargeCommunity::new(1, 2, 3))
    );
    // Both addresses fall into one /24 with the aggregating advertisement's attributes.
    let agg = get("192.0.2.0/24");
    assert_eq!(agg.local_pref, Some(50));
    assert_eq!(
        agg.communities.iter().copied().collect::<Vec<_>>(),
        [Community::new(64512, 1)]
    );
    assert!(routes.get(&"2001:db8::/64".parse().unwrap()).is_some());
    assert_eq!(routes.len(), 5);
}

#[test]
fn bgp_same_prefix_from_two_advertisements_merges() {
    let mut c = bgp_cluster();
    c.bgp("bgp", json!({"communities": ["1:1"], "localPref": 10}));
    c.bgp("more", json!({"communities": ["2:2"], "localPref": 20}));
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let p = c.plan("n1");
    let r = p.routes[&PeerName::new("bird")]
        .get(&"192.0.2.10/32".parse().unwrap())
        .unwrap()
        .clone();
    assert_eq!(r.local_pref, Some(20));
    assert_eq!(r.communities.len(), 2);
}

#[test]
fn bgp_peers_are_chosen_by_node_selectors_and_by_the_advertisement() {
    let mut c = bgp_cluster();
    c.peer(
        "tor",
        json!({"peerAddress": "192.0.2.254", "nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n2"}}]}),
    );
    c.service("a", &[V4], TrafficPolicy::Cluster);
    assert_eq!(
        c.plan("n1")
            .peers
            .keys()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
        ["bird"]
    );
    assert_eq!(
        c.plan("n2")
            .peers
            .keys()
            .map(|p| p.as_str())
            .collect::<Vec<_>>(),
        ["bird", "tor"]
    );
    assert_eq!(c.plan("n2").routes.len(), 2);
    // An advertisement naming one peer sends only to it; a node without that peer has none.
    c.bgp("bgp", json!({"peers": ["tor"]}));
    assert_eq!(
        c.bgp_outcome("n2", "a", V4),
        Ok([PeerName::new("tor")].into())
    );
    assert_eq!(c.bgp_outcome("n1", "a", V4), Err(NotAnnounced::NoPeer));
}

#[test]
fn bgp_advertisement_node_selectors() {
    let mut c = bgp_cluster();
    c.bgp(
        "bgp",
        json!({"nodeSelectors": [{"matchLabels": {"kubernetes.io/hostname": "n3"}}]}),
    );
    c.service("a", &[V4], TrafficPolicy::Cluster);
    assert!(c.bgp_outcome("n3", "a", V4).is_ok());
    assert_eq!(
        c.bgp_outcome("n1", "a", V4),
        Err(NotAnnounced::NodeNotSelected)
    );
}

#[test]
fn bgp_next_hop_must_exist_for_the_family() {
    let mut c = bgp_cluster();
    c.edit_node("n1", |n| n.internal_ips.retain(|a| a.is_ipv4()));
    c.service("a", &[V4, V6], TrafficPolicy::Cluster);
    assert!(c.bgp_outcome("n1", "a", V4).is_ok());
    assert_eq!(c.bgp_outcome("n1", "a", V6), Err(NotAnnounced::NoNextHop));
}

#[test]
fn bgp_peer_configuration_from_the_bgppeer() {
    let mut c = bgp_cluster();
    c.peer(
        "bird",
        json!({"holdTime": "9s", "keepaliveTime": "3s", "connectTime": "2s", "peerPort": 1790,
               "enableGracefulRestart": true, "ebgpMultiHop": true, "sourceAddress": "192.0.2.1"}),
    );
    let p = c.plan("n2");
    let config = p.peers[&PeerName::new("bird")].as_ref().unwrap();
    assert_eq!(config.peer, PeerKey::new(ip("127.0.0.1"), 1790));
    assert_eq!((config.local_as, config.peer_as), (64700, 64600));
    assert_eq!(
        config.router_id,
        "192.0.2.2".parse::<std::net::Ipv4Addr>().unwrap()
    );
    assert_eq!(config.hold_time, Duration::from_secs(9));
    assert_eq!(config.keepalive_time, Some(Duration::from_secs(3)));
    assert_eq!(config.connect_retry, Duration::from_secs(2));
    assert_eq!(config.graceful_restart, Some(GRACEFUL_RESTART_TIME));
    assert_eq!(config.ebgp_multihop, Some(255));
    assert_eq!(config.source_address, Some(ip("192.0.2.1")));
    assert!(config.password.is_none());
}

#[test]
fn bgp_password_comes_from_the_referenced_secret() {
    let mut c = bgp_cluster();
    c.peer(
        "bird",
        json!({"passwordSecret": {"name": "pw", "namespace": "ferrolb-system"}}),
    );
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let secret = SecretKey {
        namespace: "ferrolb-system".into(),
        name: "pw".into(),
    };
    assert_eq!(
        c.world.referenced_secrets(),
        BTreeSet::from([secret.clone()])
    );
    let p = c.plan("n1");
    assert_eq!(
        p.peers[&PeerName::new("bird")],
        Err(PeerProblem::SecretMissing(secret.clone()))
    );
    // No session, no routes.
    assert_eq!(c.bgp_outcome("n1", "a", V4), Err(NotAnnounced::NoPeer));
    c.world.apply(Update::Secret(
        secret.clone(),
        Some(BTreeMap::from([("other".into(), b"x".to_vec())])),
    ));
    assert!(matches!(
        c.plan("n1").peers[&PeerName::new("bird")],
        Err(PeerProblem::SecretKeyMissing { .. })
    ));
    c.world.apply(Update::Secret(
        secret,
        Some(BTreeMap::from([("password".into(), b"s3cret".to_vec())])),
    ));
    let p = c.plan("n1");
    let config = p.peers[&PeerName::new("bird")].as_ref().unwrap();
    assert_eq!(config.password, Some(Password::new("s3cret")));
    assert!(c.bgp_outcome("n1", "a", V4).is_ok());
}

#[test]
fn bgp_two_peers_with_one_address_keep_the_first() {
    let mut c = bgp_cluster();
    c.peer("zz-dup", json!({}));
    let p = c.plan("n1");
    assert!(p.peers[&PeerName::new("bird")].is_ok());
    assert_eq!(
        p.peers[&PeerName::new("zz-dup")],
        Err(PeerProblem::Duplicate(PeerName::new("bird")))
    );
}

#[test]
fn l2_and_bgp_together() {
    let mut c = bgp_cluster();
    c.l2("l2", json!({}));
    c.service("a", &[V4], TrafficPolicy::Cluster);
    let owner = c.owner(V4).unwrap();
    for n in ["n1", "n2", "n3"] {
        assert!(c.bgp_outcome(n, "a", V4).is_ok());
        assert_eq!(c.plan(n).l2.contains_key(&ip(V4)), n == owner);
    }
}

// ---- incremental planner -------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Service(u8, Vec<u8>, bool),
    DeleteService(u8),
    Slice(u8, Vec<u8>),
    NodeFlag(u8, u8),
    Live(Vec<u8>),
    Advert(u8),
    Relist(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..6u8, prop::collection::vec(0..8u8, 0..3), any::<bool>())
            .prop_map(|(s, a, l)| Op::Service(s, a, l)),
        (0..6u8).prop_map(Op::DeleteService),
        (0..6u8, prop::collection::vec(1..5u8, 0..3)).prop_map(|(s, n)| Op::Slice(s, n)),
        (1..5u8, 0..4u8).prop_map(|(n, f)| Op::NodeFlag(n, f)),
        prop::collection::vec(1..5u8, 0..4).prop_map(Op::Live),
        (0..4u8).prop_map(Op::Advert),
        prop::collection::vec(0..6u8, 0..4).prop_map(Op::Relist),
    ]
}

fn addr_of(i: u8) -> &'static str {
    // Eight addresses, some IPv6 and one outside the pool; services collide on them often,
    // which exercises shared addresses.
    [
        "192.0.2.10",
        "192.0.2.11",
        "192.0.2.12",
        "2001:db8::10",
        "2001:db8::11",
        "203.0.113.9",
        "192.0.2.13",
        "2001:db8::12",
    ][usize::from(i)]
}

fn apply_op(c: &mut Cluster, op: &Op) -> crate::world::Dirty {
    let svc_update = |s: u8, addrs: &[u8], local: bool| {
        let mut seen = Vec::new();
        for a in addrs {
            let a = ip(addr_of(*a));
            if !seen.contains(&a) {
                seen.push(a);
            }
        }
        Update::Service(
            key(&format!("s{s}")),
            Some(ServiceEntry {
                uid: String::new(),
                labels: Labels::new(),
                addresses: seen,
                pools: vec![],
                traffic_policy: if local {
                    TrafficPolicy::Local
                } else {
                    TrafficPolicy::Cluster
                },
            }),
        )
    };
    match op {
        Op::Service(s, addrs, local) => c.world.apply(svc_update(*s, addrs, *local)),
        Op::DeleteService(s) => c.world.apply(Update::Service(key(&format!("s{s}")), None)),
        Op::Slice(s, nodes) => c.world.apply(Update::Slice(
            SliceKey {
                namespace: "ns".into(),
                name: format!("s{s}-slice"),
            },
            Some(SliceEntry {
                service: key(&format!("s{s}")),
                ready_nodes: nodes.iter().map(|n| node(&format!("n{n}"))).collect(),
            }),
        )),
        Op::NodeFlag(n, f) => {
            let name = node(&format!("n{n}"));
            let mut e = c.world.nodes[&name].clone();
            match f {
                0 => e.network_unavailable = !e.network_unavailable,
                1 => {
                    if e.labels.remove(EXCLUDE_LABEL).is_none() {
                        e.labels.insert(EXCLUDE_LABEL.into(), String::new());
                    }
                }
                2 => e.ready = !e.ready,
                _ => {
                    if e.labels.remove("zone").is_none() {
                        e.labels.insert("zone".into(), "a".into());
                    }
                }
            }
            c.world.apply(Update::Node(name, Some(e)))
        }
        Op::Live(nodes) => c.world.apply(Update::Live(Some(
            nodes.iter().map(|n| node(&format!("n{n}"))).collect(),
        ))),
        Op::Advert(v) => {
            let spec = match v {
                0 => json!({}),
                1 => json!({"nodeSelectors": [{"matchLabels": {"zone": "a"}}]}),
                2 => json!({"interfaces": ["eth0"]}),
                _ => json!({"ipAddressPools": ["none"]}),
            };
            let adv: L2Advertisement =
                serde_json::from_value(json!({"metadata": {"name": "l2"}, "spec": spec})).unwrap();
            let (n, e) = L2AdvEntry::from_advertisement(&adv).unwrap();
            c.world.apply(Update::L2Advertisement(n, Some(e)))
        }
        Op::Relist(keep) => {
            let updates = keep
                .iter()
                .filter_map(|s| {
                    let k = key(&format!("s{s}"));
                    c.world
                        .services
                        .get(&k)
                        .map(|e| Update::Service(k, Some(e.clone())))
                })
                .collect();
            c.world.replace_all(Kind::Service, updates)
        }
    }
}

proptest! {
    /// After any sequence of updates, the planner that recomputed only what each update
    /// touched holds exactly the plan computed from scratch, on every node.
    #[test]
    fn incremental_planner_equals_full_plan(ops in prop::collection::vec(op(), 1..40)) {
        let mut c = Cluster::new(4);
        c.peer("bird", json!({}));
        c.bgp("bgp", json!({"aggregationLength": 31}));
        let mut planners: Vec<Planner> =
            (1..=4).map(|i| Planner::new(node(&format!("n{i}")))).collect();
        for p in &mut planners {
            p.update(&c.world, &crate::world::Dirty::all());
        }
        for op in &ops {
            let dirty = apply_op(&mut c, op);
            for p in &mut planners {
                p.update(&c.world, &dirty);
                prop_assert_eq!(p.plan(), plan(&c.world, p.node()), "after {:?}", op);
            }
        }
        // And the owners agree across nodes: each address announced in L2 by at most one.
        let mut owners: BTreeMap<IpAddr, usize> = BTreeMap::new();
        for p in &planners {
            for a in p.plan().l2.keys() {
                *owners.entry(*a).or_default() += 1;
            }
        }
        prop_assert!(owners.values().all(|&n| n == 1), "{:?}", owners);
    }
}
