//! Property tests: random sequences of pool edits and Service create/update/delete over a
//! small address universe (so that collisions, overlaps, exhaustion and `.0`/`.255` happen
//! often), with the invariants checked after every step against a naive model.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use super::*;
use ferrolb_api::addr::{Interval, is_buggy_v4};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use proptest::prelude::*;

/// 192.0.2.240 ..= 192.0.3.15: 32 IPv4 addresses crossing a /24 boundary.
const V4_BASE: u32 = 0xC000_02F0;
/// 2001:db8:: ..= 2001:db8::f.
const V6_BASE: u128 = 0x2001_0db8_0000_0000_0000_0000_0000_0000;

const NAMESPACES: [&str; 2] = ["ns0", "ns1"];

fn v4(off: u32) -> IpAddr {
    IpAddr::V4((V4_BASE + off).into())
}

fn v6(off: u128) -> IpAddr {
    IpAddr::V6((V6_BASE + off).into())
}

fn app_selector() -> Selector {
    Selector::new(&LabelSelector {
        match_labels: Some([("app".to_string(), "a".to_string())].into()),
        match_expressions: None,
    })
    .unwrap()
}

fn pool_strategy() -> impl Strategy<Value = PoolSpec> {
    let v4_iv = (0u32..32, 0u32..12).prop_map(|(s, l)| Interval {
        start: V4_BASE + s,
        end: V4_BASE + (s + l).min(31),
    });
    let v6_iv = (0u128..16, 0u128..6).prop_map(|(s, l)| Interval {
        start: V6_BASE + s,
        end: V6_BASE + (s + l).min(15),
    });
    let allocation = prop::option::of((
        -1i32..2,
        prop::collection::vec(0usize..2, 0..2),
        any::<bool>(),
        any::<bool>(),
    ));
    (
        0usize..3,
        prop::collection::vec(v4_iv, 0..3),
        prop::collection::vec(v6_iv, 0..2),
        prop::bool::weighted(0.8),
        any::<bool>(),
        allocation,
    )
        .prop_map(
            |(name, i4, i6, auto_assign, avoid_buggy_ips, allocation)| PoolSpec {
                name: PoolName(format!("pool{name}")),
                ranges: AddressRanges {
                    v4: i4.into_iter().collect(),
                    v6: i6.into_iter().collect(),
                },
                auto_assign,
                avoid_buggy_ips,
                allocation: allocation.map(|(priority, ns, ns_sel, svc_sel)| ServiceAllocation {
                    priority,
                    namespaces: ns.into_iter().map(|i| NAMESPACES[i].to_string()).collect(),
                    namespace_selectors: if ns_sel {
                        vec![
                            Selector::new(&LabelSelector {
                                match_labels: Some([("team".to_string(), "x".to_string())].into()),
                                match_expressions: None,
                            })
                            .unwrap(),
                        ]
                    } else {
                        vec![]
                    },
                    service_selectors: if svc_sel {
                        vec![app_selector()]
                    } else {
                        vec![]
                    },
                }),
            },
        )
}

fn request_strategy() -> impl Strategy<Value = ServiceRequest> {
    let policy = prop_oneof![
        3 => Just(IpFamilyPolicy::SingleStack),
        2 => Just(IpFamilyPolicy::PreferDualStack),
        2 => Just(IpFamilyPolicy::RequireDualStack),
    ];
    let families = prop_oneof![
        Just(vec![Family::V4]),
        Just(vec![Family::V6]),
        Just(vec![Family::V4, Family::V6]),
        Just(vec![Family::V6, Family::V4]),
    ];
    let requested = prop_oneof![
        6 => Just(vec![]),
        2 => (0u32..34).prop_map(|o| vec![v4(o)]),
        1 => (0u128..17).prop_map(|o| vec![v6(o)]),
        1 => ((0u32..32), (0u128..16)).prop_map(|(a, b)| vec![v4(a), v6(b)]),
    ];
    let traffic = prop_oneof![
        3 => Just(TrafficPolicy::Cluster),
        1 => (0u8..2).prop_map(|s| TrafficPolicy::Local {
            pod_selector: [("pod".to_string(), format!("p{s}"))].into()
        }),
    ];
    (
        0usize..6,
        any::<bool>(),
        any::<bool>(),
        policy,
        families,
        requested,
        prop::option::weighted(0.15, 0usize..3),
        prop::option::weighted(0.4, 0usize..2),
        prop::collection::btree_set(80u16..83, 0..3),
        traffic,
    )
        .prop_map(
            |(i, app, team, policy, families, requested, pool, sharing, ports, traffic)| {
                let mut r =
                    ServiceRequest::new(ServiceKey::new(NAMESPACES[i % 2], format!("svc{i}")));
                // Creation order differs from key order so load's tie-breaking is exercised.
                r.created = (6 - i as i64) / 2;
                if app {
                    r.labels = [("app".to_string(), "a".to_string())].into();
                }
                if team {
                    r.namespace_labels = Arc::new([("team".to_string(), "x".to_string())].into());
                }
                r.ip_family_policy = policy;
                r.ip_families = families;
                r.requested_ips = requested;
                r.requested_pool = pool.map(|p| PoolName(format!("pool{p}")));
                r.sharing_key = sharing.map(|k| SharingKey(format!("key{k}")));
                r.ports = ports
                    .into_iter()
                    .map(|port| ServicePort {
                        port,
                        protocol: Protocol::Tcp,
                    })
                    .collect();
                r.traffic_policy = traffic;
                r
            },
        )
}

