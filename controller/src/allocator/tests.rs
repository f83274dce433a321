//! Unit tests, one per rule, each named for it.

#![allow(clippy::unwrap_used)]

use super::*;
use ferrolb_api::conditions::IpAllocatedReason;
use ferrolb_api::selector::Selector;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(name: &str, entries: &[&str]) -> PoolSpec {
    PoolSpec {
        name: PoolName::from(name),
        ranges: AddressRanges::parse(entries).unwrap(),
        auto_assign: true,
        avoid_buggy_ips: false,
        allocation: None,
    }
}

fn svc(ns: &str, name: &str) -> ServiceRequest {
    ServiceRequest::new(ServiceKey::new(ns, name))
}

fn key(ns: &str, name: &str) -> ServiceKey {
    ServiceKey::new(ns, name)
}

fn selector(pairs: &[(&str, &str)]) -> Selector {
    Selector::new(&LabelSelector {
        match_labels: Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    })
    .unwrap()
}

fn port(p: u16) -> ServicePort {
    ServicePort {
        port: p,
        protocol: Protocol::Tcp,
    }
}

fn shared(ns: &str, name: &str, k: &str, ports: &[u16]) -> ServiceRequest {
    let mut r = svc(ns, name);
    r.sharing_key = Some(SharingKey(k.into()));
    r.ports = ports.iter().map(|p| port(*p)).collect();
    r
}

/// The addresses of an assignment as text.
fn ips(a: &Assignment) -> Vec<String> {
    a.addresses.iter().map(|x| x.ip.to_string()).collect()
}

fn pools_of(a: &Assignment) -> Vec<String> {
    a.addresses.iter().map(|x| x.pool.0.clone()).collect()
}

struct World {
    a: Allocator,
    t: Instant,
}

impl World {
    fn new(pools: Vec<PoolSpec>) -> Self {
        let t = Instant::now();
        let mut a = Allocator::new(Duration::from_secs(300));
        for p in pools {
            a.set_pool(p, t);
        }
        World { a, t }
    }

    fn assign(&mut self, r: ServiceRequest) -> Result<Assignment, Refusal> {
        self.a.assign(r, self.t)
    }

    fn ok(&mut self, r: ServiceRequest) -> Vec<String> {
        ips(&self.assign(r).unwrap())
    }

    fn release(&mut self, ns: &str, name: &str) -> Vec<IpAddr> {
        self.a.release(&key(ns, name), self.t)
    }

    fn later(&mut self, secs: u64) {
        self.t += Duration::from_secs(secs);
    }

    fn counters(&self, name: &str) -> PoolCounters {
        self.a.pool_counters(&PoolName::from(name)).unwrap()
    }
}

// ---- interval pools ----

#[test]
fn pools_are_interval_sets_so_a_slash_48_costs_no_more_than_a_slash_30() {
    let mut w = World::new(vec![
        pool("big", &["2001:db8::/48"]),
        pool("small", &["192.0.2.0/30"]),
    ]);
    let mut r = svc("ns", "a");
    r.ip_families = vec![Family::V6];
    assert_eq!(w.ok(r), ["2001:db8::"]);
    assert_eq!(
        w.counters("big").v6,
        FamilyCounters {
            assigned: 1,
            available: (1u128 << 80) - 1
        }
    );
    assert_eq!(w.ok(svc("ns", "b")), ["192.0.2.0"]);
    assert_eq!(
        w.counters("small").v4,
        FamilyCounters {
            assigned: 1,
            available: 3
        }
    );
}

#[test]
fn lowest_free_address_is_found_past_a_long_held_run() {
    let mut w = World::new(vec![pool("p", &["198.51.100.0/24", "203.0.113.0/24"])]);
    for i in 0..256 {
        assert_eq!(
            w.ok(svc("ns", &format!("s{i}"))),
            [format!("198.51.100.{i}")]
        );
    }
    // The first entry is full; the next free address is in the second.
    assert_eq!(w.ok(svc("ns", "next")), ["203.0.113.0"]);
    assert_eq!(
        w.a.v4.runs.len(),
        2,
        "two runs of held addresses, not 257 entries"
    );
}

#[test]
fn whole_address_space_pools_do_not_overflow_counters() {
    let mut w = World::new(vec![pool("all", &["::/0", "0.0.0.0/0"])]);
    let c = w.counters("all");
    assert_eq!(c.v6.available, u128::MAX);
    assert_eq!(c.v4.available, 1u128 << 32);
    assert_eq!(w.ok(svc("ns", "a")), ["0.0.0.0"]);
    assert_eq!(w.counters("all").v4.available, (1u128 << 32) - 1);
}

// ---- IP-global ----

