//! The L2 responder against real kernels: private namespaces on a bridge, clients that
//! resolve addresses the ordinary way (the kernel's own ARP / neighbour discovery), and
//! hand-made malformed frames from a raw socket. Run as root.
#![allow(clippy::unwrap_used)]

mod l2_support;

use std::time::Duration;

use ferrolb_speaker::l2::frame::MacAddr;
use ferrolb_speaker::l2::ndp::{
    NdpMessage, NdpPacket, NeighborSolicitation, multicast_mac, solicited_node_multicast,
};
use ferrolb_speaker::l2::responder::{IgnoreReason, Protocol};
use ferrolb_speaker::l2::{AnnouncerConfig, L2Metrics, LinkTable};
use ferrolb_speaker::sys::packet::PacketSocket;
use l2_support::responder::NsResponder;
use l2_support::{Segment, neighbour, poll, provoke_resolution};

const V4: &str = "192.0.2.10";
const V6: &str = "2001:db8::10";
const WAIT: Duration = Duration::from_secs(10);

// Hosts 1 and 2 run responders, host 100 (0x64) is the client.
const R1_MAC: &str = "02:00:5e:10:00:01";
const R2_MAC: &str = "02:00:5e:10:00:02";

fn resolved_to(seg: &Segment, client: usize, addr: &str, mac: &str) -> bool {
    poll(WAIT, || {
        provoke_resolution(&seg.hosts[client], addr);
        (neighbour(&seg.hosts[client], addr).as_deref() == Some(mac)).then_some(())
    })
    .is_some()
}

#[test]
fn l2_client_resolves_ipv4_and_ipv6_to_the_owner() {
    let seg = Segment::new(&[1, 100]);
    let r1 = NsResponder::start(&seg.hosts[0], AnnouncerConfig::default());
    r1.own(&[V4, V6]);

    assert!(
        resolved_to(&seg, 1, V4, R1_MAC),
        "client's entry for {V4}: {:?}",
        neighbour(&seg.hosts[1], V4)
    );
    assert!(
        resolved_to(&seg, 1, V6, R1_MAC),
        "client's entry for {V6}: {:?}",
        neighbour(&seg.hosts[1], V6)
    );
    let m = &r1.metrics;
    assert!(L2Metrics::total(&m.responses_sent, "eth0", Protocol::Arp) >= 1);
    assert!(L2Metrics::total(&m.responses_sent, "eth0", Protocol::Ndp) >= 1);
    // Becoming owner sent a burst of announcements for both addresses; at least the first
    // went out at once.
    assert!(L2Metrics::total(&m.gratuitous_sent, "eth0", Protocol::Arp) >= 1);
    assert!(L2Metrics::total(&m.gratuitous_sent, "eth0", Protocol::Ndp) >= 1);
}

#[test]
fn l2_only_the_owner_answers() {
    let seg = Segment::new(&[1, 2, 100]);
    let r1 = NsResponder::start(&seg.hosts[0], AnnouncerConfig::default());
    let r2 = NsResponder::start(&seg.hosts[1], AnnouncerConfig::default());
    r1.own(&[V4, V6]);
    r2.own(&["192.0.2.11"]);

    // arping sends 5 requests and prints the MAC of every reply.
    let out = seg.hosts[2].exec("arping", &["-c", "5", "-w", "2", "-i", "eth0", V4]);
    let text = String::from_utf8_lossy(&out.stdout);
    let replies: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("bytes from"))
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert!(!replies.is_empty(), "no replies: {text}");
    assert!(replies.iter().all(|m| *m == R1_MAC), "{replies:?}");
    assert!(resolved_to(&seg, 2, V6, R1_MAC));

    let m2 = &r2.metrics;
    assert_eq!(
        L2Metrics::total(&m2.responses_sent, "eth0", Protocol::Arp),
        0
    );
    assert_eq!(
        L2Metrics::total(&m2.responses_sent, "eth0", Protocol::Ndp),
        0
    );
    assert!(m2.ignored_total("eth0", Protocol::Arp, IgnoreReason::NotOwned) >= 1);
}

