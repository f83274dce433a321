//! Figures of issue 7's benchmark (BGP mode), printed and recorded (`FERROLB_BENCH_OUT`,
//! contract in e2e/src/benchjson.rs), never asserted; ignored by default, run by `make bench`:
//!
//!     cargo build --bins && cargo test -p ferrolb-e2e --test speaker_bgp_bench -- --ignored --nocapture --test-threads 1
//!
//! Every arrival at the router is seen by `ip -o -n flb-router monitor route` (the kernel's
//! own route notifications, read as they come), never by polling `ip route`: the monitor is
//! started before anything is timed and proven to be listening by a marker route
//! (`blackhole 2001:db8:ffff::99/128`, added in the router's namespace until the monitor
//! reports it, then removed). A line counts when the program reads it. The lab's BGPPeer here
//! has graceful restart off. Sizes in brackets are `FERROLB_BENCH_SIZE=smoke`'s.
//!
//! - `bgp_service_to_route` — 200 [10] IPv4 Services (198.51.100.20 upward, Cluster policy,
//!   each asking for its address), created one by one and kept until the end. The clock
//!   (`Instant`) starts just before the create request and stops at the first monitor line
//!   giving the address a route with at least one next hop: the API write, the controller's
//!   allocation and status write, the speakers' watch events, the UPDATE to each node's BIRD,
//!   BIRD to the router's BIRD, and the router's BIRD to its kernel. Target p99 < 250 ms. The
//!   same sample's time to the line that shows one next hop per eligible node (all three) is a
//!   second measure without a target, and the number of next hops at first arrival a third.
//! - `bgp_restart` — 10,000 [50] IPv6 Services (2001:db8:198::7:1 upward, in one /112 pool,
//!   without NodePorts: the cluster has too few), created 32 requests at a time; once the
//!   router holds every route with one next hop per node, node2's speaker is restarted
//!   (`lab restart speaker node2`: SIGTERM, then a new process). With graceful restart off
//!   node2's BIRD withdraws its routes with the session, so the router's routes lose node2's
//!   next hop; the program checks that every route lost it.
//!   The start event is the new speaker's log line `bgp session established` for the peer
//!   (its JSON `timestamp`, CLOCK_REALTIME with µs resolution, logged when the state machine
//!   reaches Established; the last such line if there were several); the end event is the
//!   monitor line that gives the last of the routes node2's next hop again, stamped with
//!   `SystemTime` (the same clock) when read. Target < 1 s. Graceful restart on is not
//!   measured: the routes never leave the router then.
//! - `bgp_speaker_memory` — `VmHWM` (the kernel's peak resident set since the process
//!   started, `/proc/<pid>/status`) of each speaker once the router holds all 10,000 [50]
//!   routes (the largest of the three; target < 48 MiB), and of the restarted speaker once it
//!   has announced them all again (same target). system_bench's `system_memory` rows measure
//!   the speakers of a different scenario (Services added in four steps up to 10,000).
//!
//! Each scenario deletes its Services at the end and waits until the router has no route to
//! any of their addresses.
#![allow(clippy::unwrap_used)] // tests may unwrap

mod speaker_bgp_support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ferrolb_e2e::benchjson::{self, Record, Stat};
use ferrolb_e2e::state::{Part, State};
use ferrolb_e2e::topology::{self as t, ROUTER_NS, Topology};
use ferrolb_e2e::{Lab, NodeId, Target, poll};
use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Service;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;
use speaker_bgp_support::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;
use tokio::sync::mpsc;

/// The node whose speaker the restart scenario restarts.
const RESTARTED: NodeId = NodeId(2);

/// The marker route that proves the monitor is listening (nothing else uses this prefix).
const MARKER: &str = "2001:db8:ffff::99/128";