#[test]
fn ip_global_overlapping_pools_never_hand_out_one_address_twice() {
    let mut a = pool("a", &["192.0.2.0-192.0.2.3"]);
    a.allocation = Some(ServiceAllocation {
        namespaces: vec!["x".into()],
        ..Default::default()
    });
    let b = pool("b", &["192.0.2.2-192.0.2.5"]);
    let mut w = World::new(vec![a, b]);
    let mut seen = BTreeSet::new();
    for i in 0..3 {
        for ns in ["x", "y"] {
            for got in w.ok(svc(ns, &format!("s{i}"))) {
                assert!(seen.insert(got.clone()), "{got} handed out twice");
            }
        }
    }
    assert_eq!(seen.len(), 6);
}

#[test]
fn overlapping_pools_are_reported() {
    let w = World::new(vec![
        pool("a", &["192.0.2.0/28"]),
        pool("b", &["192.0.2.8-192.0.2.20"]),
        pool("c", &["198.51.100.0/24", "2001:db8::/64"]),
        pool("d", &["2001:db8::5"]),
    ]);
    let o = |n: &str| w.a.overlapping_pools(&PoolName::from(n));
    assert_eq!(o("a"), [PoolName::from("b")]);
    assert_eq!(o("b"), [PoolName::from("a")]);
    assert_eq!(o("c"), [PoolName::from("d")]);
    assert_eq!(o("d"), [PoolName::from("c")]);
}

// ---- avoidBuggyIPs ----

#[test]
fn avoid_buggy_ips_skips_dot_zero_and_dot_255() {
    let mut p = pool("p", &["198.51.100.254-198.51.101.1"]);
    p.avoid_buggy_ips = true;
    let mut w = World::new(vec![p]);
    assert_eq!(w.counters("p").v4.available, 2);
    assert_eq!(w.ok(svc("ns", "a")), ["198.51.100.254"]);
    assert_eq!(w.ok(svc("ns", "b")), ["198.51.101.1"]);
    assert_eq!(
        w.assign(svc("ns", "c")).unwrap_err().reason(),
        IpAllocatedReason::PoolExhausted
    );
    let mut r = svc("ns", "d");
    r.requested_ips = vec![ip("198.51.100.255")];
    assert!(matches!(
        w.assign(r),
        Err(Refusal::RequestedIpNotInPool { .. })
    ));
}

#[test]
fn avoid_buggy_ips_skips_held_slash_24s_in_one_step() {
    let mut p = pool("p", &["198.51.100.0/22"]);
    p.avoid_buggy_ips = true;
    let mut w = World::new(vec![p]);
    for i in 0..(254 * 3) {
        w.ok(svc("ns", &format!("s{i}")));
    }
    assert_eq!(w.ok(svc("ns", "last")), ["198.51.103.1"]);
    // One bridged run covers the three full /24s (and one plain run per /24).
    assert_eq!(w.a.v4.bridged.as_ref().unwrap().len(), 1);
}

#[test]
fn avoid_buggy_ips_does_not_apply_to_a_plain_overlapping_pool() {
    let mut a = pool("a", &["198.51.100.0/24"]);
    a.avoid_buggy_ips = true;
    let b = pool("b", &["198.51.100.0/24"]);
    let mut w = World::new(vec![a, b]);
    // Pool "a" comes first by name but skips .0; "b" may hand it out.
    assert_eq!(w.ok(svc("ns", "s")), ["198.51.100.1"]);
    let mut r = svc("ns", "t");
    r.requested_ips = vec![ip("198.51.100.0")];
    let got = w.assign(r).unwrap();
    assert_eq!(
        (ips(&got), pools_of(&got)),
        (vec!["198.51.100.0".to_string()], vec!["b".to_string()])
    );
}

// ---- autoAssign ----

#[test]
fn auto_assign_false_pool_is_used_only_when_requested_by_name() {
    let mut p = pool("manual", &["192.0.2.0/24"]);
    p.auto_assign = false;
    let mut w = World::new(vec![p]);
    let err = w.assign(svc("ns", "a")).unwrap_err();
    assert_eq!(err.reason(), IpAllocatedReason::NoMatchingPool);
    let mut r = svc("ns", "b");
    r.requested_pool = Some(PoolName::from("manual"));
    assert_eq!(w.ok(r), ["192.0.2.0"]);
}

#[test]
fn auto_assign_false_pool_is_used_when_requested_by_address() {
    let mut p = pool("manual", &["192.0.2.0/24"]);
    p.auto_assign = false;
    let mut w = World::new(vec![p]);
    let mut r = svc("ns", "a");
    r.requested_ips = vec![ip("192.0.2.77")];
    assert_eq!(w.ok(r.clone()), ["192.0.2.77"]);
    // Dropping the request makes the address invalid: the pool no longer serves it.
    r.requested_ips.clear();
    assert_eq!(
        w.assign(r).unwrap_err().reason(),
        IpAllocatedReason::NoMatchingPool
    );
    assert_eq!(w.a.assignment(&key("ns", "a")), Some(vec![]));
}

