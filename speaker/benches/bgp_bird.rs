//! End-to-end figures against a real BIRD in a private network namespace (run as root):
//! time from session Established to 10,000 routes accepted by BIRD, and the speaker's
//! memory for them. Prints figures; asserts nothing about speed.
#![allow(clippy::unwrap_used)]

#[path = "../tests/bgp_support/mod.rs"]
mod bgp_support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bgp_support::*;
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet};
use ipnet::{IpNet, Ipv4Net};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

const N: u32 = 10_000;

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let lab = Lab::new();
    let opts = PeerOptions::new(PeerKind::Bird);
    let daemon = PeerDaemon::start(&lab, opts.clone());

    let rss0 = rss_kib();
    let attrs = Arc::new(RouteAttrs::new(SPEAKER_V4.parse().unwrap()));
    let mut set = RouteSet::new();
    // 10,000 consecutive /32s from 198.51.100.0 (the lab's namespaces only).
    for i in 0..N {
        let net = Ipv4Net::new(Ipv4Addr::from(0xc633_6400u32 + i), 32).unwrap();
        set.insert(IpNet::V4(net), Arc::clone(&attrs)).unwrap();
    }
    let rss_routes = rss_kib();

    for round in 1..=3 {
        let mut host = lab.start_speaker(None);
        let config = peer_config(&opts);
        let key = config.peer;
        host.set_routes(key, set.clone());
        host.set_peers(vec![config]);
        let mut established_at = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while established_at.is_none() {
            if host.peer_status(key).is_some_and(|s| s.is_established()) {
                established_at = Some(Instant::now());
            }
            assert!(Instant::now() < deadline, "session did not come up");
        }
        let t0 = established_at.unwrap_or_else(Instant::now);
        let mut count = 0;
        while count < N as usize {
            count = daemon.route_count();
            assert!(Instant::now() < deadline, "BIRD has {count} of {N} routes");
        }
        let took = t0.elapsed();
        let status = host.peer_status(key).unwrap();
        println!(
            "round {round}: Established -> {N} routes in BIRD: {:.1} ms ({} UPDATEs sent)",
            took.as_secs_f64() * 1000.0,
            status.updates_sent
        );
        if round == 3 {
            let rss = rss_kib();
            println!(
                "speaker memory (VmRSS of this process, which also runs the harness): {:.1} MiB before, +{:.2} MiB for the 10,000-route set, +{:.2} MiB more with the session holding them; total {:.1} MiB",
                rss0 as f64 / 1024.0,
                rss_routes.saturating_sub(rss0) as f64 / 1024.0,
                rss.saturating_sub(rss_routes) as f64 / 1024.0,
                rss as f64 / 1024.0
            );
        }
        host.kill();
        wait_for("BIRD to drop the routes", Duration::from_secs(30), || {
            daemon.route_count() == 0
        });
    }
}
