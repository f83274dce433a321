//! Figures of issue 5's benchmark (the controller on a real API server), printed and recorded
//! (`FERROLB_BENCH_OUT`, contract in e2e/src/benchjson.rs), never asserted; ignored by
//! default, run by `make bench`:
//!
//!     cargo build --bins && cargo test -p ferrolb-e2e --test controller_bench -- --ignored --nocapture --test-threads 1
//!
//! Every Service here is IPv6 single stack without node ports (10,000 would exhaust the node
//! port range) and without a selector (nothing for the EndpointSlice controller), asks for
//! its pool by the `ferrolb.io/address-pool` annotation, and the pool (an IPv6 /112 of
//! 2001:db8::/32, `autoAssign: false`) serves no one else. Each test has its
//! own namespace and pool and deletes both at the end (the namespace first, and waits until
//! both are gone, at most a minute: see `cleanup`), so the lab is left as it was.
//!
//! "Seen assigned" is always the arrival, in this process, of a watch event (`Api::watch` on
//! the namespace's Services, `ADDED` or `MODIFIED`) carrying a non-empty
//! `status.loadBalancer.ingress` for the Service, timestamped with `Instant::now()` as the
//! event is decoded. The watch is started before the first create and is known to be
//! established: the API server has answered the watch request (its response headers are in)
//! before anything is timed. Nothing is polled.
//!
//! How each figure is taken (`FERROLB_BENCH_SIZE=smoke` runs the sizes in brackets):
//!
//! - `controller_idle` — 200 [10] Services created one by one in a quiet lab: the clock
//!   starts just before the create request is sent and stops when the watch delivers the
//!   Service with an address; the next Service is created only after that. Included: the API
//!   write, the controller's watch event, allocation, the status patch, and the API server's
//!   watch fan-out back to this process. Target p99 < 100 ms.
//! - `controller_bulk` — 10,000 [50] Services created at once (48 create requests in flight):
//!   from just before the first create request is sent to the watch event of the last
//!   Service to get an address (target < 30 s), and, as a separate figure, to the return of
//!   the last create request (the API server's own pace; no target). The CPU seconds each lab
//!   process spent during the bulk are printed (not recorded): on the two-core lab machine
//!   the API server shares the cores with the speakers and the controller-manager.
//! - `controller_memory` — once all of the bulk's Services are seen assigned, `VmHWM` (the
//!   kernel's peak resident set since the process started) of the controller replica that
//!   holds the Lease, from `/proc/<pid>/status` (target < 64 MiB at 10,000). `system_bench`'s
//!   `system_memory` takes the largest replica with speakers and BGP running; this is the
//!   leader alone, so the two are kept apart.
//!
//! The tests run in name order (libtest sorts them): `a_` first, so that the idle figure is
//! taken before the bulk has loaded the lab.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod controller_common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use controller_common::{controller_pid, ingress, pool, service, wait_leader};
use ferrolb_e2e::benchjson::{self, Record, Stat};
use ferrolb_e2e::state::{CONTROLLER_REPLICAS, Part, Paths, State};
use ferrolb_e2e::{Lab, TestNamespace, poll};
use futures::{StreamExt, TryStreamExt};
use ipnet::Ipv6Net;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

/// Create requests in flight during the bulk.
const IN_FLIGHT: usize = 48;