// ---- pool choice ----

#[test]
fn pool_choice_requested_pool_comes_first() {
    let mut w = World::new(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["198.51.100.0/30"]),
    ]);
    let mut r = svc("ns", "s");
    r.requested_pool = Some(PoolName::from("b"));
    assert_eq!(w.ok(r), ["198.51.100.0"]);
    let mut r = svc("ns", "t");
    r.requested_pool = Some(PoolName::from("nope"));
    let err = w.assign(r).unwrap_err();
    assert_eq!(
        err,
        Refusal::RequestedPoolMissing {
            pool: PoolName::from("nope")
        }
    );
    assert_eq!(err.to_string(), "requested pool nope does not exist");
    assert_eq!(err.reason(), IpAllocatedReason::NoMatchingPool);
}

#[test]
fn pool_choice_service_allocation_by_ascending_priority_ties_by_name_then_plain_pools() {
    let alloc = |priority| {
        Some(ServiceAllocation {
            priority,
            ..Default::default()
        })
    };
    let mut p10 = pool("p10", &["192.0.2.10"]);
    p10.allocation = alloc(10);
    let mut p5b = pool("p5b", &["192.0.2.6"]);
    p5b.allocation = alloc(5);
    let mut p5a = pool("p5a", &["192.0.2.5"]);
    p5a.allocation = alloc(5);
    let mut neg = pool("zz-negative", &["192.0.2.20"]);
    neg.allocation = alloc(-1);
    let plain = pool("aaa-plain", &["192.0.2.1"]);
    let mut w = World::new(vec![plain, neg, p10, p5b, p5a]);
    let order: Vec<String> = (0..5)
        .flat_map(|i| w.ok(svc("ns", &format!("s{i}"))))
        .collect();
    assert_eq!(
        order,
        [
            "192.0.2.20",
            "192.0.2.5",
            "192.0.2.6",
            "192.0.2.10",
            "192.0.2.1"
        ]
    );
}

#[test]
fn pool_choice_namespace_list_and_namespace_selectors_select_the_namespace() {
    let mut team = pool("team", &["192.0.2.0/30"]);
    team.allocation = Some(ServiceAllocation {
        namespaces: vec!["team-a".into()],
        namespace_selectors: vec![selector(&[("team", "b")])],
        ..Default::default()
    });
    let mut w = World::new(vec![team, pool("rest", &["198.51.100.0/30"])]);
    assert_eq!(w.ok(svc("team-a", "s")), ["192.0.2.0"]);
    let mut r = svc("other", "s");
    r.namespace_labels = Arc::new([("team".to_string(), "b".to_string())].into());
    assert_eq!(w.ok(r), ["192.0.2.1"]);
    assert_eq!(w.ok(svc("other", "t")), ["198.51.100.0"]);
}

#[test]
fn pool_choice_service_selectors_select_the_service() {
    let mut web = pool("web", &["192.0.2.0/30"]);
    web.allocation = Some(ServiceAllocation {
        service_selectors: vec![selector(&[("app", "web")])],
        ..Default::default()
    });
    let mut w = World::new(vec![web, pool("rest", &["198.51.100.0/30"])]);
    let mut r = svc("ns", "a");
    r.labels = [("app".to_string(), "web".to_string())].into();
    assert_eq!(w.ok(r), ["192.0.2.0"]);
    assert_eq!(w.ok(svc("ns", "b")), ["198.51.100.0"]);
}

#[test]
fn pool_choice_falls_through_to_the_next_pool_when_one_is_full() {
    let mut w = World::new(vec![pool("a", &["192.0.2.1"]), pool("b", &["192.0.2.9"])]);
    assert_eq!(w.ok(svc("ns", "1")), ["192.0.2.1"]);
    assert_eq!(w.ok(svc("ns", "2")), ["192.0.2.9"]);
    let err = w.assign(svc("ns", "3")).unwrap_err();
    assert_eq!(err.to_string(), "no free IPv4 address left in pool a, b");
}

#[test]
fn pool_choice_requested_pool_must_select_the_service() {
    let mut p = pool("team", &["192.0.2.0/30"]);
    p.allocation = Some(ServiceAllocation {
        namespaces: vec!["team-a".into()],
        ..Default::default()
    });
    let mut w = World::new(vec![p]);
    let mut r = svc("team-b", "s");
    r.requested_pool = Some(PoolName::from("team"));
    let err = w.assign(r).unwrap_err();
    assert_eq!(
        err,
        Refusal::RequestedPoolNotAllowed {
            pool: PoolName::from("team")
        }
    );
}

// ---- families ----

