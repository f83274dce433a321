//! Membership failure-detection figures (run as root:
//! `cargo bench -p ferrolb-speaker --bench l2_membership`): three members in namespaces;
//! the third is killed without a goodbye, repeatedly, and the time until both survivors
//! declare it down is measured. Also the time a clean leave takes to be seen.
#![allow(clippy::unwrap_used)]

#[path = "../tests/l2_support/mod.rs"]
mod l2_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::ProbeTiming;
use l2_support::member::{NsMember, Stop};
use l2_support::{Segment, poll};

const KEY: &[u8] = b"flb-bench-key";
const ROUNDS: usize = 20;

fn addr(n: u8) -> SocketAddr {
    format!("192.0.2.{n}:7946").parse().unwrap()
}

fn main() {
    let seg = Segment::new(&[1, 2, 3]);
    let all = [addr(1), addr(2), addr(3)];
    let timing = ProbeTiming::default();
    let start = |i: usize| {
        NsMember::start(
            &seg.hosts[i],
            &format!("node-{}", i + 1),
            all[i],
            KEY,
            &all,
            timing.clone(),
        )
    };
    let m1 = start(0);
    let m2 = start(1);
    let three = |m: &NsMember| m.sees().len() == 3;
    let two = |m: &NsMember| m.sees() == ["node-1", "node-2"];

    for label in ["kill", "leave"] {
        let mut times = Vec::new();
        let rounds = if label == "kill" { ROUNDS } else { 5 };
        for _ in 0..rounds {
            let mut m3 = start(2);
            let joined = poll(Duration::from_secs(15), || {
                (three(&m1) && three(&m2) && three(&m3)).then_some(())
            });
            assert!(joined.is_some(), "did not converge");
            let t0 = Instant::now();
            m3.stop(if label == "kill" {
                Stop::Kill
            } else {
                Stop::Leave
            });
            let seen = poll(Duration::from_secs(15), || {
                (two(&m1) && two(&m2)).then_some(())
            });
            assert!(seen.is_some(), "departure not seen");
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "member {label} → both survivors see it gone: n={} p50={:.0} ms p90={:.0} ms max={:.0} ms (timing {:?})",
            times.len(),
            times[times.len() / 2],
            times[(times.len() - 1) * 9 / 10],
            times[times.len() - 1],
            timing
        );
    }
}