fn emit(record: Record) {
    benchjson::emit(&record).unwrap();
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// A change of one route in the router's kernel table, as `ip monitor route` reported it.
#[derive(Debug, Clone)]
struct RouteEvent {
    /// When the line was read.
    at: Instant,
    wall: SystemTime,
    dst: IpNet,
    deleted: bool,
    /// The nodes among its next hops, sorted (empty when deleted).
    via: Vec<NodeId>,
    /// Its next hops, nodes or not.
    hops: usize,
}

/// One line of `ip -o monitor route`: (deleted, destination, next-hop gateways). `None` for
/// lines that are no unicast route with a destination (e.g. `default`).
fn parse_monitor_line(line: &str) -> Option<(bool, IpNet, Vec<IpAddr>)> {
    // `-o` joins a multipath route's lines with `\`.
    let mut words = line
        .split_whitespace()
        .filter(|w| *w != "\\")
        .skip_while(|w| w.starts_with('['))
        .peekable();
    let deleted = words.next_if_eq(&"Deleted").is_some();
    const TYPES: [&str; 10] = [
        "unicast",
        "local",
        "broadcast",
        "multicast",
        "anycast",
        "blackhole",
        "unreachable",
        "prohibit",
        "throw",
        "nat",
    ];
    while words.next_if(|w| TYPES.contains(w)).is_some() {}
    let dst = words.next()?;
    let dst: IpNet = if dst.contains('/') {
        dst.parse().ok()?
    } else {
        IpNet::from(dst.parse::<IpAddr>().ok()?)
    };
    let mut hops = Vec::new();
    while let Some(w) = words.next() {
        if w == "via" {
            let mut gw = words.next()?;
            if gw == "inet" || gw == "inet6" {
                gw = words.next()?;
            }
            if let Ok(a) = gw.parse() {
                hops.push(a);
            }
        }
    }
    Some((deleted, dst, hops))
}

/// `ip -o monitor route` in the router's namespace, known to be listening; its lines are read
/// (and stamped) by a task of their own as soon as they come.
struct RouteMonitor {
    _child: Child,
    events: mpsc::UnboundedReceiver<RouteEvent>,
    errors: Arc<Mutex<String>>,
}

impl RouteMonitor {
    async fn start(lab: &Lab) -> RouteMonitor {
        let mut child = tokio::process::Command::new("ip")
            // A large receive buffer: a restart changes 10,000 routes twice within a second,
            // and a full socket buffer would lose notifications (ENOBUFS).
            .args([
                "-o", "-n", ROUTER_NS, "-rcvbuf", "67108864", "monitor", "route",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let topo: Topology = lab.topology();
        let (tx, events) = mpsc::unbounded_channel();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let (at, wall) = (Instant::now(), SystemTime::now());
                let Some((deleted, dst, gws)) = parse_monitor_line(&line) else {
                    continue;
                };
                let mut via: Vec<NodeId> = gws
                    .iter()
                    .filter_map(|g| ferrolb_e2e::routing::node_by_addr(&topo, *g))
                    .collect();
                via.sort();
                let hops = gws.len();
                if deleted {
                    via.clear();
                }
                let event = RouteEvent {
                    at,
                    wall,
                    dst,
                    deleted,
                    via,
                    hops: if deleted { 0 } else { hops },
                };
                if tx.send(event).is_err() {
                    return;
                }
            }
        });
        let errors = Arc::new(Mutex::new(String::new()));
        let seen = Arc::clone(&errors);
        let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stderr.next_line().await {
                let mut s = seen.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut monitor = RouteMonitor {
            _child: child,
            events,
            errors,
        };
        let marker: IpNet = MARKER.parse().unwrap();
        let add = ["ip", "-6", "route", "replace", "blackhole", MARKER];
        let mut listening = false;
        for _ in 0..50 {
            lab.exec(ROUTER_NS, &add).await.unwrap();
            if monitor
                .next_for(&marker, Duration::from_millis(200), |e| !e.deleted)
                .await
                .is_some()
            {
                listening = true;
                break;
            }
        }
        let _ = lab
            .exec(
                ROUTER_NS,
                &["ip", "-6", "route", "del", "blackhole", MARKER],
            )
            .await;
        assert!(listening, "ip monitor route reports the marker route");
        monitor
    }

    /// The next event (any route), or `None` when `within` passes first.
    async fn next(&mut self, within: Duration) -> Option<RouteEvent> {
        tokio::time::timeout(within, self.events.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next event for `dst` that `accept` takes, skipping all others.
    async fn next_for(
        &mut self,
        dst: &IpNet,
        within: Duration,
        accept: impl Fn(&RouteEvent) -> bool,
    ) -> Option<RouteEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let e = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .ok()
                .flatten()?;
            if e.dst == *dst && accept(&e) {
                return Some(e);
            }
        }
    }

    /// What `ip monitor` wrote to stderr (e.g. lost notifications).
    fn errors(&self) -> String {
        self.errors.lock().unwrap().clone()
    }
}

/// The scenario's pool (not auto-assigned), a BGPPeer to every node's BIRD with graceful
/// restart off, and a BGPAdvertisement of the pool to it.
async fn bgp_setup(lab: &Lab, name: &str, addresses: &[&str]) -> ClusterObjects {
    apply(
        lab,
        vec![
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPPeer",
                "metadata": {"name": "bgpb-node-bird"},
                "spec": {"peerAddress": "127.0.0.1", "peerASN": t::NODE_ASN,
                    "myASN": t::SPEAKER_ASN, "connectTime": "1s",
                    "enableGracefulRestart": false}}),
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "IPAddressPool",
                "metadata": {"name": name},
                "spec": {"addresses": addresses, "autoAssign": false}}),
            json!({"apiVersion": "ferrolb.io/v1alpha1", "kind": "BGPAdvertisement",
                "metadata": {"name": name},
                "spec": {"ipAddressPools": [name], "peers": ["bgpb-node-bird"]}}),
        ],
    )
    .await;
    let objects = ClusterObjects::new(
        lab,
        vec![
            format!("bgpadvertisement.ferrolb.io/{name}"),
            format!("ipaddresspool.ferrolb.io/{name}"),
            "bgppeer.ferrolb.io/bgpb-node-bird".to_string(),
        ],
    );
    // Nothing is timed while a session is still coming up.
    for n in lab.nodes() {
        poll(
            &format!("{n}'s BIRD has its speaker's session Established"),
            WAIT,
            || async move {
                match node_session_state(lab, n, "ferrolb_speaker").await {
                    Some(s) if s == "Established" => Ok(()),
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await
        .unwrap();
    }
    objects
}

/// Deletes the test's namespace (and so its Services), waits until the router has no route
/// to any of `addrs`, then deletes the cluster objects. More than a thousand Services are
/// not waited for: the lab's API server deletes about 30 a second (10,000 took six minutes),
/// which measures nothing; the lab's teardown at the end of the program removes them.
async fn clean_up(
    lab: &Lab,
    ns: ferrolb_e2e::TestNamespace,
    objects: ClusterObjects,
    addrs: &BTreeSet<IpNet>,
) {
    let started = Instant::now();
    lab.kubectl(&["delete", "namespace", &ns, "--wait=false"])
        .await
        .unwrap();
    if addrs.len() > 1000 {
        println!(
            "cleanup: namespace {} deleted, its {} Services left to the lab's teardown",
            &*ns,
            addrs.len()
        );
        objects.delete();
        drop(ns);
        return;
    }
    poll(
        "the router to drop every route of the scenario",
        Duration::from_secs(600),
        || async {
            let routes = lab.router_routes().await.map_err(|e| e.to_string())?;
            let left = routes.iter().filter(|r| addrs.contains(&r.dst)).count();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} left"))
            }
        },
    )
    .await
    .unwrap();
    objects.delete();
    println!(
        "cleaned up: {} routes gone {:?} after the namespace's deletion",
        addrs.len(),
        started.elapsed()
    );
    drop(ns);
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn a_service_created_to_route_at_the_router() {
    let n: u8 = benchjson::size().pick(10, 200);
    let lab = Lab::exclusive().await;
    let nodes = lab.nodes();
    let objects = bgp_setup(&lab, "bgpb-latency", &["198.51.100.20-198.51.100.219"]).await;
    let ns = lab.namespace("bgpb-latency").await.unwrap();
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let mut monitor = RouteMonitor::start(&lab).await;
    let (mut first, mut all, mut hops_at_first) = (Vec::new(), Vec::new(), Vec::new());
    let mut dsts = BTreeSet::new();
    for i in 0..n {
        let addr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 20 + i));
        let dst = host(addr);
        dsts.insert(dst);
        let name = format!("lat-{i}");
        let created = Instant::now();
        api.create(
            &PostParams::default(),
            &bgp_service(&name, "bgpb-latency", &[addr], Policy::Cluster),
        )
        .await
        .unwrap();
        let arrived = monitor
            .next_for(&dst, WAIT, |e| !e.deleted && e.hops > 0)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no route to {addr} at the router within {WAIT:?} of creating {name} ({})",
                    monitor.errors()
                )
            });
        let complete = if arrived.via == nodes {
            arrived.clone()
        } else {
            monitor
                .next_for(&dst, WAIT, |e| e.via == nodes)
                .await
                .unwrap_or_else(|| panic!("{addr} never routed via every node ({nodes:?})"))
        };
        let (f, a) = (arrived.at - created, complete.at - created);
        println!(
            "sample {i:3}: {addr} routed {f:?} after the create request with {} of {} next hops, via all {a:?}",
            arrived.hops,
            nodes.len()
        );
        first.push(ms(f));
        all.push(ms(a));
        hops_at_first.push(arrived.hops as f64);
    }
    let size = u64::from(n);
    emit(
        Record::new(
            "bgp_service_to_route",
            "Service create request → route with a next hop in the router's kernel",
            "ms",
            size,
            first,
        )
        .target(Stat::P99, 250.0),
    );
    emit(Record::new(
        "bgp_service_to_route",
        "Service create request → route via every eligible node (3) in the router's kernel",
        "ms",
        size,
        all,
    ));
    emit(Record::new(
        "bgp_service_to_route",
        "next hops of the route when it first appears (3 eligible nodes)",
        "next hops",
        size,
        hops_at_first,
    ));
    clean_up(&lab, ns, objects, &dsts).await;
}