#[test]
fn single_stack_gets_one_address_of_the_first_family() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/30", "2001:db8::/120"])]);
    let mut r = svc("ns", "s");
    r.ip_families = vec![Family::V6, Family::V4];
    assert_eq!(w.ok(r), ["2001:db8::"]);
}

#[test]
fn prefer_dual_stack_gets_one_per_family_where_possible() {
    let mut w = World::new(vec![pool("v4", &["192.0.2.0/30"])]);
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    r.ip_families = vec![Family::V4, Family::V6];
    let got = w.assign(r).unwrap();
    assert_eq!(ips(&got), ["192.0.2.0"]);
    assert_eq!(got.unmet, [Refusal::NoPoolForFamily { family: Family::V6 }]);
    assert_eq!(w.a.unsatisfied(), [key("ns", "s")]);
    // A pool for the missing family arrives: the retry adds it and keeps the first.
    w.a.set_pool(pool("v6", &["2001:db8::/120"]), w.t);
    let got = w.a.reassign(&key("ns", "s"), w.t).unwrap().unwrap();
    assert_eq!(ips(&got), ["192.0.2.0", "2001:db8::"]);
    assert!(got.unmet.is_empty() && got.changed);
    assert!(w.a.unsatisfied().is_empty());
}

#[test]
fn prefer_dual_stack_on_a_single_family_cluster_wants_that_family_only() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/30", "2001:db8::/120"])]);
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    r.ip_families = vec![Family::V4];
    let got = w.assign(r).unwrap();
    assert_eq!(ips(&got), ["192.0.2.0"]);
    assert!(got.unmet.is_empty());
}

#[test]
fn require_dual_stack_gets_both_or_nothing() {
    let mut w = World::new(vec![pool("v4", &["192.0.2.0/30"])]);
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    r.ip_families = vec![Family::V4, Family::V6];
    let err = w.assign(r.clone()).unwrap_err();
    assert_eq!(err, Refusal::NoPoolForFamily { family: Family::V6 });
    assert_eq!(
        w.counters("v4").v4.assigned,
        0,
        "no half allocation left behind"
    );
    w.a.set_pool(pool("v6", &["2001:db8::/120"]), w.t);
    assert_eq!(w.ok(r), ["192.0.2.0", "2001:db8::"]);
}

#[test]
fn require_dual_stack_releases_its_sticky_half_when_the_other_family_is_lost() {
    let mut w = World::new(vec![
        pool("v4", &["192.0.2.0/30"]),
        pool("v6", &["2001:db8::/120"]),
    ]);
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    r.ip_families = vec![Family::V4, Family::V6];
    w.ok(r);
    let change = w.a.remove_pool(&PoolName::from("v6"), w.t);
    assert_eq!(change.invalidated.len(), 1);
    assert!(w.a.reassign(&key("ns", "s"), w.t).unwrap().is_err());
    assert_eq!(w.a.assignment(&key("ns", "s")), Some(vec![]));
    assert_eq!(w.counters("v4").v4.assigned, 0);
}

// ---- requested addresses ----

#[test]
fn requested_ip_must_lie_in_a_pool_the_service_may_use() {
    let mut team = pool("team", &["192.0.2.0/24"]);
    team.allocation = Some(ServiceAllocation {
        namespaces: vec!["team-a".into()],
        ..Default::default()
    });
    let mut w = World::new(vec![team]);
    let mut r = svc("team-b", "s");
    r.requested_ips = vec![ip("192.0.2.7")];
    let err = w.assign(r).unwrap_err();
    assert_eq!(
        err.to_string(),
        "requested address 192.0.2.7 is not in any pool this service may use"
    );
    assert_eq!(err.reason(), IpAllocatedReason::RequestedIPUnavailable);
    let mut r = svc("team-a", "s");
    r.requested_ips = vec![ip("203.0.113.1")];
    assert!(matches!(
        w.assign(r),
        Err(Refusal::RequestedIpNotInPool { .. })
    ));
    let mut r = svc("team-a", "s");
    r.requested_ips = vec![ip("192.0.2.7")];
    assert_eq!(w.ok(r), ["192.0.2.7"]);
}

#[test]
fn requested_ip_held_by_another_service_is_unavailable_and_nothing_else_changes() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    let mut a = svc("ns", "a");
    a.requested_ips = vec![ip("192.0.2.7")];
    w.ok(a);
    let mut b = svc("ns", "b");
    b.requested_ips = vec![ip("192.0.2.7")];
    let err = w.assign(b).unwrap_err();
    assert_eq!(err.reason(), IpAllocatedReason::RequestedIPUnavailable);
    assert_eq!(
        err.to_string(),
        "requested address 192.0.2.7 is in use by service ns/a (it does not allow sharing)"
    );
    assert_eq!(w.a.holders(ip("192.0.2.7")), [key("ns", "a")]);
    assert_eq!(w.counters("p").v4.assigned, 1);
}