#[derive(Clone, Debug)]
enum Op {
    SetPool(PoolSpec),
    RemovePool(usize),
    Assign(ServiceRequest),
    Reassign(usize),
    Release(usize),
    Later(u64),
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => pool_strategy().prop_map(Op::SetPool),
        1 => (0usize..3).prop_map(Op::RemovePool),
        6 => request_strategy().prop_map(Op::Assign),
        1 => (0usize..6).prop_map(Op::Reassign),
        2 => (0usize..6).prop_map(Op::Release),
        1 => (0u64..400).prop_map(Op::Later),
    ]
}

fn svc_key(i: usize) -> ServiceKey {
    ServiceKey::new(NAMESPACES[i % 2], format!("svc{i}"))
}

fn in_pool(p: &PoolSpec, ip: IpAddr) -> bool {
    p.ranges.contains(ip)
        && !(p.avoid_buggy_ips && matches!(ip, IpAddr::V4(a) if is_buggy_v4(a.into())))
}

/// The allocation rules, restated independently of the allocator.
fn naive_selected(p: &PoolSpec, r: &ServiceRequest) -> bool {
    let Some(a) = &p.allocation else { return true };
    let ns = (a.namespaces.is_empty() && a.namespace_selectors.is_empty())
        || a.namespaces.contains(&r.key.namespace)
        || a.namespace_selectors
            .iter()
            .any(|s| s.matches(&*r.namespace_labels));
    let svc =
        a.service_selectors.is_empty() || a.service_selectors.iter().any(|s| s.matches(&r.labels));
    ns && svc
}

fn naive_may_hold(p: &PoolSpec, r: &ServiceRequest, ip: IpAddr) -> bool {
    in_pool(p, ip)
        && naive_selected(p, r)
        && match &r.requested_pool {
            Some(rp) => *rp == p.name,
            None => p.auto_assign || r.requested_ips.contains(&ip),
        }
}

fn universe() -> Vec<IpAddr> {
    (0..34).map(v4).chain((0..17).map(v6)).collect()
}

