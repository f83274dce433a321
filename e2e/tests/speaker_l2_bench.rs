//! Figures of issue 6's benchmark, printed and recorded (`FERROLB_BENCH_OUT`, contract in
//! e2e/src/benchjson.rs), never asserted; ignored by default, run by `make bench`:
//!
//!     cargo build --bins && cargo test -p ferrolb-e2e --test speaker_l2_bench -- --ignored --nocapture --test-threads 1
//!
//! How each figure is taken (`FERROLB_BENCH_SIZE=smoke` runs the sizes in brackets):
//!
//! - `l2_failover` — 20 [2] kills of the owner node of one IPv4 L2 address. Each round the
//!   L2 client first resolves the address to the owner (an HTTP request, so its neighbour
//!   entry is fresh), then `ip monitor neigh` is started in the client's namespace and proven
//!   to be listening (a marker entry is added and seen). The clock starts just before
//!   `lab kill node <owner>` (links down, then the node's processes SIGKILLed) and stops when
//!   the monitor prints the address with a MAC other than the dead owner's: the kill, the
//!   membership's failure detection, re-election on the survivors and the new owner's
//!   gratuitous ARP accepted by the client's kernel. The client sends nothing meanwhile, so
//!   only the speaker's announcement can move the entry. Targets: p50 < 1 s, worst < 2 s.
//!   The node is then restarted and the round ends when the owner has the address back.
//! - `l2_arp_reply` — `arping` (Thomas Habets' 2.x) in the L2 client, 200 [20] requests 20 ms
//!   apart for an address the speaker answers; each sample is arping's own `time=` (request
//!   sent to reply received, by its clock, through the segment's bridge). Target p50 <
//!   200 µs. The same for a node's own address, which its kernel answers, as the baseline of
//!   the path (no target).
//! - `l2_resources` — 1,000 [10] IPv6 L2 Services (one address each, about a third owned per
//!   node): once every address is announced and every ServiceL2Status written, `VmRSS` of
//!   each speaker (target < 40 MiB, the largest speaker) and its CPU time (utime + stime from
//!   `/proc/<pid>/stat`) over 30 s [5 s] of quiet, as a percentage of one core (target < 1 %).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod speaker_support;

use std::net::{IpAddr, Ipv6Addr};
use std::process::Stdio;
use std::time::{Duration, Instant};

use ferrolb_e2e::benchjson::{self, Record, Stat};
use ferrolb_e2e::state::{Part, State};
use ferrolb_e2e::topology::L2CLIENT_NS;
use ferrolb_e2e::{Lab, NodeId, Target, poll};
use serde_json::json;
use speaker_support::*;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

fn all_nodes() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

fn emit(record: Record) {
    benchjson::emit(&record).unwrap();
}