fn emit(record: Record) {
    benchjson::emit(&record).unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// An IPv6 LoadBalancer Service (`externalTrafficPolicy: Cluster`) without node ports and
/// without a selector, asking pool `pool`. The controller reads the selector only for Local
/// policy; without one the controller-manager makes no EndpointSlice per Service, work on the
/// shared two-core machine that is not the controller's.
fn bench_service(name: &str, pool: &str) -> Service {
    let mut svc = service(
        name,
        json!({"ferrolb.io/address-pool": pool}),
        json!({"ipFamilyPolicy": "SingleStack", "ipFamilies": ["IPv6"],
               "allocateLoadBalancerNodePorts": false}),
    );
    if let Some(spec) = svc.spec.as_mut() {
        spec.selector = None;
    }
    svc
}

/// CPU seconds of this benchmark and of every lab process, by name.
fn cpu_by_process() -> Vec<(String, f64)> {
    let state = State::load(&Paths::from_build()).unwrap();
    let mut v: Vec<(String, f64)> = state
        .procs
        .iter()
        .filter_map(|(part, p)| {
            let id = p.id?;
            Some((part.to_string(), benchjson::cpu_seconds(id.pid).ok()?))
        })
        .collect();
    v.extend(
        benchjson::cpu_seconds(std::process::id())
            .ok()
            .map(|s| ("this benchmark".to_string(), s)),
    );
    v
}

/// Prints the CPU seconds each process spent between two `cpu_by_process` readings, most
/// first: where the machine's two cores went.
fn print_cpu(what: &str, before: &[(String, f64)], after: &[(String, f64)], wall: Duration) {
    let mut spent: Vec<(String, f64)> = after
        .iter()
        .filter_map(|(name, a)| {
            let b = before.iter().find(|(n, _)| n == name)?.1;
            Some((name.clone(), a - b))
        })
        .collect();
    spent.sort_by(|x, y| y.1.total_cmp(&x.1));
    println!(
        "CPU seconds during {what} ({:.1} s of wall time):",
        wall.as_secs_f64()
    );
    for (name, s) in spent.iter().filter(|(_, s)| *s >= 0.1) {
        println!("  {name}: {s:.1} s");
    }
}

/// The moment each Service of a namespace was first seen with an address, from a watch on
/// the namespace's Services that is established before `start` returns.
struct Assigned {
    rx: mpsc::UnboundedReceiver<(String, Instant)>,
    task: tokio::task::JoinHandle<()>,
}

impl Assigned {
    async fn start(api: Api<Service>) -> Assigned {
        let (ready_tx, ready_rx) = oneshot::channel();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut rv = api
                .list_metadata(&ListParams::default())
                .await
                .unwrap()
                .metadata
                .resource_version
                .unwrap();
            let mut seen = HashSet::new();
            let mut ready = Some(ready_tx);
            loop {
                // Returns once the API server has answered (response headers in): from then
                // on every change after `rv` reaches this stream. The server ends a watch
                // after its timeout; it is resumed from the last resourceVersion seen.
                let events = api
                    .watch(&WatchParams::default().timeout(290), &rv)
                    .await
                    .unwrap();
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
                let mut events = events.boxed();
                while let Some(event) = events.try_next().await.unwrap() {
                    let now = Instant::now();
                    match event {
                        WatchEvent::Added(s) | WatchEvent::Modified(s) => {
                            if let Some(v) = &s.metadata.resource_version {
                                rv.clone_from(v);
                            }
                            let name = s.metadata.name.clone().unwrap_or_default();
                            if !ingress(&s).is_empty() && seen.insert(name.clone()) {
                                // The receiver may be gone at the end of a test.
                                let _ = tx.send((name, now));
                            }
                        }
                        WatchEvent::Deleted(s) => {
                            if let Some(v) = s.metadata.resource_version {
                                rv = v;
                            }
                        }
                        WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                        WatchEvent::Error(e) => panic!("watch of Services failed: {e:?}"),
                    }
                }
            }
        });
        ready_rx
            .await
            .expect("the watch on Services is established");
        Assigned { rx, task }
    }

    /// The next Service seen assigned, within `within`.
    async fn next(&mut self, within: Duration) -> Option<(String, Instant)> {
        tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()
    }
}