#[test]
fn l2_client_entry_follows_ownership_without_asking() {
    let seg = Segment::new(&[1, 2, 100]);
    let r1 = NsResponder::start(&seg.hosts[0], AnnouncerConfig::default());
    let r2 = NsResponder::start(&seg.hosts[1], AnnouncerConfig::default());
    r1.own(&[V4, V6]);
    assert!(resolved_to(&seg, 2, V4, R1_MAC));
    assert!(resolved_to(&seg, 2, V6, R1_MAC));

    // Move ownership. The client does not ask again: only the new owner's gratuitous ARP
    // and unsolicited override advertisement can change its existing entries (Linux
    // updates an existing entry from them even with arp_accept=0; RFC 4861 §7.2.5).
    r1.own(&[]);
    r2.own(&[V4, V6]);
    let moved = poll(WAIT, || {
        (neighbour(&seg.hosts[2], V4).as_deref() == Some(R2_MAC)
            && neighbour(&seg.hosts[2], V6).as_deref() == Some(R2_MAC))
        .then_some(())
    });
    assert!(
        moved.is_some(),
        "client entries: {:?} {:?}",
        neighbour(&seg.hosts[2], V4),
        neighbour(&seg.hosts[2], V6)
    );
    // The old owner no longer answers.
    let before = L2Metrics::total(&r1.metrics.responses_sent, "eth0", Protocol::Arp);
    let out = seg.hosts[2].exec("arping", &["-c", "3", "-w", "2", "-i", "eth0", V4]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(R2_MAC), "{text}");
    assert!(!text.contains(R1_MAC), "{text}");
    assert_eq!(
        L2Metrics::total(&r1.metrics.responses_sent, "eth0", Protocol::Arp),
        before
    );
}

/// Frames a broken or hostile host might send, each one malformed in a different way.
fn malformed_frames(client_mac: MacAddr) -> Vec<Vec<u8>> {
    let target: std::net::Ipv6Addr = V6.parse().unwrap();
    let group = solicited_node_multicast(target);
    let ns = NdpPacket {
        source: "2001:db8::64".parse().unwrap(),
        destination: group,
        message: NdpMessage::Solicitation(NeighborSolicitation {
            target,
            source_link_layer: Some(client_mac),
        }),
    }
    .to_frame(multicast_mac(group), client_mac);
    let arp = ferrolb_speaker::l2::arp::ArpPacket {
        operation: ferrolb_speaker::l2::arp::ArpOperation::Request,
        sender_mac: client_mac,
        sender_ip: "192.0.2.100".parse().unwrap(),
        target_mac: MacAddr::ZERO,
        target_ip: V4.parse().unwrap(),
    }
    .to_frame(MacAddr::BROADCAST, client_mac);

    let mut frames = Vec::new();
    frames.push(arp[..30].to_vec()); // truncated ARP
    let mut f = arp.clone();
    f[18] = 8; // hardware length 8
    frames.push(f);
    let mut f = arp.clone();
    f[21] = 7; // unknown operation
    frames.push(f);
    let mut f = ns.clone();
    f[14 + 40 + 2] ^= 0x55; // bad checksum
    frames.push(f);
    let mut f = ns.clone();
    f[14 + 7] = 64; // forwarded (hop limit 64)
    frames.push(f);
    let mut f = ns.clone();
    f[14 + 5] = 200; // payload length beyond the frame
    frames.push(f);
    frames.push(ns[..14 + 40 + 10].to_vec()); // truncated ICMPv6
    frames
}

