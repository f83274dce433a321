//! Packing routes into as few UPDATE messages as fit in 4096 octets.
//!
//! Routes are grouped by family and attributes; each group's attributes are written once
//! per message and its prefixes fill the rest, in prefix order. All prefixes of a /32 (or
//! /128) group have the same size, so filling each message before starting the next gives
//! the minimum number of messages.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::route::RouteAttrs;
use super::wire::{
    AsPath, HEADER_LEN, MAX_MESSAGE_LEN, MpReach, MpUnreach, Origin, PathAttribute, Update,
    WireContext,
};

/// Who the routes are for: decides AS_PATH, LOCAL_PREF and the 2- or 4-octet encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackContext {
    pub local_as: u32,
    pub ebgp: bool,
    pub wire: WireContext,
}

/// Octets of an UPDATE besides attributes and NLRI: header, and the two length fields.
const UPDATE_OVERHEAD: usize = HEADER_LEN + 2 + 2;

fn prefix_len(net: &IpNet) -> usize {
    1 + (net.prefix_len() as usize).div_ceil(8)
}

/// The attributes (except MP_REACH_NLRI) a route is sent with, in type-code order.
fn base_attributes(attrs: &RouteAttrs, ctx: &PackContext) -> Vec<PathAttribute> {
    let path = AsPath::origin(ctx.local_as, ctx.ebgp);
    let as4 = (!ctx.wire.four_octet_as && path.needs_four_octets()).then(|| path.clone());
    let mut out = vec![
        PathAttribute::Origin(Origin::Igp),
        PathAttribute::AsPath(path),
    ];
    if let IpAddr::V4(nh) = attrs.next_hop {
        out.push(PathAttribute::NextHop(nh));
    }
    if let (false, Some(lp)) = (ctx.ebgp, attrs.local_pref) {
        out.push(PathAttribute::LocalPref(lp));
    }
    if !attrs.communities.is_empty() {
        out.push(PathAttribute::Communities(
            attrs.communities.iter().copied().collect(),
        ));
    }
    out.extend(as4.map(PathAttribute::As4Path));
    if !attrs.large_communities.is_empty() {
        out.push(PathAttribute::LargeCommunities(
            attrs.large_communities.iter().copied().collect(),
        ));
    }
    out
}

fn encoded_len(attrs: &[PathAttribute], ctx: WireContext) -> usize {
    let mut buf = Vec::new();
    for a in attrs {
        a.encode(ctx, &mut buf);
    }
    buf.len()
}