/// `ip monitor neigh` in the L2 client's namespace, known to be listening.
struct NeighbourMonitor {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

const MARKER: &str = "192.0.2.99";

impl NeighbourMonitor {
    async fn start(lab: &Lab) -> NeighbourMonitor {
        let mut child = tokio::process::Command::new("ip")
            .args(["netns", "exec", L2CLIENT_NS, "ip", "monitor", "neigh"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // A marker entry proves the monitor is subscribed before anything is timed.
        let add = [
            "ip",
            "neigh",
            "replace",
            MARKER,
            "lladdr",
            "02:00:00:00:00:99",
            "dev",
            "eth0",
            "nud",
            "permanent",
        ];
        let mut monitor = None;
        for _ in 0..50 {
            lab.exec(L2CLIENT_NS, &add).await.unwrap();
            let seen = tokio::time::timeout(Duration::from_millis(200), async {
                while let Some(line) = lines.next_line().await.unwrap() {
                    if line.starts_with(&format!("{MARKER} ")) {
                        return true;
                    }
                }
                false
            })
            .await;
            if seen == Ok(true) {
                monitor = Some(());
                break;
            }
            let _ = lab
                .exec(L2CLIENT_NS, &["ip", "neigh", "del", MARKER, "dev", "eth0"])
                .await;
        }
        monitor.expect("ip monitor neigh reports a marker entry");
        let _ = lab
            .exec(L2CLIENT_NS, &["ip", "neigh", "del", MARKER, "dev", "eth0"])
            .await;
        NeighbourMonitor {
            _child: child,
            lines,
        }
    }

    /// Waits for a line giving `addr` a MAC other than `old`; returns when it was read.
    async fn moved(&mut self, addr: IpAddr, old: &str, within: Duration) -> Option<Instant> {
        let prefix = format!("{addr} ");
        tokio::time::timeout(within, async {
            while let Some(line) = self.lines.next_line().await.unwrap() {
                if !line.starts_with(&prefix) {
                    continue;
                }
                let mac = line
                    .split_whitespace()
                    .skip_while(|w| *w != "lladdr")
                    .nth(1);
                if mac.is_some_and(|m| m != old) {
                    return Some(Instant::now());
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn bench_l2_failover_over_owner_kills() {
    let kills = benchjson::size().pick(2, 20);
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-bench-fo").await.unwrap();
    let _pool = l2_pool(&lab, "l2b-failover", &["192.0.2.209"], json!({})).await;
    let addr = ip("192.0.2.209");
    lab.create_service(
        &ns,
        &l2_service("fo", "l2b-failover", &[addr], Policy::Cluster),
    )
    .await
    .unwrap();
    wait_addresses(&lab, &ns, "fo", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    let owner_mac = lab.node_mac(owner).await.unwrap();
    wait_l2_status(&lab, &ns, "fo", &[(owner, &["eth0"])]).await;
    let mut samples = Vec::new();
    for round in 0..kills {
        forget_neighbour(&lab, addr).await;
        let (node, _) = resolve_and_get(&lab, addr).await;
        assert_eq!(node, owner);
        let mut monitor = NeighbourMonitor::start(&lab).await;
        let killed = Instant::now();
        lab.kill(Target::Node(owner)).await.unwrap();
        let kill_took = killed.elapsed();
        let moved = monitor
            .moved(addr, &owner_mac, Duration::from_secs(30))
            .await
            .expect("the client's neighbour entry moves off the killed owner within 30 s");
        let took = moved - killed;
        println!(
            "round {round:2}: {owner} killed (lab kill took {kill_took:?}), entry moved to {:?} after {took:?}",
            neighbour_mac(&lab, addr).await
        );
        samples.push(took.as_secs_f64() * 1000.0);
        lab.restart(Target::Node(owner)).await.unwrap();
        wait_neighbour(&lab, addr, owner).await;
        wait_l2_status(&lab, &ns, "fo", &[(owner, &["eth0"])]).await;
    }
    emit(
        Record::new(
            "l2_failover",
            "kill to client neighbour entry moved",
            "ms",
            kills as u64,
            samples,
        )
        .target(Stat::P50, 1000.0)
        .target(Stat::Worst, 2000.0),
    );
}

/// arping's `time=` values, in µs.
fn arping_times(text: &str) -> Vec<f64> {
    text.lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            let mut parts = t.split_whitespace();
            let value: f64 = parts.next()?.parse().ok()?;
            match parts.next()? {
                "usec" => Some(value),
                "msec" => Some(value * 1000.0),
                "sec" => Some(value * 1e6),
                _ => None,
            }
        })
        .collect()
}

async fn arping(lab: &Lab, addr: &str, count: usize) -> Vec<f64> {
    let out = lab
        .exec(
            L2CLIENT_NS,
            &[
                "arping",
                "-c",
                &count.to_string(),
                "-W",
                "0.02",
                "-i",
                "eth0",
                addr,
            ],
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let times = arping_times(&text);
    assert!(!times.is_empty(), "arping printed no times: {text}");
    times
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn bench_arp_reply_latency() {
    let count = benchjson::size().pick(20, 200);
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-bench-arp").await.unwrap();
    let _pool = l2_pool(&lab, "l2b-arp", &["192.0.2.213"], json!({})).await;
    let addr = ip("192.0.2.213");
    lab.create_service(&ns, &l2_service("arp", "l2b-arp", &[addr], Policy::Cluster))
        .await
        .unwrap();
    wait_addresses(&lab, &ns, "arp", &[addr]).await;
    let owner = predicted_owner(addr, &all_nodes());
    wait_l2_status(&lab, &ns, "arp", &[(owner, &["eth0"])]).await;
    let speaker = arping(&lab, &addr.to_string(), count).await;
    emit(
        Record::new(
            "l2_arp_reply",
            "arping request to reply, speaker answering",
            "us",
            count as u64,
            speaker,
        )
        .target(Stat::P50, 200.0),
    );
    let kernel = arping(&lab, &owner.addr4().to_string(), count).await;
    emit(Record::new(
        "l2_arp_reply",
        "arping request to reply, node kernel answering (baseline)",
        "us",
        count as u64,
        kernel,
    ));
}

/// Resident memory (MiB), peak resident memory (MiB) and CPU seconds of each speaker.
fn speaker_usage(lab: &Lab) -> Vec<(NodeId, f64, f64, f64)> {
    let state = State::load(&lab.paths).unwrap();
    lab.nodes()
        .into_iter()
        .map(|n| {
            let pid = state.procs[&Part::Speaker(n)].id.unwrap().pid;
            let rss = benchjson::rss_mib(pid).unwrap();
            let peak = benchjson::peak_rss_mib(pid).unwrap();
            (n, rss, peak, benchjson::cpu_seconds(pid).unwrap())
        })
        .collect()
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn bench_speaker_rss_and_idle_cpu_with_l2_services() {
    let services = benchjson::size().pick(10u16, 1000);
    let window = benchjson::size().pick(Duration::from_secs(5), Duration::from_secs(30));
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-bench-rss").await.unwrap();
    let _pool = l2_pool(
        &lab,
        "l2b-rss",
        &["2001:db8:2::1000-2001:db8:2::13e7"],
        json!({}),
    )
    .await;
    for (n, rss, _, _) in speaker_usage(&lab) {
        println!("before: speaker on {n}: RSS {rss:.1} MiB");
    }
    let started = Instant::now();
    let addrs: Vec<IpAddr> = (0..services)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 0x1000 + i)))
        .collect();
    for (i, a) in addrs.iter().enumerate() {
        lab.create_service(
            &ns,
            &l2_service(&format!("s{i}"), "l2b-rss", &[*a], Policy::Cluster),
        )
        .await
        .unwrap();
    }
    println!("{services} Services created in {:?}", started.elapsed());
    poll(
        "the speakers to announce every address between them",
        Duration::from_secs(300),
        || async {
            let mut total = 0.0;
            for n in lab.nodes() {
                let m = speaker_metrics(&lab, n).await;
                total += metric(&m, "ferrolb_announced", &["protocol=\"L2\""]);
            }
            if total >= f64::from(services) {
                Ok(())
            } else {
                Err(format!("{total} announced"))
            }
        },
    )
    .await
    .unwrap();
    println!(
        "all announced {:?} after the first create",
        started.elapsed()
    );
    // Idle means the status writers are done too.
    let statuses: kube::Api<ferrolb_api::ServiceL2Status> =
        kube::Api::namespaced(lab.client().await, &ns);
    poll(
        "a ServiceL2Status per Service",
        Duration::from_secs(300),
        || async {
            let n = statuses
                .list(&kube::api::ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            if n >= usize::from(services) {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .await
    .unwrap();
    let before = speaker_usage(&lab);
    // The idle measurement is a quiet window; this sleep is the measurement, not a wait.
    tokio::time::sleep(window).await;
    let after = speaker_usage(&lab);
    let mut rss_samples = Vec::new();
    let mut cpu_samples = Vec::new();
    for ((n, _, _, t0), (_, rss, peak, t1)) in before.iter().zip(&after) {
        let cpu = (t1 - t0) / window.as_secs_f64() * 100.0;
        println!(
            "speaker on {n} with {services} L2 Services: RSS {rss:.1} MiB (peak {peak:.1} MiB), idle CPU {cpu:.2} % of a core over {window:?}",
        );
        rss_samples.push(*rss);
        cpu_samples.push(cpu);
    }
    emit(
        Record::new(
            "l2_resources",
            "speaker resident memory, L2 Services announced",
            "MiB",
            u64::from(services),
            rss_samples,
        )
        .target(Stat::Worst, 40.0),
    );
    emit(
        Record::new(
            "l2_resources",
            "speaker idle CPU, L2 Services announced",
            "%",
            u64::from(services),
            cpu_samples,
        )
        .target(Stat::Worst, 1.0),
    );
}