#[test]
fn requested_ips_must_fit_the_families() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24", "2001:db8::/64"])]);
    let mut r = svc("ns", "s");
    r.requested_ips = vec![ip("2001:db8::1")];
    let err = w.assign(r).unwrap_err();
    assert_eq!(err.reason(), IpAllocatedReason::InvalidAnnotation);
    assert_eq!(
        err.to_string(),
        "requested address 2001:db8::1 is IPv6, but the SingleStack service serves IPv4"
    );
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    r.requested_ips = vec![ip("192.0.2.1")];
    assert!(matches!(
        w.assign(r),
        Err(Refusal::RequireDualStackNeedsBoth { .. })
    ));
    let mut r = svc("ns", "s");
    r.requested_ips = vec![ip("192.0.2.1"), ip("192.0.2.2")];
    assert!(matches!(
        w.assign(r),
        Err(Refusal::RequestedTwoOfFamily { .. })
    ));
    // Dual-stack with both requested gets exactly those.
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    r.ip_families = vec![Family::V6, Family::V4];
    r.requested_ips = vec![ip("192.0.2.9"), ip("2001:db8::9")];
    assert_eq!(w.ok(r), ["2001:db8::9", "192.0.2.9"]);
}

#[test]
fn requested_ips_on_prefer_dual_stack_give_exactly_the_requested_families() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24", "2001:db8::/64"])]);
    let mut r = svc("ns", "s");
    r.ip_family_policy = IpFamilyPolicy::PreferDualStack;
    r.ip_families = vec![Family::V4, Family::V6];
    r.requested_ips = vec![ip("2001:db8::5")];
    let got = w.assign(r).unwrap();
    assert_eq!(ips(&got), ["2001:db8::5"]);
    assert!(got.unmet.is_empty());
}

// ---- sharing ----

#[test]
fn sharing_same_key_and_disjoint_ports_share_one_address() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    assert_eq!(w.ok(shared("ns", "web", "k", &[80])), ["192.0.2.0"]);
    assert_eq!(w.ok(shared("ns", "dns", "k", &[53])), ["192.0.2.0"]);
    assert_eq!(
        w.a.holders(ip("192.0.2.0")),
        [key("ns", "dns"), key("ns", "web")]
    );
    assert_eq!(w.counters("p").v4.assigned, 1);
}

#[test]
fn sharing_overlapping_ports_get_their_own_address_or_a_conflict_when_requested() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    w.ok(shared("ns", "a", "k", &[80]));
    assert_eq!(w.ok(shared("ns", "b", "k", &[80, 443])), ["192.0.2.1"]);
    let mut c = shared("ns", "c", "k", &[443]);
    c.requested_ips = vec![ip("192.0.2.1")];
    let err = w.assign(c).unwrap_err();
    assert_eq!(err.reason(), IpAllocatedReason::SharingConflict);
    assert_eq!(
        err.to_string(),
        "address 192.0.2.1 is shared under key \"k\" by service ns/b, which also uses port 443/TCP"
    );
    // Same port number, other protocol: no overlap.
    let mut d = shared("ns", "d", "k", &[]);
    d.ports = vec![ServicePort {
        port: 80,
        protocol: Protocol::Udp,
    }];
    assert_eq!(w.ok(d), ["192.0.2.0"]);
}

#[test]
fn sharing_needs_both_cluster_or_both_local_with_the_same_selector() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    let local = |sel: &[(&str, &str)]| TrafficPolicy::Local {
        pod_selector: sel
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let mut a = shared("ns", "a", "k", &[80]);
    a.traffic_policy = local(&[("app", "x")]);
    w.ok(a);
    let mut b = shared("ns", "b", "k", &[81]);
    b.traffic_policy = local(&[("app", "x")]);
    assert_eq!(w.ok(b), ["192.0.2.0"]);
    let mut c = shared("ns", "c", "k", &[82]);
    c.traffic_policy = local(&[("app", "y")]);
    assert_eq!(w.ok(c.clone()), ["192.0.2.1"]);
    let d = shared("ns", "d", "k", &[83]);
    assert_eq!(w.ok(d), ["192.0.2.2"]);
    c.requested_ips = vec![ip("192.0.2.0")];
    let err = w.assign(c).unwrap_err();
    assert!(
        matches!(err, Refusal::SharingTrafficPolicyMismatch { .. }),
        "{err}"
    );
}

#[test]
fn sharing_different_keys_or_no_key_never_share() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    w.ok(shared("ns", "a", "k", &[80]));
    assert_eq!(w.ok(shared("ns", "b", "other", &[81])), ["192.0.2.1"]);
    assert_eq!(w.ok(svc("ns", "c")), ["192.0.2.2"]);
    let mut d = shared("ns", "d", "other", &[82]);
    d.requested_ips = vec![ip("192.0.2.0")];
    let err = w.assign(d).unwrap_err();
    assert_eq!(err.reason(), IpAllocatedReason::RequestedIPUnavailable);
    assert!(
        err.to_string()
            .contains("shared under key \"k\"; this service's key is \"other\""),
        "{err}"
    );
}

