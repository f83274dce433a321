//! Codec and packing costs for a speaker with 10,000 host routes.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use ferrolb_speaker::bgp::pack::{self, PackContext};
use ferrolb_speaker::bgp::route::diff;
use ferrolb_speaker::bgp::wire::{Community, Family, Message, WireContext};
use ferrolb_speaker::bgp::{RouteAttrs, RouteSet};
use ipnet::{IpNet, Ipv4Net};

const CTX: PackContext = PackContext {
    local_as: 65001,
    ebgp: true,
    wire: WireContext {
        four_octet_as: true,
    },
};

fn host_routes(n: u32) -> RouteSet {
    let attrs = Arc::new(RouteAttrs {
        communities: [Community::new(64512, 1)].into_iter().collect(),
        ..RouteAttrs::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)))
    });
    let mut set = RouteSet::new();
    for i in 0..n {
        let net = Ipv4Net::new(Ipv4Addr::from(0xc633_6400u32 + i), 32).unwrap_or_default();
        let _ = set.insert(IpNet::V4(net), Arc::clone(&attrs));
    }
    set
}

fn bench(c: &mut Criterion) {
    let set = host_routes(10_000);
    let updates = pack::announcements(set.iter(), &CTX);
    let encoded: Vec<Vec<u8>> = updates
        .iter()
        .filter_map(|u| Message::Update(u.clone()).to_bytes(CTX.wire).ok())
        .collect();
    println!(
        "10,000 /32 routes with one attribute set: {} UPDATEs, {} octets",
        encoded.len(),
        encoded.iter().map(Vec::len).sum::<usize>()
    );

    c.bench_function("pack 10k routes", |b| {
        b.iter(|| pack::announcements(black_box(&set).iter(), &CTX))
    });
    c.bench_function("pack and encode 10k routes", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(64 * 1024);
            for u in pack::announcements(black_box(&set).iter(), &CTX) {
                let _ = Message::Update(u).encode(CTX.wire, &mut out);
            }
            out
        })
    });
    c.bench_function("decode 10k routes", |b| {
        b.iter(|| {
            for bytes in black_box(&encoded) {
                let _ = Message::decode(bytes, CTX.wire);
            }
        })
    });
    let mut changed = set.clone();
    let first = *set
        .iter()
        .next()
        .map(|(p, _)| p)
        .unwrap_or(&IpNet::default());
    changed.remove(&first);
    let families = Family::ALL.into_iter().collect();
    c.bench_function("diff 10k routes, one removed", |b| {
        b.iter(|| diff(black_box(&set), black_box(&changed), &families))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
