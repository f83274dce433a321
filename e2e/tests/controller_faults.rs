//! ferrolb-controller under faults, on the lab's real API server (issue 5): addresses stick
//! through controller kills while hundreds of Services come and go, and the standby replica
//! takes over from a dead leader within the lease duration.
//!
//! Both tests kill controllers, so each takes the lab for itself (`Lab::exclusive`) and
//! leaves both replicas running when it passes.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod controller_common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use controller_common::*;
use ferrolb_e2e::lab::CONTROLLER_LEASE_DURATION;
use ferrolb_e2e::state::CONTROLLER_REPLICAS;
use ferrolb_e2e::{Lab, Target, poll};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::DeleteParams;

/// The sticky test's Services, and how many addresses their pool has.
const SERVICES: usize = 300;
const POOL_SIZE: usize = 256;
/// Services deleted in the second phase.
const DELETED: usize = 100;
/// Requests in flight at once while creating and deleting.
const IN_FLIGHT: usize = 8;

/// How long the controllers may take to settle after a restart: a Lease left by a crashed
/// leader first has to expire, then 300 Services are loaded and reconciled on a busy machine.
const SETTLE: Duration = Duration::from_secs(120);

/// Waits until the namespace's Services are exactly `want` by condition reason.
async fn wait_counts(
    api: &Api<Service>,
    want: &[(&str, usize)],
) -> BTreeMap<String, (String, Vec<String>)> {
    let want: BTreeMap<String, usize> = want.iter().map(|(r, n)| (r.to_string(), *n)).collect();
    poll(&format!("services settled as {want:?}"), SETTLE, || async {
        let snap = snapshot(api).await;
        let counts = by_reason(&snap);
        if counts == want {
            Ok(snap)
        } else {
            Err(format!("{counts:?}"))
        }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn addresses_stick_through_controller_kills_during_creation_and_deletion() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("ctl-sticky").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-sticky", &ns, &["2001:db8:5c::/120"]).await;
    let api = services(&lab, &ns).await;
    let recorder = Recorder::start(api.clone());
    let names: Vec<String> = (0..SERVICES).map(|i| format!("s{i:03}")).collect();

    // Phase 1: `lab kill controller` (both replicas, SIGTERM) a third of the way through
    // creating 300 Services; the rest are created while no controller runs.
    let created = AtomicUsize::new(0);
    let create_all = names.iter().map(|n| {
        let api = &api;
        let created = &created;
        async move {
            post(api, &v6_service(n)).await;
            created.fetch_add(1, Ordering::SeqCst);
        }
    });
    let create_all = futures::stream::iter(create_all).for_each_concurrent(IN_FLIGHT, |f| f);
    let kill = async {
        poll("a third of the services created", SETTLE, || async {
            let n = created.load(Ordering::SeqCst);
            if n >= SERVICES / 3 {
                Ok(())
            } else {
                Err(format!("{n} created"))
            }
        })
        .await
        .unwrap();
        let held = recorder.ingress();
        lab.kill(Target::Controller(None)).await.unwrap();
        held
    };
    let ((), held_at_kill) = tokio::join!(create_all, kill);
    let held_at_kill: BTreeMap<String, Vec<String>> = held_at_kill
        .into_iter()
        .filter(|(_, ips)| !ips.is_empty())
        .collect();
    println!(
        "first kill: {} services created, {} held an address",
        created.load(Ordering::SeqCst),
        held_at_kill.len()
    );
    assert!(
        !held_at_kill.is_empty(),
        "no Service had an address when the controllers were killed: nothing was put to the test"
    );
    lab.restart(Target::Controller(None)).await.unwrap();
    let restarted = Instant::now();
    let after_creation = wait_counts(
        &api,
        &[
            ("Allocated", POOL_SIZE),
            ("PoolExhausted", SERVICES - POOL_SIZE),
        ],
    )
    .await;
    println!(
        "after the first restart: settled in {:?}",
        restarted.elapsed()
    );
    for (name, ips) in &held_at_kill {
        assert_eq!(&after_creation[name].1, ips, "service {name} moved");
    }
    assert!(
        held_twice(&after_creation).is_empty(),
        "{:?}",
        held_twice(&after_creation)
    );
    assert_eq!(recorder.violations(), Vec::<String>::new());

    // Phase 2: delete 100 Services holding addresses; crash both replicas (SIGKILL: no Lease
    // released, writes cut off) after 20 deletions, while most of the 44 waiting Services
    // still wait. They must all get addresses after the restart, the others keep theirs.
    let doomed: Vec<String> = after_creation
        .iter()
        .filter(|(_, (_, ips))| !ips.is_empty())
        .map(|(n, _)| n.clone())
        .take(DELETED)
        .collect();
    let deleted = AtomicUsize::new(0);
    let delete_all = doomed.iter().map(|n| {
        let api = &api;
        let deleted = &deleted;
        async move {
            api.delete(n, &DeleteParams::default()).await.unwrap();
            deleted.fetch_add(1, Ordering::SeqCst);
        }
    });
    let delete_all = futures::stream::iter(delete_all).for_each_concurrent(IN_FLIGHT, |f| f);
    let crash = async {
        poll("20 services deleted", SETTLE, || async {
            let n = deleted.load(Ordering::SeqCst);
            if n >= 20 {
                Ok(())
            } else {
                Err(format!("{n} deleted"))
            }
        })
        .await
        .unwrap();
        for replica in 1..=CONTROLLER_REPLICAS {
            crash_controller(replica);
        }
        let waiting = recorder
            .ingress()
            .values()
            .filter(|ips| ips.is_empty())
            .count();
        (deleted.load(Ordering::SeqCst), waiting)
    };
    let ((), (deleted_at_crash, waiting_at_crash)) = tokio::join!(delete_all, crash);
    println!(
        "crash: {deleted_at_crash} of {DELETED} deletions done, {waiting_at_crash} services waiting for an address"
    );
    assert!(
        waiting_at_crash > 0,
        "every waiting Service was served before the crash: the restart had nothing to allocate"
    );
    lab.restart(Target::Controller(None)).await.unwrap();
    let restarted = Instant::now();
    let after_deletion = wait_counts(&api, &[("Allocated", SERVICES - DELETED)]).await;
    println!(
        "after the crash: settled in {:?} (the dead leader's Lease expires first)",
        restarted.elapsed()
    );
    assert!(doomed.iter().all(|n| !after_deletion.contains_key(n)));
    for (name, (_, ips)) in &after_creation {
        if ips.is_empty() || doomed.contains(name) {
            continue;
        }
        assert_eq!(&after_deletion[name].1, ips, "service {name} moved");
    }
    assert!(after_deletion.values().all(|(_, ips)| ips.len() == 1));
    assert!(
        held_twice(&after_deletion).is_empty(),
        "{:?}",
        held_twice(&after_deletion)
    );
    assert_eq!(recorder.violations(), Vec::<String>::new());

    // The pool's status agrees.
    poll(
        "the pool's status counting 200 addresses",
        SETTLE,
        || async {
            let s = pool_status(&lab, "ctl-sticky").await;
            // availableIPv6 is a decimal string: an IPv6 pool may hold more than 2^64.
            let available = (POOL_SIZE - (SERVICES - DELETED)).to_string();
            if s["assignedIPv6"] == SERVICES - DELETED && s["availableIPv6"] == available.as_str() {
                Ok(())
            } else {
                Err(s.to_string())
            }
        },
    )
    .await
    .unwrap();
    assert_eq!(controller_panics(), Vec::<String>::new());
}

#[tokio::test]
async fn the_standby_takes_over_within_the_lease_duration_and_allocates() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("ctl-failover").await.unwrap();
    let _pool = ns_pool(&lab, "ctl-failover", &ns, &["2001:db8:5d::/120"]).await;
    let api = services(&lab, &ns).await;
    lab.create_service(&ns, &v6_service("before"))
        .await
        .unwrap();
    let before = wait_allocated(&api, "before").await;

    let leader = wait_leader(&lab, None, SETTLE).await;
    let standby = if leader == 1 { 2 } else { 1 };
    assert_eq!(
        metric(metrics_port(leader), "ferrolb_leader").await,
        Some(1.0)
    );
    assert_eq!(
        metric(metrics_port(standby), "ferrolb_leader").await,
        Some(0.0)
    );

    // A crash: the Lease stays with the dead leader until it expires.
    crash_controller(leader);
    let crashed = Instant::now();
    // The dead leader's last renewal, on its own clock (the same machine's).
    let last_renewal = controller_lease(&lab).await.renew_time.unwrap().0;
    lab.create_service(&ns, &v6_service("after")).await.unwrap();
    // The standby watches the Lease and judges expiry from when it saw the last renewal
    // (milliseconds after it was made, and the crash came after it), so it takes over a
    // lease duration after the crash at most, give or take the watch's and one write's
    // latency: the second allowed here is for those, not for a missed renewal.
    let limit = CONTROLLER_LEASE_DURATION + Duration::from_secs(1);
    assert_eq!(wait_leader(&lab, Some(leader), limit).await, standby);
    let took_over = crashed.elapsed();
    // The same, measured from the last renewal to the new holder's acquireTime: a lease
    // duration and the few milliseconds it takes to see the renewal and write the Lease.
    let acquired = controller_lease(&lab).await.acquire_time.unwrap().0;
    let after_renewal = acquired.duration_since(last_renewal);
    println!("replica {standby} acquired the Lease {after_renewal:#} after the last renewal");
    assert!(
        after_renewal.unsigned_abs() >= CONTROLLER_LEASE_DURATION
            && after_renewal.unsigned_abs() <= CONTROLLER_LEASE_DURATION + Duration::from_secs(1)
            && after_renewal.is_positive(),
        "{after_renewal:#}"
    );
    let after = wait_allocated(&api, "after").await;
    let allocated = crashed.elapsed();
    println!(
        "leader {leader} crashed: replica {standby} took over after {took_over:?} (lease duration {CONTROLLER_LEASE_DURATION:?}), \
         and allocated a new Service {allocated:?} after the crash"
    );
    assert!(took_over <= limit, "{took_over:?}");
    assert_eq!(
        metric(metrics_port(standby), "ferrolb_leader").await,
        Some(1.0)
    );
    assert_eq!(ingress(&api.get("before").await.unwrap()), ingress(&before));
    assert_ne!(ingress(&after), ingress(&before));

    // The crashed replica comes back as the standby; a graceful stop of the leader
    // (`lab kill controller N`: SIGTERM) gives the Lease up, so the handover takes a retry
    // period or so, not a lease duration.
    lab.restart(Target::Controller(Some(leader))).await.unwrap();
    poll("the restarted replica standing by", SETTLE, || async {
        match metric(metrics_port(leader), "ferrolb_leader").await {
            Some(0.0) => Ok(()),
            m => Err(format!("ferrolb_leader {m:?}")),
        }
    })
    .await
    .unwrap();
    let stopped = Instant::now();
    lab.kill(Target::Controller(Some(standby))).await.unwrap();
    assert_eq!(wait_leader(&lab, Some(standby), limit).await, leader);
    let handed_over = stopped.elapsed();
    println!(
        "replica {standby} stopped gracefully: replica {leader} took over after {handed_over:?}"
    );
    assert!(
        handed_over < CONTROLLER_LEASE_DURATION,
        "the stopped leader did not give its Lease up: {handed_over:?}"
    );
    lab.create_service(&ns, &v6_service("third")).await.unwrap();
    let third = wait_allocated(&api, "third").await;
    let all: std::collections::BTreeSet<_> =
        [ingress(&before), ingress(&after), ingress(&third)].into();
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(ingress(&api.get("before").await.unwrap()), ingress(&before));
    assert_eq!(ingress(&api.get("after").await.unwrap()), ingress(&after));
    lab.restart(Target::Controller(Some(standby)))
        .await
        .unwrap();
}