#[test]
fn sharing_a_group_shares_one_address_per_family() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24", "2001:db8::/64"])]);
    let dual = |name: &str, p: u16| {
        let mut r = shared("ns", name, "k", &[p]);
        r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
        r.ip_families = vec![Family::V4, Family::V6];
        r
    };
    assert_eq!(w.ok(dual("a", 80)), ["192.0.2.0", "2001:db8::"]);
    assert_eq!(w.ok(dual("b", 81)), ["192.0.2.0", "2001:db8::"]);
    let mut single = shared("ns", "c", "k", &[82]);
    single.ip_families = vec![Family::V6];
    assert_eq!(w.ok(single), ["2001:db8::"]);
}

#[test]
fn shared_address_is_freed_when_its_last_user_goes() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/30"])]);
    w.ok(shared("ns", "a", "k", &[80]));
    w.ok(shared("ns", "b", "k", &[81]));
    w.release("ns", "a");
    assert_eq!(w.a.holders(ip("192.0.2.0")), [key("ns", "b")]);
    assert_eq!(w.counters("p").v4.assigned, 1);
    w.release("ns", "b");
    assert!(w.a.holders(ip("192.0.2.0")).is_empty());
    assert_eq!(
        w.counters("p").v4,
        FamilyCounters {
            assigned: 0,
            available: 4
        }
    );
}

#[test]
fn sharing_a_member_whose_ports_now_overlap_moves_to_its_own_address() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    w.ok(shared("ns", "a", "k", &[80]));
    w.ok(shared("ns", "b", "k", &[81]));
    assert_eq!(w.ok(shared("ns", "b", "k", &[80])), ["192.0.2.1"]);
    assert_eq!(w.a.holders(ip("192.0.2.0")), [key("ns", "a")]);
}

// ---- stickiness ----

#[test]
fn sticky_address_stays_while_the_service_may_use_it() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/24"])]);
    w.ok(svc("ns", "a"));
    assert_eq!(w.ok(svc("ns", "b")), ["192.0.2.1"]);
    w.release("ns", "a");
    w.later(3600);
    let mut b = svc("ns", "b");
    b.labels = [("new".to_string(), "label".to_string())].into();
    b.ports = vec![port(8080)];
    let got = w.assign(b).unwrap();
    assert_eq!(
        ips(&got),
        ["192.0.2.1"],
        "a lower free address does not move it"
    );
    assert!(!got.changed);
}

#[test]
fn sticky_address_goes_when_the_service_may_no_longer_use_it() {
    let mut web = pool("web", &["192.0.2.0/30"]);
    web.allocation = Some(ServiceAllocation {
        service_selectors: vec![selector(&[("app", "web")])],
        ..Default::default()
    });
    let mut w = World::new(vec![web, pool("rest", &["198.51.100.0/30"])]);
    let mut r = svc("ns", "a");
    r.labels = [("app".to_string(), "web".to_string())].into();
    assert_eq!(w.ok(r.clone()), ["192.0.2.0"]);
    r.labels.clear();
    let got = w.assign(r).unwrap();
    assert_eq!(
        (ips(&got), got.changed),
        (vec!["198.51.100.0".to_string()], true)
    );
    assert_eq!(w.counters("web").v4.assigned, 0);
}

// ---- load ----

fn existing(r: ServiceRequest, addrs: &[&str]) -> ExistingService {
    ExistingService {
        request: r,
        addresses: addrs.iter().map(|a| ip(a)).collect(),
        pools: vec![],
    }
}

#[test]
fn load_rebuilds_state_before_any_new_allocation() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    let report = w.a.load(vec![
        existing(svc("ns", "a"), &["192.0.2.0"]),
        existing(svc("ns", "b"), &["192.0.2.3"]),
    ]);
    assert!(report.rejected.is_empty());
    assert_eq!(w.ok(svc("ns", "c")), ["192.0.2.1"]);
    assert_eq!(
        w.ok(svc("ns", "b")),
        ["192.0.2.3"],
        "restarts never move an address"
    );
    assert_eq!(w.counters("p").v4.assigned, 3);
}

#[test]
fn load_reports_addresses_outside_every_usable_pool() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    let report = w.a.load(vec![existing(svc("ns", "a"), &["203.0.113.5"])]);
    assert_eq!(
        report.rejected,
        [Invalidated {
            service: key("ns", "a"),
            ip: ip("203.0.113.5"),
            reason: InvalidAddress::NotInUsablePool
        }]
    );
    assert_eq!(w.a.unsatisfied(), [key("ns", "a")]);
    assert_eq!(
        w.a.reassign(&key("ns", "a"), w.t).unwrap().map(|a| ips(&a)),
        Ok(vec!["192.0.2.0".to_string()])
    );
}