/// Splits `nets` into runs whose encoded size fits `capacity` octets each.
fn chunks<T>(nets: Vec<T>, capacity: usize, size: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    let mut used = 0;
    for net in nets {
        let n = size(&net);
        if used + n > capacity && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            used = 0;
        }
        used += n;
        current.push(net);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// UPDATEs announcing `routes`. Routes whose next hop does not match their family are
/// skipped (a [`super::RouteSet`] never holds such routes).
pub fn announcements<'a>(
    routes: impl IntoIterator<Item = (&'a IpNet, &'a Arc<RouteAttrs>)>,
    ctx: &PackContext,
) -> Vec<Update> {
    let mut v4: BTreeMap<&RouteAttrs, Vec<Ipv4Net>> = BTreeMap::new();
    let mut v6: BTreeMap<&RouteAttrs, Vec<Ipv6Net>> = BTreeMap::new();
    for (prefix, attrs) in routes {
        match (prefix, attrs.next_hop) {
            (IpNet::V4(p), IpAddr::V4(_)) => v4.entry(attrs).or_default().push(*p),
            (IpNet::V6(p), IpAddr::V6(_)) => v6.entry(attrs).or_default().push(*p),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (attrs, nets) in v4 {
        let attributes = base_attributes(attrs, ctx);
        let capacity = MAX_MESSAGE_LEN - UPDATE_OVERHEAD - encoded_len(&attributes, ctx.wire);
        for nlri in chunks(nets, capacity, |n| prefix_len(&IpNet::V4(*n))) {
            out.push(Update {
                withdrawn: Vec::new(),
                attributes: attributes.clone(),
                nlri,
            });
        }
    }
    for (attrs, nets) in v6 {
        let IpAddr::V6(next_hop) = attrs.next_hop else {
            continue;
        };
        let base = base_attributes(attrs, ctx);
        let empty_reach = PathAttribute::MpReach(MpReach::Ipv6Unicast {
            next_hop,
            link_local: None,
            nlri: Vec::new(),
        });
        // The empty attribute has a 1-octet length; once filled it needs 2.
        let fixed = encoded_len(&base, ctx.wire) + empty_reach.wire_len(ctx.wire) + 1;
        let capacity = MAX_MESSAGE_LEN - UPDATE_OVERHEAD - fixed;
        for nlri in chunks(nets, capacity, |n| prefix_len(&IpNet::V6(*n))) {
            let mut attributes = base.clone();
            // MP_REACH_NLRI (14) goes before LARGE_COMMUNITY (32) to keep type order.
            let at = attributes
                .iter()
                .position(|a| a.type_code() > 14)
                .unwrap_or(attributes.len());
            attributes.insert(
                at,
                PathAttribute::MpReach(MpReach::Ipv6Unicast {
                    next_hop,
                    link_local: None,
                    nlri,
                }),
            );
            out.push(Update {
                withdrawn: Vec::new(),
                attributes,
                nlri: Vec::new(),
            });
        }
    }
    out
}

/// UPDATEs withdrawing `prefixes`.
pub fn withdrawals<'a>(prefixes: impl IntoIterator<Item = &'a IpNet>) -> Vec<Update> {
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for p in prefixes {
        match p {
            IpNet::V4(p) => v4.push(*p),
            IpNet::V6(p) => v6.push(*p),
        }
    }
    let mut out = Vec::new();
    for withdrawn in chunks(v4, MAX_MESSAGE_LEN - UPDATE_OVERHEAD, |n| {
        prefix_len(&IpNet::V4(*n))
    }) {
        out.push(Update {
            withdrawn,
            ..Update::default()
        });
    }
    // MP_UNREACH_NLRI: flags, type, 2-octet length, AFI, SAFI.
    let capacity = MAX_MESSAGE_LEN - UPDATE_OVERHEAD - 4 - 3;
    for nets in chunks(v6, capacity, |n| prefix_len(&IpNet::V6(*n))) {
        out.push(Update {
            attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(nets))],
            ..Update::default()
        });
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::BTreeSet;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;
    use crate::bgp::route::RouteSet;
    use crate::bgp::wire::tests::netgauze::{netgauze_decode, netgauze_reencode};
    use crate::bgp::wire::{Community, LargeCommunity, Message};

    const EBGP: PackContext = PackContext {
        local_as: 65001,
        ebgp: true,
        wire: WireContext {
            four_octet_as: true,
        },
    };

    fn host_routes_v4(n: u32, attrs: &Arc<RouteAttrs>) -> RouteSet {
        let mut set = RouteSet::new();
        for i in 0..n {
            // Counting up from 198.51.100.0; these only get encoded, never sent.
            let a = Ipv4Addr::from(0xc633_6400u32.wrapping_add(i));
            set.insert(IpNet::V4(Ipv4Net::new(a, 32).unwrap()), attrs.clone())
                .unwrap();
        }
        set
    }

    fn encode_all(updates: &[Update], ctx: WireContext) -> Vec<Vec<u8>> {
        updates
            .iter()
            .map(|u| Message::Update(u.clone()).to_bytes(ctx).unwrap())
            .collect()
    }

    /// Every message fits, decodes, and none could have taken one more prefix.
    fn check_tight(updates: &[Update], ctx: WireContext, prefix_octets: usize) {
        let encoded = encode_all(updates, ctx);
        for (i, bytes) in encoded.iter().enumerate() {
            assert!(bytes.len() <= MAX_MESSAGE_LEN);
            assert_eq!(
                Message::decode(bytes, ctx).unwrap(),
                Message::Update(updates[i].clone())
            );
            if i + 1 < encoded.len() {
                assert!(
                    bytes.len() + prefix_octets > MAX_MESSAGE_LEN,
                    "message {i} of {} octets had room for another prefix",
                    bytes.len()
                );
            }
        }
    }

    #[test]
    fn ten_thousand_host_routes_take_the_minimum_number_of_updates() {
        let attrs = Arc::new(RouteAttrs::new("192.0.2.2".parse().unwrap()));
        let set = host_routes_v4(10_000, &attrs);
        let updates = announcements(set.iter(), &EBGP);
        // ORIGIN 4 + AS_PATH 9 + NEXT_HOP 7 = 20 octets of attributes; 4096 - 23 - 20 =
        // 4053 octets for NLRI = 810 prefixes of 5 octets; 10,000 / 810 -> 13 messages.
        assert_eq!(updates.len(), 13);
        assert_eq!(updates[0].nlri.len(), 810);
        check_tight(&updates, EBGP.wire, 5);
        let all: BTreeSet<IpNet> = updates
            .iter()
            .flat_map(|u| u.nlri.iter().map(|n| IpNet::V4(*n)))
            .collect();
        assert_eq!(all.len(), 10_000);
        assert!(set.iter().all(|(p, _)| all.contains(p)));

        // 4096 - 23 = 4073 octets of withdrawn routes = 814 prefixes -> 13 messages.
        let prefixes: Vec<IpNet> = set.iter().map(|(p, _)| *p).collect();
        let w = withdrawals(prefixes.iter());
        assert_eq!(w.len(), 13);
        assert_eq!(w[0].withdrawn.len(), 814);
        check_tight(&w, EBGP.wire, 5);
    }

    #[test]
    fn ipv6_host_routes_fill_mp_reach() {
        let attrs = Arc::new(RouteAttrs::new("2001:db8::2".parse().unwrap()));
        let mut set = RouteSet::new();
        for i in 0..1000u128 {
            let a = Ipv6Addr::from(0x2001_0db8_0001_u128 << 80 | i);
            set.insert(IpNet::V6(Ipv6Net::new(a, 128).unwrap()), attrs.clone())
                .unwrap();
        }
        let updates = announcements(set.iter(), &EBGP);
        // ORIGIN 4 + AS_PATH 9 + MP_REACH header 4 + AFI/SAFI/len/next hop/reserved 21
        // = 38; 4096 - 23 - 38 = 4035 octets = 237 prefixes of 17 -> 5 messages.
        assert_eq!(updates.len(), 5);
        check_tight(&updates, EBGP.wire, 17);
        let prefixes: Vec<IpNet> = set.iter().map(|(p, _)| *p).collect();
        let w = withdrawals(prefixes.iter());
        // 4096 - 23 - 7 = 4066 octets = 239 prefixes -> 5 messages.
        assert_eq!(w.len(), 5);
        check_tight(&w, EBGP.wire, 17);
    }

    #[test]
    fn groups_by_attributes_and_sends_local_pref_only_over_ibgp() {
        let plain = Arc::new(RouteAttrs::new("192.0.2.2".parse().unwrap()));
        let tagged = Arc::new(RouteAttrs {
            communities: [Community::new(65535, 65282)].into_iter().collect(),
            large_communities: [LargeCommunity::new(64512, 1, 2)].into_iter().collect(),
            local_pref: Some(200),
            ..RouteAttrs::new("192.0.2.2".parse().unwrap())
        });
        let mut set = RouteSet::new();
        set.insert("198.51.100.1/32".parse().unwrap(), plain.clone())
            .unwrap();
        set.insert("198.51.100.2/32".parse().unwrap(), tagged.clone())
            .unwrap();
        set.insert("198.51.100.3/32".parse().unwrap(), plain.clone())
            .unwrap();
        let ibgp = PackContext {
            ebgp: false,
            ..EBGP
        };
        let updates = announcements(set.iter(), &ibgp);
        assert_eq!(updates.len(), 2);
        let with_lp = updates
            .iter()
            .find(|u| u.attributes.contains(&PathAttribute::LocalPref(200)))
            .unwrap();
        assert_eq!(
            with_lp.nlri,
            vec!["198.51.100.2/32".parse::<Ipv4Net>().unwrap()]
        );
        assert!(
            with_lp
                .attributes
                .contains(&PathAttribute::AsPath(AsPath::default()))
        );
        let ebgp = announcements(set.iter(), &EBGP);
        assert!(ebgp.iter().all(|u| {
            u.attributes
                .iter()
                .all(|a| !matches!(a, PathAttribute::LocalPref(_)))
        }));
    }

    #[test]
    fn four_octet_as_towards_an_old_speaker_adds_as4_path() {
        let ctx = PackContext {
            local_as: 4_200_000_000,
            ebgp: true,
            wire: WireContext {
                four_octet_as: false,
            },
        };
        let attrs = Arc::new(RouteAttrs::new("192.0.2.2".parse().unwrap()));
        let set = host_routes_v4(1, &attrs);
        let u = &announcements(set.iter(), &ctx)[0];
        assert!(
            u.attributes
                .contains(&PathAttribute::As4Path(AsPath::origin(4_200_000_000, true)))
        );
    }

    proptest! {
        #[test]
        fn packing_keeps_every_route_and_fits(
            v4 in prop::collection::btree_map(prop_oneof![(any::<u32>(), 0u8..=32), (0x0100_0000u32..0xe000_0000, 8u8..=32)], 0u8..4, 0..600),
            v6 in prop::collection::btree_map(prop_oneof![(any::<u128>(), 0u8..=128), (any::<u128>().prop_map(|a| (a >> 3) | (1u128 << 125)), 16u8..=128)], 0u8..4, 0..300),
        ) {
            let variants: Vec<(Arc<RouteAttrs>, Arc<RouteAttrs>)> = (0..4u32).map(|i| {
                let mut a4 = RouteAttrs::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, i as u8)));
                let mut a6 = RouteAttrs::new(IpAddr::V6(Ipv6Addr::from(0x2001_0db8_u128 << 96 | u128::from(i))));
                for a in [&mut a4, &mut a6] {
                    a.communities = (0..i * 7).map(Community).collect();
                    a.local_pref = (i % 2 == 0).then_some(i);
                }
                (Arc::new(a4), Arc::new(a6))
            }).collect();
            let mut set = RouteSet::new();
            // netgauze refuses multicast and other non-unicast prefixes in the unicast
            // families; check it on sets without them.
            let unicast = v4.keys().all(|(a, l)| *l >= 8 && (0x0100_0000..0xe000_0000).contains(a))
                && v6.keys().all(|(a, l)| *l >= 16 && a >> 125 == 1);
            for ((a, l), v) in v4 {
                set.insert(IpNet::V4(Ipv4Net::new(Ipv4Addr::from(a), l).unwrap()), variants[v as usize].0.clone()).unwrap();
            }
            for ((a, l), v) in v6 {
                set.insert(IpNet::V6(Ipv6Net::new(Ipv6Addr::from(a), l).unwrap()), variants[v as usize].1.clone()).unwrap();
            }
            for ctx in [EBGP, PackContext { ebgp: false, ..EBGP }] {
                let updates = announcements(set.iter(), &ctx);
                let mut seen = BTreeSet::new();
                for bytes in encode_all(&updates, ctx.wire) {
                    prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
                    if unicast {
                        let theirs = netgauze_decode(&bytes, true);
                        prop_assert_eq!(netgauze_reencode(&theirs), bytes.clone());
                    }
                    let Message::Update(u) = Message::decode(&bytes, ctx.wire).unwrap() else { unreachable!() };
                    seen.extend(u.nlri.iter().map(|n| IpNet::V4(*n)));
                    for a in &u.attributes {
                        if let PathAttribute::MpReach(MpReach::Ipv6Unicast { nlri, .. }) = a {
                            seen.extend(nlri.iter().map(|n| IpNet::V6(*n)));
                        }
                    }
                }
                let want: BTreeSet<IpNet> = set.iter().map(|(p, _)| *p).collect();
                prop_assert_eq!(&seen, &want);
                let w = withdrawals(want.iter());
                for bytes in encode_all(&w, ctx.wire) {
                    prop_assert!(bytes.len() <= MAX_MESSAGE_LEN);
                }
            }
        }
    }
}