/// Peak RSS (VmHWM, MiB) of each node's speaker.
fn speaker_peaks(lab: &Lab) -> BTreeMap<NodeId, f64> {
    let state = State::load(&lab.paths).unwrap();
    lab.nodes()
        .into_iter()
        .map(|n| {
            let pid = state.procs[&Part::Speaker(n)].id.unwrap().pid;
            (n, benchjson::peak_rss_mib(pid).unwrap())
        })
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// A UTC RFC 3339 timestamp as tracing-subscriber writes it (`2026-12-06T00:40:00.123456Z`).
fn parse_utc(s: &str) -> Option<SystemTime> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, mo, da) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, ""));
    let mut h = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (hh, mi, ss) = (h.next()??, h.next()??, h.next()??);
    let secs = days_from_civil(y, mo, da) * 86_400 + hh * 3600 + mi * 60 + ss;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        let digits = &frac[..frac.len().min(9)];
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    Some(UNIX_EPOCH + Duration::new(u64::try_from(secs).ok()?, nanos))
}

/// When a speaker's log says its session with the node's BIRD became Established, every
/// time within (`after`, `until`].
fn established_between(
    lab: &Lab,
    node: NodeId,
    after: SystemTime,
    until: SystemTime,
) -> Vec<SystemTime> {
    let log = lab.paths.log(&Part::Speaker(node));
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["message"] == "bgp session established" && v["peer"].as_str() == Some(PEER_LABEL)
        })
        .filter_map(|v| parse_utc(v["timestamp"].as_str()?))
        .filter(|at| *at > after && *at <= until)
        .collect()
}

