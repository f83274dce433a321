//! Figures for issue 6's benchmark, printed, never asserted (ignored by default):
//!
//!     cargo build --bins && cargo test -p ferrolb-e2e --test speaker_l2_bench -- --ignored --nocapture --test-threads 1
//!
//! - failover: 20 kills of the owner node, time from the kill to the L2 client's neighbour
//!   entry changing (target p50 < 1 s, worst < 2 s);
//! - ARP reply latency seen by arping on the L2 client (target p50 < 200 µs);
//! - speaker RSS with 1,000 L2 Services (target < 40 MiB) and idle CPU (target < 1 % of a
//!   core).
#![allow(clippy::unwrap_used)] // tests may unwrap

mod speaker_support;

use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_e2e::state::{Part, State};
use ferrolb_e2e::topology::L2CLIENT_NS;
use ferrolb_e2e::{Lab, NodeId, Target, poll, procs};
use serde_json::json;
use speaker_support::*;

fn all_nodes() -> Vec<NodeId> {
    vec![NodeId(1), NodeId(2), NodeId(3)]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn bench_l2_failover_over_20_owner_kills() {
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
    let survivors: Vec<NodeId> = all_nodes().into_iter().filter(|n| *n != owner).collect();
    let next = predicted_owner(addr, &survivors);
    let owner_mac = lab.node_mac(owner).await.unwrap();
    let mut times = Vec::new();
    for round in 0..20 {
        forget_neighbour(&lab, addr).await;
        let (node, _) = resolve_and_get(&lab, addr).await;
        assert_eq!(node, owner);
        let killed = Instant::now();
        lab.kill(Target::Node(owner)).await.unwrap();
        // Poll the neighbour table as fast as `ip` runs (a few ms per call).
        let took = loop {
            match neighbour_mac(&lab, addr).await {
                Some(m) if m != owner_mac => break killed.elapsed(),
                _ => {}
            }
            assert!(killed.elapsed() < Duration::from_secs(30), "no failover");
        };
        println!("round {round:2}: {owner} killed, entry moved after {took:?}");
        times.push(took);
        lab.restart(Target::Node(owner)).await.unwrap();
        wait_neighbour(&lab, addr, owner).await;
        wait_l2_status(&lab, &ns, "fo", &[(owner, &["eth0"])]).await;
        let _ = next;
    }
    times.sort();
    println!(
        "FIGURE failover (kill → neighbour entry changed), 20 kills: p50 {:?}, worst {:?}, best {:?}",
        percentile(&times, 0.5),
        times[times.len() - 1],
        times[0]
    );
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn bench_arp_reply_latency() {
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
    let out = lab
        .exec(
            L2CLIENT_NS,
            &[
                "arping",
                "-c",
                "200",
                "-W",
                "0.02",
                "-i",
                "eth0",
                &addr.to_string(),
            ],
        )
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut times: Vec<Duration> = text
        .lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            let mut parts = t.split_whitespace();
            let value: f64 = parts.next()?.parse().ok()?;
            let unit = parts.next()?;
            let micros = match unit {
                "usec" => value,
                "msec" => value * 1000.0,
                "sec" => value * 1e6,
                _ => return None,
            };
            Some(Duration::from_nanos((micros * 1000.0) as u64))
        })
        .collect();
    assert!(!times.is_empty(), "arping printed no times: {text}");
    times.sort();
    println!(
        "FIGURE ARP reply latency (arping from {L2CLIENT_NS}, {} replies): p50 {:?}, p99 {:?}, worst {:?}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times[times.len() - 1]
    );
}

/// Resident memory (KiB) and CPU ticks of each speaker.
fn speaker_usage(lab: &Lab) -> Vec<(NodeId, u64, u64)> {
    let state = State::load(&lab.paths).unwrap();
    lab.nodes()
        .into_iter()
        .map(|n| {
            let id = state.procs[&Part::Speaker(n)].id.unwrap();
            let rss = procs::rss_kib(id).unwrap();
            let stat = std::fs::read_to_string(format!("/proc/{}/stat", id.pid)).unwrap();
            // Fields after the command (which may hold spaces) : utime is the 12th, stime the 13th.
            let rest = stat.rsplit(')').next().unwrap();
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|x| x.parse().ok())
                .collect();
            (n, rss, f[10] + f[11])
        })
        .collect()
}

#[tokio::test]
#[ignore = "benchmark: prints figures; run with --ignored"]
async fn bench_speaker_rss_with_1000_l2_services_and_idle_cpu() {
    let lab = Lab::exclusive().await;
    let ns = lab.namespace("l2-bench-rss").await.unwrap();
    let _pool = l2_pool(
        &lab,
        "l2b-rss",
        &["2001:db8:2::1000-2001:db8:2::13e7"],
        json!({}),
    )
    .await;
    for (n, rss, _) in speaker_usage(&lab) {
        println!("before: speaker on {n}: RSS {:.1} MiB", rss as f64 / 1024.0);
    }
    let started = Instant::now();
    let addrs: Vec<IpAddr> = (0..1000u16)
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
    println!("1,000 Services created in {:?}", started.elapsed());
    poll(
        "the speakers to announce 1,000 addresses between them",
        Duration::from_secs(300),
        || async {
            let mut total = 0.0;
            for n in lab.nodes() {
                let m = speaker_metrics(&lab, n).await;
                total += metric(&m, "ferrolb_announced", &["protocol=\"L2\""]);
            }
            if total >= 1000.0 {
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
    // Let the status writers finish before measuring idle.
    let statuses: kube::Api<ferrolb_api::ServiceL2Status> =
        kube::Api::namespaced(lab.client().await, &ns);
    poll(
        "1,000 ServiceL2Status objects",
        Duration::from_secs(300),
        || async {
            let n = statuses
                .list(&kube::api::ListParams::default())
                .await
                .map_err(|e| e.to_string())?
                .items
                .len();
            if n >= 1000 {
                Ok(())
            } else {
                Err(format!("{n}"))
            }
        },
    )
    .await
    .unwrap();
    let hz: f64 = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let before = speaker_usage(&lab);
    let window = Duration::from_secs(30);
    // An idle measurement needs a quiet window; this sleep is the measurement, not a wait.
    tokio::time::sleep(window).await;
    let after = speaker_usage(&lab);
    for ((n, rss, t0), (_, _, t1)) in before.iter().zip(&after) {
        let cpu = (t1 - t0) as f64 / hz / window.as_secs_f64() * 100.0;
        println!(
            "FIGURE speaker on {n} with 1,000 L2 Services (about a third owned): RSS {:.1} MiB, idle CPU {cpu:.2} % of a core",
            *rss as f64 / 1024.0
        );
    }
}