#[test]
fn load_on_a_duplicate_the_older_service_keeps_the_address() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    let mut old = svc("ns", "zz-old");
    old.created = 100;
    let mut young = svc("ns", "aa-young");
    young.created = 200;
    let report = w.a.load(vec![
        existing(young, &["192.0.2.1"]),
        existing(old, &["192.0.2.1"]),
    ]);
    assert_eq!(w.a.holders(ip("192.0.2.1")), [key("ns", "zz-old")]);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].service, key("ns", "aa-young"));
    assert_eq!(
        report.rejected[0].to_string(),
        "address 192.0.2.1 of service ns/aa-young is not valid: service ns/zz-old, created earlier, \
         holds it (it does not allow sharing)"
    );
}

#[test]
fn load_rejects_conflicting_sharing_and_keeps_compatible_sharing() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    let report = w.a.load(vec![
        existing(shared("ns", "a", "k", &[80]), &["192.0.2.1"]),
        existing(shared("ns", "b", "k", &[81]), &["192.0.2.1"]),
        existing(shared("ns", "c", "k", &[80]), &["192.0.2.1"]),
    ]);
    assert_eq!(
        w.a.holders(ip("192.0.2.1")),
        [key("ns", "a"), key("ns", "b")]
    );
    assert_eq!(report.rejected.len(), 1);
    assert!(matches!(
        report.rejected[0].reason,
        InvalidAddress::SharingConflict { .. }
    ));
}

#[test]
fn load_rejects_addresses_the_request_does_not_ask_for() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29", "2001:db8::/120"])]);
    let mut r = svc("ns", "a");
    r.requested_ips = vec![ip("192.0.2.2")];
    let report = w.a.load(vec![existing(r, &["192.0.2.1", "2001:db8::1"])]);
    let reasons: Vec<_> = report.rejected.iter().map(|r| r.reason.clone()).collect();
    assert_eq!(
        reasons,
        [
            InvalidAddress::NotRequested {
                requested: ip("192.0.2.2")
            },
            InvalidAddress::FamilyNotWanted { family: Family::V6 }
        ]
    );
}

// ---- pool edits ----

#[test]
fn pool_shrink_returns_exactly_the_services_whose_addresses_became_invalid() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    for i in 0..8 {
        w.ok(svc("ns", &format!("s{i}")));
    }
    let change = w.a.set_pool(pool("p", &["192.0.2.0-192.0.2.5"]), w.t);
    let lost: Vec<String> = change
        .invalidated
        .iter()
        .map(|i| i.service.name.clone())
        .collect();
    assert_eq!(lost, ["s6", "s7"]);
    assert!(change.reattributed.is_empty());
    for i in 0..6 {
        assert_eq!(
            w.a.assignment(&key("ns", &format!("s{i}"))).unwrap()[0].ip,
            ip(&format!("192.0.2.{i}"))
        );
    }
    assert_eq!(
        w.counters("p").v4,
        FamilyCounters {
            assigned: 6,
            available: 0
        }
    );
    assert_eq!(w.a.unsatisfied(), [key("ns", "s6"), key("ns", "s7")]);
}

#[test]
fn pool_growth_moves_nothing() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/30"])]);
    w.ok(svc("ns", "a"));
    let change = w.a.set_pool(pool("p", &["192.0.2.0/24"]), w.t);
    assert_eq!(change, PoolChange::default());
    assert_eq!(
        w.counters("p").v4,
        FamilyCounters {
            assigned: 1,
            available: 255
        }
    );
}

#[test]
fn pool_deleted_address_in_another_usable_pool_stays_and_is_reattributed() {
    let mut w = World::new(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["192.0.2.0/29"]),
    ]);
    let got = w.assign(svc("ns", "s")).unwrap();
    assert_eq!(pools_of(&got), ["a"]);
    let change = w.a.remove_pool(&PoolName::from("a"), w.t);
    assert!(change.invalidated.is_empty());
    assert_eq!(
        change.reattributed,
        [Reattributed {
            service: key("ns", "s"),
            ip: ip("192.0.2.0"),
            pool: PoolName::from("b")
        }]
    );
    assert_eq!(
        w.counters("b").v4,
        FamilyCounters {
            assigned: 1,
            available: 7
        }
    );
}