fn check(
    a: &Allocator,
    pools: &BTreeMap<PoolName, PoolSpec>,
    requests: &BTreeMap<ServiceKey, ServiceRequest>,
    t: Instant,
) -> Result<(), TestCaseError> {
    let mut by_ip: BTreeMap<IpAddr, Vec<&ServiceRequest>> = BTreeMap::new();
    let mut attributed: BTreeMap<IpAddr, PoolName> = BTreeMap::new();
    for (key, r) in requests {
        let addrs = a.assignment(key).unwrap();
        // Families match the policy.
        let fams: Vec<Family> = addrs.iter().map(|x| Family::of(x.ip)).collect();
        let distinct: BTreeSet<Family> = fams.iter().copied().collect();
        prop_assert_eq!(
            distinct.len(),
            fams.len(),
            "two addresses of one family: {:?}",
            addrs
        );
        let first = r.ip_families.first().copied().unwrap_or(Family::V4);
        match r.ip_family_policy {
            IpFamilyPolicy::SingleStack => {
                prop_assert!(
                    fams.len() <= 1 && fams.iter().all(|f| *f == first),
                    "{:?} {:?}",
                    r,
                    addrs
                );
            }
            IpFamilyPolicy::RequireDualStack => {
                prop_assert!(fams.len() != 1, "half dual stack: {:?}", addrs)
            }
            IpFamilyPolicy::PreferDualStack => {
                prop_assert!(
                    fams.iter()
                        .all(|f| r.ip_families.contains(f) || r.ip_families.is_empty())
                )
            }
        }
        for x in &addrs {
            // Every held address is in a pool the Service may use, and it is what it asked.
            prop_assert!(
                pools.values().any(|p| naive_may_hold(p, r, x.ip)),
                "{} holds {} through no usable pool",
                key,
                x.ip
            );
            if !r.requested_ips.is_empty() {
                prop_assert!(r.requested_ips.contains(&x.ip));
            }
            // The attributed pool exists and covers the address.
            let p = pools.get(&x.pool);
            prop_assert!(
                p.is_some_and(|p| in_pool(p, x.ip)),
                "{} attributed to {}",
                x.ip,
                x.pool
            );
            if let Some(prev) = attributed.insert(x.ip, x.pool.clone()) {
                prop_assert_eq!(prev, x.pool.clone(), "one address, two attributions");
            }
            by_ip.entry(x.ip).or_default().push(r);
        }
    }
    // No address held twice, except by a compatible sharing group.
    for (ip, users) in &by_ip {
        let mut keys: Vec<ServiceKey> = users.iter().map(|r| r.key.clone()).collect();
        keys.sort();
        prop_assert_eq!(a.holders(*ip), keys);
        if users.len() > 1 {
            for (i, x) in users.iter().enumerate() {
                prop_assert!(x.sharing_key.is_some(), "{} held twice without sharing", ip);
                for y in &users[i + 1..] {
                    prop_assert_eq!(&x.sharing_key, &y.sharing_key);
                    prop_assert_eq!(&x.traffic_policy, &y.traffic_policy);
                    // Sharing groups never overlap ports.
                    prop_assert!(
                        x.ports.iter().all(|p| !y.ports.contains(p)),
                        "ports overlap on {}",
                        ip
                    );
                }
            }
        }
    }
    // Counters match a count over the (small) universe.
    for (name, p) in pools {
        let c = a.pool_counters(name).unwrap();
        for fam in [Family::V4, Family::V6] {
            let members: Vec<IpAddr> = universe()
                .into_iter()
                .filter(|ip| Family::of(*ip) == fam && in_pool(p, *ip))
                .collect();
            let held = members.iter().filter(|ip| by_ip.contains_key(ip)).count() as u128;
            let assigned = attributed
                .iter()
                .filter(|(ip, n)| Family::of(**ip) == fam && *n == name)
                .count() as u128;
            let got = if fam == Family::V4 { c.v4 } else { c.v6 };
            prop_assert_eq!(
                got,
                FamilyCounters {
                    assigned,
                    available: members.len() as u128 - held
                },
                "{} {}",
                name,
                fam
            );
        }
    }
    // The run sets are exactly the maximal runs of held and recently freed addresses.
    let occupied: BTreeSet<u32> =
        a.v4.owner
            .keys()
            .chain(a.v4.recent.keys())
            .copied()
            .collect();
    let lo = V4_BASE - 300;
    let mut plain = RunSet::new(false);
    let mut bridged = RunSet::new(true);
    for x in &occupied {
        plain.insert(*x);
        bridged.insert(*x);
    }
    prop_assert_eq!(a.v4.runs.runs(), plain.runs());
    let avoiding = pools
        .values()
        .any(|p| p.avoid_buggy_ips && !p.ranges.v4.is_empty());
    prop_assert_eq!(
        a.v4.bridged.as_ref().map(RunSet::runs),
        avoiding.then(|| bridged.runs())
    );
    prop_assert!(occupied.iter().all(|x| *x >= lo));
    // load() of the current assignments rebuilds an identical state.
    let mut fresh = Allocator::new(a.reuse_delay);
    for p in pools.values() {
        fresh.set_pool(p.clone(), t);
    }
    let report = fresh.load(a.export());
    prop_assert_eq!(report.rejected, vec![]);
    prop_assert_eq!(fresh.export(), a.export());
    for name in pools.keys() {
        prop_assert_eq!(fresh.pool_counters(name), a.pool_counters(name));
    }
    prop_assert_eq!(fresh.unsatisfied(), a.unsatisfied());
    Ok(())
}

