//! SWIM membership between speakers in private namespaces on one segment. Run as root.
//! Times are printed as figures, never asserted; assertions are about what is seen.
#![allow(clippy::unwrap_used)]

mod l2_support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ferrolb_speaker::membership::{DropReason, ProbeTiming};
use l2_support::member::{NsMember, Stop};
use l2_support::{Segment, poll};

const KEY: &[u8] = b"flb-test-membership-key";
const WAIT: Duration = Duration::from_secs(15);

fn addr(n: u8) -> SocketAddr {
    format!("192.0.2.{n}:7946").parse().unwrap()
}

fn names(ns: &[&str]) -> Vec<String> {
    ns.iter().map(|s| s.to_string()).collect()
}

/// Three members, each told about the other two.
fn cluster(seg: &Segment, timing: ProbeTiming) -> Vec<NsMember> {
    let all = [addr(1), addr(2), addr(3)];
    (0..3)
        .map(|i| {
            NsMember::start(
                &seg.hosts[i],
                &format!("node-{}", i + 1),
                all[i],
                KEY,
                &all,
                timing.clone(),
            )
        })
        .collect()
}

fn converged(members: &[&NsMember], want: &[&str]) -> bool {
    poll(WAIT, || {
        members
            .iter()
            .all(|m| m.sees() == names(want))
            .then_some(())
    })
    .is_some()
}

#[test]
fn membership_three_members_converge_and_a_killed_one_is_declared_down() {
    let seg = Segment::new(&[1, 2, 3]);
    let mut m = cluster(&seg, ProbeTiming::default());
    let all = ["node-1", "node-2", "node-3"];
    assert!(
        converged(&[&m[0], &m[1], &m[2]], &all),
        "{:?} {:?} {:?}",
        m[0].sees(),
        m[1].sees(),
        m[2].sees()
    );

    let killed_at = Instant::now();
    m[2].stop(Stop::Kill);
    let survivors = ["node-1", "node-2"];
    assert!(
        converged(&[&m[0], &m[1]], &survivors),
        "{:?} {:?}",
        m[0].sees(),
        m[1].sees()
    );
    println!(
        "figure: killed member declared down by both survivors after {:?}",
        killed_at.elapsed()
    );
    // No datagram was refused along the way.
    for x in &m[..2] {
        assert_eq!(x.metrics.dropped_total(DropReason::Unauthenticated), 0);
    }
}

#[test]
fn membership_clean_leave_is_announced() {
    let seg = Segment::new(&[1, 2, 3]);
    // A failure detector far slower than the deadline below: only the departing member's
    // own announcement can explain it disappearing in time.
    let slow = ProbeTiming {
        probe_period: Duration::from_secs(5),
        probe_rtt: Duration::from_secs(2),
        suspect_to_down_after: Duration::from_secs(60),
        ..ProbeTiming::default()
    };
    let mut m = cluster(&seg, slow);
    assert!(converged(
        &[&m[0], &m[1], &m[2]],
        &["node-1", "node-2", "node-3"]
    ));
    let left_at = Instant::now();
    m[2].stop(Stop::Leave);
    let gone = poll(Duration::from_secs(4), || {
        (m[0].sees() == names(&["node-1", "node-2"]) && m[1].sees() == names(&["node-1", "node-2"]))
            .then_some(())
    });
    assert!(gone.is_some(), "{:?} {:?}", m[0].sees(), m[1].sees());
    println!(
        "figure: clean leave seen by both others after {:?}",
        left_at.elapsed()
    );
}

#[test]
fn membership_wrong_key_never_joins_and_garbage_is_counted() {
    let seg = Segment::new(&[1, 2, 3]);
    let all = [addr(1), addr(2), addr(3)];
    let timing = ProbeTiming::default();
    let m1 = NsMember::start(&seg.hosts[0], "node-1", all[0], KEY, &all, timing.clone());
    let m2 = NsMember::start(&seg.hosts[1], "node-2", all[1], KEY, &all, timing.clone());
    let intruder = NsMember::start(
        &seg.hosts[2],
        "node-3",
        all[2],
        b"not-the-key",
        &all,
        timing,
    );
    assert!(converged(&[&m1, &m2], &["node-1", "node-2"]));

    // The intruder keeps announcing itself; wait until both members refused some of it.
    let refused = poll(WAIT, || {
        (m1.metrics.dropped_total(DropReason::Unauthenticated) >= 3
            && m2.metrics.dropped_total(DropReason::Unauthenticated) >= 3)
            .then_some(())
    });
    assert!(refused.is_some());
    assert_eq!(m1.sees(), names(&["node-1", "node-2"]));
    assert_eq!(m2.sees(), names(&["node-1", "node-2"]));
    assert_eq!(intruder.sees(), names(&["node-3"]));

    // Garbage and truncated datagrams from a host on the segment.
    let target = all[0];
    seg.hosts[2]
        .spawn(move || {
            let s = std::net::UdpSocket::bind("192.0.2.3:0").unwrap();
            s.send_to(b"", target).unwrap();
            s.send_to(b"flb", target).unwrap();
            s.send_to(&[0xab; 300], target).unwrap();
            let mut forged = b"flb\x01".to_vec();
            forged.extend_from_slice(&[0u8; 40]);
            s.send_to(&forged, target).unwrap();
        })
        .join()
        .unwrap();
    let counted = poll(WAIT, || {
        (m1.metrics.dropped_total(DropReason::Malformed) >= 3).then_some(())
    });
    assert!(
        counted.is_some(),
        "malformed: {}",
        m1.metrics.dropped_total(DropReason::Malformed)
    );
    assert_eq!(m1.sees(), names(&["node-1", "node-2"]));
}