#[test]
fn pool_rule_change_invalidates_the_services_it_no_longer_selects() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    w.ok(svc("team-a", "s"));
    w.ok(svc("team-b", "s"));
    let mut p = pool("p", &["192.0.2.0/29"]);
    p.allocation = Some(ServiceAllocation {
        namespaces: vec!["team-a".into()],
        ..Default::default()
    });
    let change = w.a.set_pool(p, w.t);
    let lost: Vec<ServiceKey> = change
        .invalidated
        .iter()
        .map(|i| i.service.clone())
        .collect();
    assert_eq!(lost, [key("team-b", "s")]);
    assert_eq!(
        w.a.reassign(&key("team-b", "s"), w.t)
            .unwrap()
            .unwrap_err()
            .reason(),
        IpAllocatedReason::NoMatchingPool
    );
}

// ---- refusals ----

#[test]
fn every_refusal_has_a_condition_reason_and_names_what_is_at_fault() {
    let mut w = World::new(vec![pool("v4only", &["192.0.2.0/32"])]);
    w.ok(svc("ns", "first"));
    let err = w.assign(svc("ns", "second")).unwrap_err();
    assert_eq!(err.reason().as_str(), "PoolExhausted");
    assert!(err.to_string().contains("v4only"));
    let mut r = svc("ns", "six");
    r.ip_families = vec![Family::V6];
    let err = w.assign(r).unwrap_err();
    assert_eq!(err.reason().as_str(), "NoMatchingPool");
    assert_eq!(
        err.to_string(),
        "no address pool with IPv6 addresses may be used by this service"
    );
    let mut r = svc("ns", "pinned");
    r.requested_pool = Some(PoolName::from("v4only"));
    r.ip_families = vec![Family::V6];
    assert_eq!(
        w.assign(r).unwrap_err().to_string(),
        "requested pool v4only has no IPv6 addresses"
    );
}

// ---- counters ----

#[test]
fn counters_per_pool_and_family_count_overlaps_once_as_assigned() {
    let mut w = World::new(vec![
        pool("a", &["192.0.2.0/30"]),
        pool("b", &["192.0.2.2/31", "2001:db8::/126"]),
    ]);
    let mut r = svc("ns", "s");
    r.requested_ips = vec![ip("192.0.2.2")];
    let got = w.assign(r).unwrap();
    assert_eq!(pools_of(&got), ["a"]);
    assert_eq!(
        w.counters("a").v4,
        FamilyCounters {
            assigned: 1,
            available: 3
        }
    );
    assert_eq!(
        w.counters("b").v4,
        FamilyCounters {
            assigned: 0,
            available: 1
        }
    );
    assert_eq!(
        w.counters("b").v6,
        FamilyCounters {
            assigned: 0,
            available: 4
        }
    );
}

// ---- address choice and reuse delay ----

#[test]
fn recently_freed_address_is_taken_only_when_nothing_else_is_free() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/30"])]);
    for n in ["a", "b", "c"] {
        w.ok(svc("ns", n));
    }
    w.release("ns", "a");
    w.later(10);
    assert_eq!(
        w.ok(svc("ns", "d")),
        ["192.0.2.3"],
        "the free one, not the recently freed .0"
    );
    assert_eq!(
        w.ok(svc("ns", "e")),
        ["192.0.2.0"],
        "nothing else left: the recent one"
    );
    assert_eq!(w.counters("p").v4.available, 0);
}

#[test]
fn recently_freed_address_is_an_ordinary_free_address_after_the_delay() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    w.ok(svc("ns", "a"));
    w.ok(svc("ns", "b"));
    w.release("ns", "a");
    w.later(299);
    assert_eq!(w.ok(svc("ns", "c")), ["192.0.2.2"]);
    w.release("ns", "c");
    w.later(1);
    // .0 is 300 s old now; .2 only 1 s.
    assert_eq!(w.ok(svc("ns", "d")), ["192.0.2.0"]);
    assert_eq!(w.ok(svc("ns", "e")), ["192.0.2.3"]);
    assert_eq!(
        w.a.run_count().1,
        1,
        "only .2 is still remembered as recently freed"
    );
}

#[test]
fn recently_freed_address_can_be_requested_explicitly() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29"])]);
    w.ok(svc("ns", "a"));
    w.release("ns", "a");
    let mut r = svc("ns", "b");
    r.requested_ips = vec![ip("192.0.2.0")];
    assert_eq!(w.ok(r), ["192.0.2.0"]);
}

#[test]
fn release_frees_the_addresses_and_forgets_the_service() {
    let mut w = World::new(vec![pool("p", &["192.0.2.0/29", "2001:db8::/120"])]);
    let mut r = svc("ns", "a");
    r.ip_family_policy = IpFamilyPolicy::RequireDualStack;
    w.ok(r);
    assert_eq!(w.release("ns", "a"), [ip("192.0.2.0"), ip("2001:db8::")]);
    assert_eq!(w.a.assignment(&key("ns", "a")), None);
    assert_eq!(w.a.service_count(), 0);
    assert_eq!(w.release("ns", "a"), Vec::<IpAddr>::new());
}