fn since(later: SystemTime, earlier: SystemTime) -> f64 {
    match later.duration_since(earlier) {
        Ok(d) => ms(d),
        Err(e) => -ms(e.duration()),
    }
}

/// Service `r-<i>` of the restart scenario, asking for `addr`. Without NodePorts: the
/// cluster has 2,768 of them (30000–32767), too few for 10,000 Services, and BGP needs none.
fn without_node_ports(i: usize, addr: IpAddr) -> Service {
    let mut svc = bgp_service(&format!("r-{i}"), "bgpb-restart", &[addr], Policy::Cluster);
    svc.spec.as_mut().unwrap().allocate_load_balancer_node_ports = Some(false);
    svc
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn b_routes_after_a_speaker_restart_and_speaker_rss() {
    let n: u16 = benchjson::size().pick(50, 10_000);
    let lab = Lab::exclusive().await;
    let nodes = lab.nodes();
    let objects = bgp_setup(&lab, "bgpb-restart", &["2001:db8:198::7:0/112"]).await;
    let ns = lab.namespace("bgpb-restart").await.unwrap();
    let api: Api<Service> = Api::namespaced(lab.client().await, &ns);
    let addrs: Vec<IpAddr> = (1..=n)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0x198, 0, 0, 0, 7, i)))
        .collect();
    let dsts: BTreeSet<IpNet> = addrs.iter().map(|a| host(*a)).collect();
    let started = Instant::now();
    // 32 create requests in flight: the API server's pace, not one round trip each.
    futures::stream::iter(addrs.iter().enumerate())
        .map(|(i, a)| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &without_node_ports(i, *a))
                    .await
                    .map(drop)
            }
        })
        .buffer_unordered(32)
        .for_each(|r| async move { r.unwrap() })
        .await;
    println!("{n} Services created in {:?}", started.elapsed());
    let all_routed = || async {
        let routes = lab.router_routes().await.map_err(|e| e.to_string())?;
        let topo = lab.topology();
        let full = routes
            .iter()
            .filter(|r| dsts.contains(&r.dst))
            .filter(|r| {
                let mut via: Vec<NodeId> = r
                    .next_hops
                    .iter()
                    .filter_map(|h| ferrolb_e2e::routing::node_by_addr(&topo, *h))
                    .collect();
                via.sort();
                via == nodes
            })
            .count();
        if full == dsts.len() {
            Ok(())
        } else {
            Err(format!("{full} of {}", dsts.len()))
        }
    };
    poll(
        &format!("{n} routes via every node at the router"),
        Duration::from_secs(600),
        all_routed,
    )
    .await
    .unwrap();
    println!(
        "all {n} routed via every node {:?} after the first create",
        started.elapsed()
    );

    let peaks = speaker_peaks(&lab);
    for (node, mib) in &peaks {
        println!("speaker on {node}: peak RSS {mib:.1} MiB with {n} routes announced");
    }
    emit(
        Record::new(
            "bgp_speaker_memory",
            "speaker peak RSS (VmHWM, largest of the nodes), routes announced over BGP",
            "MiB",
            u64::from(n),
            vec![peaks.values().copied().fold(0.0, f64::max)],
        )
        .target(Stat::Worst, 48.0),
    );

    let mut monitor = RouteMonitor::start(&lab).await;
    let restart_wall = SystemTime::now();
    let restarted = Instant::now();
    lab.restart(Target::Speaker(RESTARTED)).await.unwrap();
    let restart_took = restarted.elapsed();
    // Per route: whether it goes via the restarted node now; which routes lost it.
    let mut via_node: HashMap<IpNet, bool> = dsts.iter().map(|d| (*d, true)).collect();
    let mut missing = 0usize;
    let mut lost = BTreeSet::new();
    let mut first_back: Option<RouteEvent> = None;
    let deadline = Instant::now() + Duration::from_secs(300);
    let done = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(e) = monitor.next(left).await else {
            panic!(
                "after restarting {RESTARTED}'s speaker, {} of {n} routes lost its next hop and {missing} still lack it ({})",
                lost.len(),
                monitor.errors()
            );
        };
        let Some(was) = via_node.get_mut(&e.dst) else {
            continue;
        };
        let now = e.via.contains(&RESTARTED);
        match (*was, now) {
            (true, false) => {
                missing += 1;
                lost.insert(e.dst);
            }
            (false, true) => {
                missing -= 1;
                first_back.get_or_insert_with(|| e.clone());
            }
            _ => {}
        }
        *was = now;
        if missing == 0 && lost.len() == dsts.len() {
            break e;
        }
    };
    let errors = monitor.errors();
    assert!(errors.is_empty(), "ip monitor route: {errors}");
    // The session that carried the routes back: the last one Established before they were
    // all back (a session that went down again in between would show as a second line).
    let sessions = poll(
        &format!("{RESTARTED}'s speaker logs its new session Established"),
        WAIT,
        || async {
            let s = established_between(&lab, RESTARTED, restart_wall, done.wall);
            if s.is_empty() { Err("not yet") } else { Ok(s) }
        },
    )
    .await
    .unwrap();
    let established = *sessions.last().unwrap();
    if sessions.len() > 1 {
        println!(
            "note: {} sessions Established after the restart; timing from the last",
            sessions.len()
        );
    }
    let figure = since(done.wall, established);
    let first_back = first_back.unwrap();
    println!(
        "{RESTARTED}'s speaker restarted (lab restart took {restart_took:?}); Established {:.1} ms after the restart began; first route back {:.1} ms and all {n} back {figure:.1} ms after Established",
        since(established, restart_wall),
        since(first_back.wall, established),
    );
    // The monitor's view agrees with the kernel's table.
    poll(
        &format!("{n} routes via every node at the router after the restart"),
        WAIT,
        all_routed,
    )
    .await
    .unwrap();
    emit(
        Record::new(
            "bgp_restart",
            "restarted speaker's session Established → all routes via its node in the router's kernel (graceful restart off)",
            "ms",
            u64::from(n),
            vec![figure],
        )
        .target(Stat::Worst, 1000.0),
    );
    let restarted_peak = speaker_peaks(&lab)[&RESTARTED];
    println!(
        "restarted speaker on {RESTARTED}: peak RSS {restarted_peak:.1} MiB after announcing {n} routes again"
    );
    emit(
        Record::new(
            "bgp_speaker_memory",
            "restarted speaker peak RSS (VmHWM) after announcing all routes again",
            "MiB",
            u64::from(n),
            vec![restarted_peak],
        )
        .target(Stat::Worst, 48.0),
    );
    drop(monitor);
    clean_up(&lab, ns, objects, &dsts).await;
}