#[test]
fn l2_malformed_frames_are_counted_and_the_responder_keeps_answering() {
    let seg = Segment::new(&[1, 100]);
    let r1 = NsResponder::start(&seg.hosts[0], AnnouncerConfig::default());
    r1.own(&[V4, V6]);
    assert!(resolved_to(&seg, 1, V4, R1_MAC));

    let client_mac = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x64]);
    let frames = malformed_frames(client_mac);
    let sent = frames.len() as u64;
    // A Linux bridge with multicast snooping drops IPv6 frames with inconsistent lengths
    // before they reach any port (a plain switch forwards them): turn snooping off so the
    // responder itself faces them.
    seg.switch.ip(&[
        "link",
        "set",
        "br0",
        "type",
        "bridge",
        "mcast_snooping",
        "0",
    ]);

    seg.hosts[1]
        .spawn(move || {
            let links = LinkTable::scan().unwrap();
            let eth0 = links.get(&"eth0".into()).unwrap();
            let socket = PacketSocket::open(eth0.index).unwrap();
            for f in &frames {
                assert_eq!(socket.send(f).unwrap(), f.len());
            }
        })
        .join()
        .unwrap();

    let m = &r1.metrics;
    let malformed = || {
        L2Metrics::total(&m.malformed, "eth0", Protocol::Arp)
            + L2Metrics::total(&m.malformed, "eth0", Protocol::Ndp)
    };
    assert!(
        poll(WAIT, || (malformed() == sent).then_some(())).is_some(),
        "malformed counted {} of {sent} (arp {}, ndp {})",
        malformed(),
        L2Metrics::total(&m.malformed, "eth0", Protocol::Arp),
        L2Metrics::total(&m.malformed, "eth0", Protocol::Ndp)
    );
    // Unowned addresses are ignored and counted, and the responder still answers.
    provoke_resolution(&seg.hosts[1], "192.0.2.77");
    assert!(
        poll(WAIT, || (m.ignored_total(
            "eth0",
            Protocol::Arp,
            IgnoreReason::NotOwned
        ) >= 1)
            .then_some(()))
        .is_some()
    );
    seg.hosts[1].ip(&["neigh", "flush", "dev", "eth0"]);
    assert!(resolved_to(&seg, 1, V4, R1_MAC));
    assert!(resolved_to(&seg, 1, V6, R1_MAC));
}

#[test]
fn l2_interface_mac_change_restarts_and_re_announces() {
    let seg = Segment::new(&[1, 100]);
    let r1 = NsResponder::start(&seg.hosts[0], AnnouncerConfig::default());
    r1.own(&[V4, V6]);
    assert!(resolved_to(&seg, 1, V4, R1_MAC));
    assert!(resolved_to(&seg, 1, V6, R1_MAC));

    // The MAC changes under the running task; the next link table (here: the harness
    // re-scans before applying the same ownership) restarts it, and the restart announces
    // the new MAC so the client's existing entries follow without asking.
    let new_mac = "02:00:5e:10:00:51";
    seg.hosts[0].ip(&["link", "set", "eth0", "address", new_mac]);
    r1.own(&[V4, V6]);
    let moved = poll(WAIT, || {
        (neighbour(&seg.hosts[1], V4).as_deref() == Some(new_mac)
            && neighbour(&seg.hosts[1], V6).as_deref() == Some(new_mac))
        .then_some(())
    });
    assert!(
        moved.is_some(),
        "client entries: {:?} {:?}",
        neighbour(&seg.hosts[1], V4),
        neighbour(&seg.hosts[1], V6)
    );
}

#[test]
fn l2_periodic_reannouncement_when_enabled() {
    let seg = Segment::new(&[1, 100]);
    let config = AnnouncerConfig {
        burst_count: 1,
        reannounce: Some(Duration::from_millis(200)),
        ..AnnouncerConfig::default()
    };
    let r1 = NsResponder::start(&seg.hosts[0], config);
    r1.own(&[V4]);
    // One burst announcement, then one every 200 ms for as long as the address is owned.
    let sent = || L2Metrics::total(&r1.metrics.gratuitous_sent, "eth0", Protocol::Arp);
    assert!(
        poll(WAIT, || (sent() >= 4).then_some(())).is_some(),
        "sent {}",
        sent()
    );
    // Disowned: re-announcements stop (at most one already scheduled may be in flight).
    r1.own(&[]);
    let after = sent();
    let deadline = std::time::Instant::now() + Duration::from_millis(600);
    while std::time::Instant::now() < deadline {
        assert!(
            sent() <= after + 1,
            "still announcing: {} after {after}",
            sent()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