/// What the reconciler does after a pool edit: re-allocate the Services that lost an
/// address, then retry those still lacking one.
fn reconcile_pool_change(
    a: &mut Allocator,
    change: PoolChange,
    t: Instant,
) -> Result<(), TestCaseError> {
    for inv in &change.invalidated {
        prop_assert!(
            !a.assignment(&inv.service)
                .unwrap()
                .iter()
                .any(|x| x.ip == inv.ip)
        );
    }
    let lost: BTreeSet<ServiceKey> = change.invalidated.into_iter().map(|i| i.service).collect();
    for k in lost
        .iter()
        .chain(a.unsatisfied().iter().filter(|k| !lost.contains(k)))
    {
        prop_assert!(a.reassign(k, t).is_some());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn random_pool_and_service_edits_keep_every_invariant(ops in prop::collection::vec(op_strategy(), 1..30)) {
        let mut t = Instant::now();
        let mut a = Allocator::new(Duration::from_secs(300));
        let mut pools: BTreeMap<PoolName, PoolSpec> = BTreeMap::new();
        let mut requests: BTreeMap<ServiceKey, ServiceRequest> = BTreeMap::new();
        for op in ops {
            match op {
                Op::SetPool(p) => {
                    pools.insert(p.name.clone(), p.clone());
                    let change = a.set_pool(p, t);
                    reconcile_pool_change(&mut a, change, t)?;
                }
                Op::RemovePool(i) => {
                    let name = PoolName(format!("pool{i}"));
                    pools.remove(&name);
                    let change = a.remove_pool(&name, t);
                    reconcile_pool_change(&mut a, change, t)?;
                }
                Op::Assign(r) => {
                    requests.insert(r.key.clone(), r.clone());
                    let before = a.assignment(&r.key);
                    match a.assign(r.clone(), t) {
                        Ok(got) => {
                            prop_assert_eq!(Some(got.addresses.clone()), a.assignment(&r.key));
                            prop_assert_eq!(got.changed, before.unwrap_or_default() != got.addresses);
                            if r.ip_family_policy != IpFamilyPolicy::PreferDualStack {
                                prop_assert!(got.unmet.is_empty());
                            }
                        }
                        Err(_) => {
                            if r.ip_family_policy != IpFamilyPolicy::PreferDualStack {
                                // Refused: nothing it may not keep.
                                let held = a.assignment(&r.key).unwrap();
                                prop_assert!(held.is_empty() || r.ip_family_policy == IpFamilyPolicy::SingleStack && held.len() <= 1);
                            }
                        }
                    }
                }
                Op::Reassign(i) => {
                    let k = svc_key(i);
                    let got = a.reassign(&k, t);
                    prop_assert_eq!(got.is_some(), requests.contains_key(&k));
                }
                Op::Release(i) => {
                    let k = svc_key(i);
                    requests.remove(&k);
                    a.release(&k, t);
                    prop_assert_eq!(a.assignment(&k), None);
                }
                Op::Later(s) => t += Duration::from_secs(s),
            }
            check(&a, &pools, &requests, t)?;
        }
        // Nothing is held by a Service that no longer exists.
        prop_assert_eq!(a.service_count(), requests.len());
    }

    #[test]
    fn pool_edits_invalidate_exactly_the_services_that_lost_an_address(
        setup in prop::collection::vec(op_strategy(), 1..20),
        edit in pool_strategy(),
    ) {
        let t = Instant::now();
        let mut a = Allocator::new(Duration::from_secs(300));
        for op in setup {
            match op {
                Op::SetPool(p) => { a.set_pool(p, t); }
                Op::Assign(r) => { let _ = a.assign(r, t); }
                Op::Release(i) => { a.release(&svc_key(i), t); }
                _ => {}
            }
        }
        let before: BTreeMap<ServiceKey, Vec<AssignedAddress>> =
            a.export().into_iter().map(|e| (e.request.key.clone(), a.assignment(&e.request.key).unwrap())).collect();
        let change = a.set_pool(edit, t);
        let lost: BTreeSet<(ServiceKey, IpAddr)> = change.invalidated.iter().map(|i| (i.service.clone(), i.ip)).collect();
        let moved: BTreeSet<(ServiceKey, IpAddr)> = change.reattributed.iter().map(|r| (r.service.clone(), r.ip)).collect();
        for (k, old) in before {
            let new = a.assignment(&k).unwrap();
            for x in &old {
                match new.iter().find(|n| n.ip == x.ip) {
                    None => prop_assert!(lost.contains(&(k.clone(), x.ip)), "{} lost {} unreported", k, x.ip),
                    Some(n) => {
                        prop_assert!(!lost.contains(&(k.clone(), x.ip)));
                        prop_assert_eq!(n.pool != x.pool, moved.contains(&(k.clone(), x.ip)));
                    }
                }
            }
            // Nothing else moves: no new addresses appear.
            prop_assert!(new.iter().all(|n| old.iter().any(|o| o.ip == n.ip)));
        }
    }
}