#[test]
fn monitor_lines_parse() {
    let one = "198.51.100.20 via 192.0.2.11 dev eth0 proto bird metric 32 ";
    assert_eq!(
        parse_monitor_line(one),
        Some((
            false,
            "198.51.100.20/32".parse().unwrap(),
            vec!["192.0.2.11".parse().unwrap()]
        ))
    );
    let multi = "2001:db8:198::7:1 proto bird metric 32 pref medium \\\tnexthop via 2001:db8:2::11 dev eth0 weight 1 \\\tnexthop via 2001:db8:2::12 dev eth0 weight 1 ";
    let (deleted, dst, hops) = parse_monitor_line(multi).unwrap();
    assert!(!deleted);
    assert_eq!(dst, "2001:db8:198::7:1/128".parse::<IpNet>().unwrap());
    assert_eq!(hops.len(), 2);
    let gone =
        "Deleted 198.51.100.20 proto bird metric 32 \\\tnexthop via 192.0.2.11 dev eth0 weight 1 ";
    assert!(parse_monitor_line(gone).unwrap().0);
    let marker = "blackhole 2001:db8:ffff::99 dev lo metric 1024 pref medium";
    assert_eq!(
        parse_monitor_line(marker).unwrap().1,
        MARKER.parse::<IpNet>().unwrap()
    );
    assert_eq!(parse_monitor_line("default via 192.0.2.1 dev eth0"), None);
}

#[test]
fn log_timestamps_parse() {
    let t = parse_utc("2026-12-06T00:40:01.123456Z").unwrap();
    let since = t.duration_since(UNIX_EPOCH).unwrap();
    // 2026-12-06 is day 20,793 since 1970-01-01.
    assert_eq!(since.as_secs(), 20_793 * 86_400 + 40 * 60 + 1);
    assert_eq!(since.subsec_micros(), 123_456);
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert!(parse_utc("2026-12-06 00:40:01").is_none());
}