impl Drop for Assigned {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A namespace and a /112 pool serving it alone (by annotation, `autoAssign: false`).
async fn setup(lab: &Lab, prefix: &str, net: &str) -> (TestNamespace, controller_common::Pool) {
    let ns = lab.namespace(prefix).await.unwrap();
    let net: Ipv6Net = net.parse().unwrap();
    let pool = pool(
        lab,
        prefix,
        json!({"addresses": [net.to_string()], "autoAssign": false}),
    )
    .await;
    (ns, pool)
}

/// Deletes the namespace (and so its Services) and waits until it is gone, then deletes the
/// pool and waits until it is gone: the lab is left as it was. When the namespace is still
/// there after `within` (10,000 Services are deleted at the API server's pace, minutes on the
/// two-core lab), the pool is deleted anyway and the rest is left to the namespace controller
/// (and to the lab's teardown when this program ends): a figure is not worth a program that
/// overruns its deadline.
async fn cleanup(lab: &Lab, ns: TestNamespace, pool: controller_common::Pool, within: Duration) {
    let started = Instant::now();
    let namespaces: Api<Namespace> = Api::all(lab.client().await);
    namespaces
        .delete(&ns.name, &DeleteParams::default())
        .await
        .unwrap();
    let gone = poll(&format!("namespace {} gone", ns.name), within, || async {
        match namespaces.get_opt(&ns.name).await {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err("still there".to_string()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    let name = pool.name.clone();
    drop(pool);
    if let Err(e) = gone {
        println!(
            "cleanup: {e}; pool {name} deleted, the namespace left to the namespace controller"
        );
        return;
    }
    poll(&format!("pool {name} gone"), within, || async {
        let out = lab
            .kubectl(&[
                "get",
                "ipaddresspools.ferrolb.io",
                "--ignore-not-found",
                "-o",
                "name",
            ])
            .await
            .map_err(|e| e.to_string())?;
        if out.lines().any(|l| l.ends_with(&format!("/{name}"))) {
            Err("still there".to_string())
        } else {
            Ok(())
        }
    })
    .await
    .unwrap();
    println!(
        "cleanup: namespace {} and pool {name} gone after {:?}",
        ns.name,
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn a_idle_service_created_to_status_written() {
    let n: usize = benchjson::size().pick(10, 200);
    let lab = Lab::exclusive().await;
    let (ns, pool) = setup(&lab, "cbench-idle", "2001:db8:cb:1::/112").await;
    // A leader is in place before anything is timed (the lab may have just started).
    let leader = wait_leader(&lab, None, Duration::from_secs(60)).await;
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let mut assigned = Assigned::start(api.clone()).await;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("idle-{i}");
        let sent = Instant::now();
        api.create(&PostParams::default(), &bench_service(&name, &pool.name))
            .await
            .unwrap();
        let (seen, at) = assigned
            .next(Duration::from_secs(30))
            .await
            .unwrap_or_else(|| panic!("{}/{name} not assigned within 30 s", ns.name));
        assert_eq!(seen, name, "only the Service just created gets an address");
        let took = at.saturating_duration_since(sent);
        println!("sample {i:3}: {name} assigned {took:?} after the create request");
        samples.push(ms(took));
    }
    println!("(controller-{leader} led)");
    emit(
        Record::new(
            "controller_idle",
            "Service create request → status.loadBalancer.ingress seen by a watch (one at a time)",
            "ms",
            n as u64,
            samples,
        )
        .target(Stat::P99, 100.0),
    );
    drop(assigned);
    cleanup(&lab, ns, pool, Duration::from_secs(60)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn b_bulk_services_to_all_assigned_and_controller_rss() {
    let n: usize = benchjson::size().pick(50, 10_000);
    let full = n == 10_000;
    let lab = Lab::exclusive().await;
    // 65,536 addresses: the 10k Services take a sixth of the pool.
    let (ns, pool) = setup(&lab, "cbench-bulk", "2001:db8:cb:2::/112").await;
    let leader = wait_leader(&lab, None, Duration::from_secs(60)).await;
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let mut assigned = Assigned::start(api.clone()).await;

    let cpu_before = cpu_by_process();
    let first_sent = Instant::now();
    let last_returned = futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            let svc = bench_service(&format!("bulk-{i}"), &pool.name);
            async move {
                api.create(&PostParams::default(), &svc).await.unwrap();
                Instant::now()
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .fold(first_sent, |last, t| async move { last.max(t) })
        .await;
    let created = last_returned - first_sent;
    println!("{n} Services: created in {created:?} ({IN_FLIGHT} requests in flight)");

    // The creates take the API server as long as they take (minutes for 10k on two cores);
    // what the controller is given is two minutes after the last create returned, so that a
    // slow API server gives a figure, and only a controller that stops assigning fails.
    let mut names = HashSet::with_capacity(n);
    let mut last_seen = first_sent;
    let grace = Duration::from_secs(120);
    while names.len() < n {
        let left = grace.saturating_sub(last_returned.elapsed());
        match assigned.next(left).await {
            Some((name, at)) => {
                assert!(names.insert(name), "a Service reported assigned twice");
                last_seen = last_seen.max(at);
            }
            None => panic!(
                "{} of {n} Services assigned {grace:?} after the last create returned",
                names.len()
            ),
        }
    }
    let all = last_seen - first_sent;
    println!("{n} Services: all assigned {all:?} after the first create request");
    print_cpu(
        "the bulk",
        &cpu_before,
        &cpu_by_process(),
        first_sent.elapsed(),
    );

    // The leader after the bulk (a change of leader during it would be a figure of its own).
    let leader_after = wait_leader(&lab, None, Duration::from_secs(60)).await;
    assert_eq!(leader, leader_after, "the leader changed during the bulk");
    let state = State::load(&Paths::from_build()).unwrap();
    for r in 1..=CONTROLLER_REPLICAS {
        if let Some(id) = state.procs.get(&Part::Controller(r)).and_then(|p| p.id) {
            let hwm = benchjson::peak_rss_mib(id.pid).unwrap();
            let rss = benchjson::rss_mib(id.pid).unwrap();
            let role = if r == leader { "leader" } else { "standby" };
            println!("  controller-{r} ({role}): peak RSS {hwm:.1} MiB, now {rss:.1} MiB");
        }
    }
    let peak = benchjson::peak_rss_mib(controller_pid(leader)).unwrap();

    let bulk = Record::new(
        "controller_bulk",
        "Services created at once: first create request → last Service seen assigned by a watch",
        "s",
        n as u64,
        vec![all.as_secs_f64()],
    );
    let creation = Record::new(
        "controller_bulk",
        "Services created at once: first create request → last create request returned (API server alone)",
        "s",
        n as u64,
        vec![created.as_secs_f64()],
    );
    let memory = Record::new(
        "controller_memory",
        "leading controller peak RSS (VmHWM) with the bulk's Services assigned",
        "MiB",
        n as u64,
        vec![peak],
    );
    let (bulk, memory) = if full {
        (
            bulk.target(Stat::Worst, 30.0),
            memory.target(Stat::Worst, 64.0),
        )
    } else {
        (bulk, memory)
    };
    for r in [bulk, creation, memory] {
        emit(r);
    }
    drop(assigned);
    // At most a minute, as the module says: deleting 10,000 Services takes the lab's API
    // server many minutes, which would only push the program past the runner's deadline.
    cleanup(&lab, ns, pool, Duration::from_secs(60)).await;
}
