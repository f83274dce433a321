//! L2 figures (run as root: `cargo bench -p ferrolb-speaker --bench l2`):
//! - ARP reply latency seen by a client namespace (arping), p50/p90/p99, next to the
//!   kernel's own ARP reply on the same segment as a baseline; target p50 under 200 µs;
//! - responder CPU and process RSS while idle with 1,000 owned addresses;
//! - cost of the pure decision per frame.
#![allow(clippy::unwrap_used)]

#[path = "../tests/l2_support/mod.rs"]
mod l2_support;

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use ferrolb_speaker::l2::arp::{ArpOperation, ArpPacket};
use ferrolb_speaker::l2::frame::MacAddr;
use ferrolb_speaker::l2::responder::{LinkIdentity, decide};
use ferrolb_speaker::l2::{AnnouncerConfig, L2Metrics};
use l2_support::responder::NsResponder;
use l2_support::{Netns, Segment, poll};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

/// Reply times in microseconds from `arping -c n` in `ns` to `addr`.
fn arping_times(ns: &Netns, addr: &str, n: usize) -> Vec<f64> {
    let out = ns.exec(
        "arping",
        &[
            "-c",
            &n.to_string(),
            "-W",
            "0.01",
            "-w",
            "30",
            "-i",
            "eth0",
            addr,
        ],
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut times: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let t = l.split("time=").nth(1)?;
            let mut parts = t.split_whitespace();
            let v: f64 = parts.next()?.parse().ok()?;
            Some(match parts.next()? {
                "usec" => v,
                "msec" => v * 1000.0,
                "sec" => v * 1e6,
                _ => return None,
            })
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn report(label: &str, times: &[f64]) {
    println!(
        "{label}: n={} p50={:.1} µs p90={:.1} µs p99={:.1} µs max={:.1} µs",
        times.len(),
        percentile(times, 0.5),
        percentile(times, 0.9),
        percentile(times, 0.99),
        times.last().copied().unwrap_or(f64::NAN)
    );
}

/// utime + stime of this process in seconds, and VmRSS in KiB.
fn cpu_and_rss() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_comm = stat.rsplit(')').next().unwrap();
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); after the ")" they are at index 11 and 12.
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / 100.0, rss)
}

fn main() {
    // `cargo bench` passes --bench; nothing to parse.
    let seg = Segment::new(&[1, 100]);
    let client = &seg.hosts[1];
    let r1 = NsResponder::start(&seg.hosts[0], AnnouncerConfig::default());
    r1.own(&["192.0.2.10", "2001:db8::10"]);

    // Warm up the bridge's forwarding table and both ends.
    let _ = arping_times(client, "192.0.2.10", 5);
    let baseline = arping_times(client, "192.0.2.1", 500);
    report("arp reply latency, kernel (baseline)", &baseline);
    let ours = arping_times(client, "192.0.2.10", 500);
    report("arp reply latency, ferrolb responder", &ours);
    println!(
        "target p50 < 200 µs: {}",
        if percentile(&ours, 0.5) < 200.0 {
            "met"
        } else {
            "MISSED"
        }
    );

    // Idle: 1,000 owned addresses (500 IPv4, 500 IPv6), after the announcement bursts.
    let mut many: Vec<String> = (0..500u32)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(198, 51, 100, 0)) + i).to_string())
        .collect();
    many.extend((0..500u128).map(|i| {
        Ipv6Addr::from(u128::from("2001:db8:1::".parse::<Ipv6Addr>().unwrap()) + i).to_string()
    }));
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    r1.own(&refs);
    let sent = poll(Duration::from_secs(10), || {
        let v4 = L2Metrics::total(
            &r1.metrics.gratuitous_sent,
            "eth0",
            ferrolb_speaker::l2::responder::Protocol::Arp,
        );
        (v4 >= 500 * 3).then_some(v4)
    });
    println!("announcement bursts for 1,000 addresses done: {sent:?} gratuitous ARP");
    let (cpu0, _) = cpu_and_rss();
    let window = Duration::from_secs(10);
    std::thread::sleep(window);
    let (cpu1, rss) = cpu_and_rss();
    println!(
        "idle with 1,000 owned addresses: {:.3} % of one core over {:?} (tick resolution 10 ms), process RSS {} KiB",
        (cpu1 - cpu0) / window.as_secs_f64() * 100.0,
        window,
        rss
    );

    // Pure decision cost.
    let link = LinkIdentity {
        mac: MacAddr([2, 0, 0x5e, 0x10, 0, 1]),
        link_local: None,
    };
    let owned: BTreeSet<IpAddr> = many.iter().map(|a| a.parse().unwrap()).collect();
    let req = ArpPacket {
        operation: ArpOperation::Request,
        sender_mac: MacAddr([2, 0, 0x5e, 0x10, 0, 0x64]),
        sender_ip: Ipv4Addr::new(192, 0, 2, 100),
        target_mac: MacAddr::ZERO,
        target_ip: Ipv4Addr::new(198, 51, 100, 77),
    }
    .to_frame(MacAddr::BROADCAST, MacAddr([2, 0, 0x5e, 0x10, 0, 0x64]));
    let n = 1_000_000;
    let start = Instant::now();
    for _ in 0..n {
        std::hint::black_box(decide(std::hint::black_box(&req), &link, &owned));
    }
    println!(
        "decide(arp request, 1,000 owned): {:.0} ns per frame",
        start.elapsed().as_nanos() as f64 / n as f64
    );
}
