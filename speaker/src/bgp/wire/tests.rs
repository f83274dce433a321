use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};
use proptest::prelude::*;

use super::*;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const MARKER: &str = "ffffffff ffffffff ffffffff ffffffff";
const CTX: WireContext = WireContext {
    four_octet_as: true,
};

fn vector(header_rest: &str, body: &str) -> Vec<u8> {
    hex(&format!("{MARKER} {header_rest} {body}"))
}

fn check(message: Message, bytes: Vec<u8>) {
    assert_eq!(
        message.to_bytes(CTX).unwrap(),
        bytes,
        "encoding of {message:?}"
    );
    assert_eq!(Message::decode(&bytes, CTX).unwrap(), message);
}

#[test]
fn keepalive_vector() {
    check(Message::Keepalive(Keepalive), vector("0013 04", ""));
}

#[test]
fn open_vector() {
    let open = Open {
        my_as: 65001,
        hold_time: 90,
        bgp_id: Ipv4Addr::new(192, 0, 2, 2),
        capabilities: vec![
            Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
            Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::FourOctetAs(65001),
            Capability::GracefulRestart(GracefulRestartCap {
                restart_state: true,
                notification: false,
                restart_time: 120,
                families: vec![
                    GracefulRestartFamily {
                        afi_safi: AfiSafi::IPV4_UNICAST,
                        forwarding_preserved: true,
                    },
                    GracefulRestartFamily {
                        afi_safi: AfiSafi::IPV6_UNICAST,
                        forwarding_preserved: true,
                    },
                ],
            }),
        ],
    };
    // version 4, AS 65001, hold 90, id 192.0.2.2, 34 octets of parameters: one
    // capabilities parameter (type 2) of 32 octets.
    let body = "04 fde9 005a c0000202 22 02 20
                01 04 0001 00 01
                01 04 0002 00 01
                02 00
                41 04 0000fde9
                40 0a 8078 0001 01 80 0002 01 80";
    check(Message::Open(open.clone()), vector("003f 01", body));
    assert_eq!(open.asn(), 65001);
    assert!(open.supports_family(Family::Ipv6Unicast));
}

#[test]
fn open_with_four_octet_as_uses_as_trans() {
    // 4200000000 = 0xFA56EA00; the 2-octet field carries AS_TRANS (23456 = 0x5BA0).
    let open = Open {
        my_as: AS_TRANS,
        hold_time: 0,
        bgp_id: Ipv4Addr::new(192, 0, 2, 1),
        capabilities: vec![Capability::FourOctetAs(4_200_000_000)],
    };
    let bytes = vector("0025 01", "04 5ba0 0000 c0000201 08 02 06 41 04 fa56ea00");
    check(Message::Open(open.clone()), bytes);
    assert_eq!(open.asn(), 4_200_000_000);
    // Without multiprotocol capabilities only IPv4 unicast is spoken (RFC 4760 §8).
    assert_eq!(open.multiprotocol(), vec![AfiSafi::IPV4_UNICAST]);
}

#[test]
fn open_in_several_parameters_and_extended_form() {
    // One capability per parameter, as some implementations send it.
    let bytes = vector(
        "0029 01",
        "04 fde9 005a c0000202 0c 02 02 02 00 02 06 41 04 0000fde9",
    );
    let Message::Open(open) = Message::decode(&bytes, CTX).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!(
        open.capabilities,
        vec![Capability::RouteRefresh, Capability::FourOctetAs(65001)]
    );
    // RFC 9072 layout: 255, type 255, 2-octet length, parameters with 2-octet lengths.
    let bytes = vector(
        "0029 01",
        "04 fde9 005a c0000202 ff ff 0009 02 0006 41 04 0000fde9",
    );
    let Message::Open(open) = Message::decode(&bytes, CTX).unwrap() else {
        panic!("not an OPEN")
    };
    assert_eq!(open.capabilities, vec![Capability::FourOctetAs(65001)]);
}

fn v4(s: &str) -> Ipv4Net {
    s.parse().unwrap()
}
fn v6(s: &str) -> Ipv6Net {
    s.parse().unwrap()
}

#[test]
fn update_ipv4_ebgp_vector() {
    let update = Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::origin(65001, true)),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 2)),
            PathAttribute::Communities(vec![Community::new(65535, 65282)]),
            PathAttribute::LargeCommunities(vec![LargeCommunity::new(64512, 1, 2)]),
        ],
        nlri: vec![v4("198.51.100.10/32")],
    };
    let body = "0000 002a
                40 01 01 00
                40 02 06 02 01 0000fde9
                40 03 04 c0000202
                c0 08 04 ffffff02
                c0 20 0c 0000fc00 00000001 00000002
                20 c633640a";
    check(Message::Update(update), vector("0046 02", body));
}

#[test]
fn update_ipv4_ibgp_with_local_pref_and_withdrawal() {
    let update = Update {
        withdrawn: vec![
            v4("198.51.100.0/24"),
            v4("0.0.0.0/0"),
            v4("203.0.113.128/25"),
        ],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::origin(65001, false)),
            PathAttribute::NextHop(Ipv4Addr::new(192, 0, 2, 2)),
            PathAttribute::LocalPref(200),
        ],
        nlri: vec![v4("198.51.100.10/32"), v4("198.51.100.11/32")],
    };
    let body = "000a 18 c63364 00 19 cb007180
                0015
                40 01 01 00
                40 02 00
                40 03 04 c0000202
                40 05 04 000000c8
                20 c633640a 20 c633640b";
    check(Message::Update(update), vector("0040 02", body));
}

#[test]
fn update_ipv6_mp_reach_and_unreach_vector() {
    let nh = "2001:db8::2".parse::<Ipv6Addr>().unwrap();
    let update = Update {
        withdrawn: vec![],
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::origin(65001, true)),
            PathAttribute::MpReach(MpReach::Ipv6Unicast {
                next_hop: nh,
                link_local: None,
                nlri: vec![v6("2001:db8:1::10/128")],
            }),
        ],
        nlri: vec![],
    };
    let body = "0000 0036
                40 01 01 00
                40 02 06 02 01 0000fde9
                80 0e 26 0002 01 10 20010db8000000000000000000000002 00
                   80 20010db8000100000000000000000010";
    check(Message::Update(update), vector("004d 02", body));

    let withdraw = Update {
        attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(vec![v6(
            "2001:db8:1::/48",
        )]))],
        ..Update::default()
    };
    check(
        Message::Update(withdraw),
        vector("0024 02", "0000 000d 80 0f 0a 0002 01 30 20010db80001"),
    );
}

#[test]
fn end_of_rib_vectors() {
    let eor4 = Update::end_of_rib(Family::Ipv4Unicast);
    check(
        Message::Update(eor4.clone()),
        vector("0017 02", "0000 0000"),
    );
    assert_eq!(eor4.as_end_of_rib(), Some(AfiSafi::IPV4_UNICAST));
    let eor6 = Update::end_of_rib(Family::Ipv6Unicast);
    check(
        Message::Update(eor6.clone()),
        vector("001d 02", "0000 0006 80 0f 03 0002 01"),
    );
    assert_eq!(eor6.as_end_of_rib(), Some(AfiSafi::IPV6_UNICAST));
}

#[test]
fn two_octet_as_path_uses_as_trans() {
    let ctx = WireContext {
        four_octet_as: false,
    };
    let update = Update {
        attributes: vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::origin(4_200_000_000, true)),
            PathAttribute::As4Path(AsPath::origin(4_200_000_000, true)),
        ],
        ..Update::default()
    };
    let bytes = Message::Update(update).to_bytes(ctx).unwrap();
    assert_eq!(
        bytes,
        vector(
            "002b 02",
            "0000 0014 40 01 01 00 40 02 04 02 01 5ba0 c0 11 06 02 01 fa56ea00"
        )
    );
}

#[test]
fn notification_and_route_refresh_vectors() {
    check(
        Message::Notification(Notification::new(ErrorCode::Cease(
            CeaseSubcode::AdministrativeShutdown,
        ))),
        vector("0015 03", "06 02"),
    );
    check(
        Message::Notification(Notification::new(ErrorCode::HoldTimerExpired)),
        vector("0015 03", "04 00"),
    );
    let n = Notification {
        error: ErrorCode::Open(OpenSubcode::BadPeerAs),
        data: vec![0xfd, 0xe9],
    };
    check(
        Message::Notification(n.clone()),
        vector("0017 03", "02 02 fde9"),
    );
    assert_eq!(n.to_string(), "OPEN message error: bad peer AS, data fd e9");
    let shut = Notification::cease_with_message(CeaseSubcode::AdministrativeShutdown, "bye");
    check(
        Message::Notification(shut.clone()),
        vector("0019 03", "06 02 03 627965"),
    );
    assert_eq!(shut.shutdown_message(), Some("bye"));
    check(
        Message::RouteRefresh(RouteRefresh {
            afi_safi: AfiSafi::IPV6_UNICAST,
            subtype: 0,
        }),
        vector("0017 05", "0002 00 01"),
    );
}

/// Messages captured from real implementations (BIRD 2.0.12 and GoBGP 3.10.0 in a
/// private namespace, sent to a hand-written client): we decode them as they meant, and
/// re-encode them to the same octets.
#[test]
fn captured_from_bird_and_gobgp() {
    let captured = [
        // BIRD: OPEN, AS 65000, hold 240; MP v4, MP v6, route refresh, graceful restart
        // (aware: 120 s, no families), 4-octet AS, enhanced route refresh (70),
        // long-lived graceful restart (71).
        "ffffffffffffffffffffffffffffffff003b0104fde800f0c00002011e021c01040001000101040002000102004002007841040000fde846004700",
        // BIRD: UPDATE 203.0.113.0/24, IGP, AS_PATH 65000, next hop 192.0.2.1, 64512:1.
        "ffffffffffffffffffffffffffffffff0036020000001b4001010040020602010000fde8400304c0000201c00804fc00000118cb0071",
        // BIRD: End-of-RIB for IPv4 and IPv6.
        "ffffffffffffffffffffffffffffffff00170200000000",
        "ffffffffffffffffffffffffffffffff001d0200000006800f03000201",
        // GoBGP: OPEN with route refresh, FQDN (73) "vm", MP v4, MP v6, 4-octet AS and
        // extended next hop (5).
        "ffffffffffffffffffffffffffffffff00410104fde8005ac00002012402220200490402766d0001040001000101040002000141040000fde80506000100010002",
        // GoBGP: UPDATE 203.0.113.0/24, INCOMPLETE, community and large community.
        "ffffffffffffffffffffffffffffffff0045020000002a4001010240020602010000fde8400304c0000201c00804fc000001c0200c0000fc00000000010000000218cb0071",
        // GoBGP: UPDATE 2001:db8:2::/48 via 2001:db8::1 in MP_REACH_NLRI.
        "ffffffffffffffffffffffffffffffff0043020000002c4001010240020602010000fde8800e1c0002011020010db8000000000000000000000001003020010db80002",
    ];
    let decoded: Vec<Message> = captured
        .iter()
        .map(|h| {
            let bytes = hex(h);
            let m = Message::decode(&bytes, CTX).unwrap();
            assert_eq!(m.to_bytes(CTX).unwrap(), bytes, "re-encoding {m:?}");
            m
        })
        .collect();
    let Message::Open(bird) = &decoded[0] else {
        panic!()
    };
    assert_eq!((bird.asn(), bird.hold_time), (65000, 240));
    assert!(bird.supports_route_refresh() && bird.supports_family(Family::Ipv6Unicast));
    let gr = bird.graceful_restart().unwrap();
    assert_eq!((gr.restart_time, gr.families.len()), (120, 0));
    assert!(bird.capabilities.contains(&Capability::Unknown {
        code: 71,
        value: vec![]
    }));
    let Message::Update(u) = &decoded[1] else {
        panic!()
    };
    assert_eq!(u.nlri, vec![v4("203.0.113.0/24")]);
    assert!(
        u.attributes
            .contains(&PathAttribute::Communities(vec![Community::new(64512, 1)]))
    );
    let Message::Update(eor4) = &decoded[2] else {
        panic!()
    };
    assert_eq!(eor4.as_end_of_rib(), Some(AfiSafi::IPV4_UNICAST));
    let Message::Update(eor6) = &decoded[3] else {
        panic!()
    };
    assert_eq!(eor6.as_end_of_rib(), Some(AfiSafi::IPV6_UNICAST));
    let Message::Open(gobgp) = &decoded[4] else {
        panic!()
    };
    assert_eq!(gobgp.asn(), 65000);
    assert!(gobgp.graceful_restart().is_none());
    let Message::Update(u) = &decoded[5] else {
        panic!()
    };
    assert_eq!(u.attributes[0], PathAttribute::Origin(Origin::Incomplete));
    assert!(
        u.attributes
            .contains(&PathAttribute::LargeCommunities(vec![LargeCommunity::new(
                64512, 1, 2
            )]))
    );
    let Message::Update(u) = &decoded[6] else {
        panic!()
    };
    assert_eq!(
        u.attributes[2],
        PathAttribute::MpReach(MpReach::Ipv6Unicast {
            next_hop: "2001:db8::1".parse().unwrap(),
            link_local: None,
            nlri: vec![v6("2001:db8:2::/48")],
        })
    );
}

fn decode_err(bytes: &[u8]) -> DecodeError {
    Message::decode(bytes, CTX).unwrap_err()
}

fn codes(e: &DecodeError) -> (u8, u8, Vec<u8>) {
    let n = e.notification();
    let (c, s) = n.error.to_codes();
    (c, s, n.data)
}

#[test]
fn header_errors_map_to_notifications() {
    let mut bad_marker = vector("0013 04", "");
    bad_marker[3] = 0;
    assert_eq!(codes(&decode_err(&bad_marker)), (1, 1, vec![]));
    assert_eq!(
        frame_length(&bad_marker[..5]),
        Err(DecodeError::ConnectionNotSynchronized)
    );
    assert_eq!(
        codes(&decode_err(&vector("0012 04", ""))),
        (1, 2, vec![0, 18])
    );
    assert_eq!(
        codes(&decode_err(&vector("1001 04", ""))),
        (1, 2, vec![0x10, 0x01])
    );
    assert_eq!(codes(&decode_err(&vector("0013 09", ""))), (1, 3, vec![9]));
    // A KEEPALIVE must be exactly 19 octets.
    assert_eq!(
        codes(&decode_err(&vector("0014 04", "00"))),
        (1, 2, vec![0, 20])
    );
    // NOTIFICATION shorter than code and subcode.
    assert_eq!(
        codes(&decode_err(&vector("0014 03", "06"))),
        (1, 2, vec![0, 20])
    );
    assert_eq!(
        codes(&decode_err(&vector("0018 05", "0001 00 01 00"))),
        (7, 1, vec![])
    );
}

#[test]
fn frame_length_waits_for_whole_message() {
    let bytes = vector("0017 02", "0000 0000");
    assert_eq!(frame_length(&bytes[..10]), Ok(None));
    assert_eq!(frame_length(&bytes[..22]), Ok(None));
    assert_eq!(frame_length(&bytes), Ok(Some(23)));
    let mut two = bytes.clone();
    two.extend_from_slice(&bytes);
    assert_eq!(frame_length(&two), Ok(Some(23)));
}

#[test]
fn open_errors_map_to_notifications() {
    let e = decode_err(&vector("001d 01", "03 fde9 005a c0000202 00"));
    assert_eq!(codes(&e), (2, 1, vec![0, 4]));
    // An optional parameter of type 1 (authentication, deprecated).
    let e = decode_err(&vector("0020 01", "04 fde9 005a c0000202 03 01 01 00"));
    assert_eq!(codes(&e), (2, 4, vec![]));
    // Parameter length larger than the message.
    let e = decode_err(&vector("001d 01", "04 fde9 005a c0000202 05"));
    assert_eq!(codes(&e), (2, 0, vec![]));
    // 4-octet AS capability of length 2.
    let e = decode_err(&vector(
        "0023 01",
        "04 fde9 005a c0000202 06 02 04 41 02 fde9",
    ));
    assert_eq!(codes(&e), (2, 0, vec![]));
}

#[test]
fn update_errors_map_to_notifications_and_rfc7606_handling() {
    // Withdrawn routes length beyond the message.
    let e = decode_err(&vector("0017 02", "0005 0000"));
    assert_eq!(codes(&e), (3, 1, vec![]));
    assert_eq!(e.handling(), ErrorHandling::SessionReset);
    // ORIGIN value 5: treat-as-withdraw, data is the attribute.
    let e = decode_err(&vector("001b 02", "0000 0004 40 01 01 05"));
    assert_eq!(codes(&e), (3, 6, hex("40 01 01 05")));
    assert_eq!(e.handling(), ErrorHandling::TreatAsWithdraw);
    // ORIGIN with the optional bit.
    let e = decode_err(&vector("001b 02", "0000 0004 c0 01 01 00"));
    assert_eq!(codes(&e), (3, 4, hex("c0 01 01 00")));
    // NEXT_HOP of 3 octets.
    let e = decode_err(&vector("0021 02", "0000 000a 40 01 01 00 40 03 03 c00002"));
    assert_eq!(codes(&e), (3, 5, hex("40 03 03 c00002")));
    // An unknown well-known attribute (type 99, optional bit clear).
    let e = decode_err(&vector("001b 02", "0000 0004 40 63 01 00"));
    assert_eq!(codes(&e), (3, 2, hex("40 63 01 00")));
    assert_eq!(e.handling(), ErrorHandling::SessionReset);
    // NLRI without NEXT_HOP: missing well-known attribute 3.
    let e = decode_err(&vector(
        "0023 02",
        "0000 0007 40 01 01 00 40 02 00 20 c633640a",
    ));
    assert_eq!(codes(&e), (3, 3, vec![3]));
    assert_eq!(e.handling(), ErrorHandling::TreatAsWithdraw);
    // NLRI prefix length 33.
    let e = decode_err(&vector("001d 02", "0000 0000 21 c633640a00"));
    assert_eq!(codes(&e), (3, 10, vec![]));
    assert_eq!(e.handling(), ErrorHandling::SessionReset);
    // AS_PATH segment with zero ASes.
    let e = decode_err(&vector("0020 02", "0000 0009 40 01 01 00 40 02 02 02 00"));
    assert_eq!(codes(&e), (3, 11, vec![]));
    // Attribute length beyond the attribute list.
    let e = decode_err(&vector("001b 02", "0000 0004 40 01 05 00"));
    assert_eq!(codes(&e), (3, 1, vec![]));
    // MP_REACH_NLRI with an IPv6 next hop of 4 octets resets the session.
    let e = decode_err(&vector(
        "0023 02",
        "0000 000c 80 0e 09 0002 01 04 c0000202 00",
    ));
    assert_eq!(e.handling(), ErrorHandling::SessionReset);
    assert_eq!(codes(&e).0, 3);
    // A session-reset error later in the message wins over a treat-as-withdraw one.
    let e = decode_err(&vector("0021 02", "0000 0004 40 01 01 05 21 c633640a00"));
    assert_eq!(e.handling(), ErrorHandling::SessionReset);
}

#[test]
fn malformed_aggregator_is_discarded() {
    // AGGREGATOR of 3 octets is dropped; the rest of the UPDATE stands.
    let bytes = vector(
        "0027 02",
        "0000 0010 40 01 01 00 40 02 00 c0 07 03 000000 40 06 00",
    );
    let Message::Update(u) = Message::decode(&bytes, CTX).unwrap() else {
        panic!("not an UPDATE")
    };
    assert_eq!(
        u.attributes,
        vec![
            PathAttribute::Origin(Origin::Igp),
            PathAttribute::AsPath(AsPath::default()),
            PathAttribute::AtomicAggregate
        ]
    );
}

#[test]
fn repeated_attribute_keeps_first() {
    let bytes = vector("001f 02", "0000 0008 40 01 01 00 40 01 01 02");
    let Message::Update(u) = Message::decode(&bytes, CTX).unwrap() else {
        panic!("not an UPDATE")
    };
    assert_eq!(u.attributes, vec![PathAttribute::Origin(Origin::Igp)]);
}

#[test]
fn community_strings() {
    assert_eq!(
        "65535:65282".parse::<Community>().unwrap(),
        Community::NO_ADVERTISE
    );
    assert_eq!(Community::NO_EXPORT.to_string(), "65535:65281");
    assert!("65536:1".parse::<Community>().is_err());
    assert_eq!(
        "4200000000:1:2".parse::<LargeCommunity>().unwrap(),
        LargeCommunity::new(4_200_000_000, 1, 2)
    );
    assert!("1:2".parse::<LargeCommunity>().is_err());
    assert!("1:2:3:4".parse::<LargeCommunity>().is_err());
}

// ---- property tests ----

pub(crate) mod strategies {
    use super::*;

    pub fn ipv4net() -> impl Strategy<Value = Ipv4Net> {
        (any::<u32>(), 0u8..=32)
            .prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
    }

    pub fn ipv6net() -> impl Strategy<Value = Ipv6Net> {
        (any::<u128>(), 0u8..=128)
            .prop_map(|(a, l)| Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc())
    }

    fn as_path(four_octet: bool) -> impl Strategy<Value = AsPath> {
        let asn = if four_octet {
            any::<u32>().boxed()
        } else {
            any::<u16>().prop_map(u32::from).boxed()
        };
        let kind = prop_oneof![
            Just(AsSegmentKind::Set),
            Just(AsSegmentKind::Sequence),
            Just(AsSegmentKind::ConfedSequence),
            Just(AsSegmentKind::ConfedSet)
        ];
        prop::collection::vec(
            (kind, prop::collection::vec(asn, 1..20))
                .prop_map(|(kind, asns)| AsSegment { kind, asns }),
            0..4,
        )
        .prop_map(|segments| AsPath { segments })
    }

    fn other_afi_safi() -> impl Strategy<Value = AfiSafi> {
        (any::<u16>(), any::<u8>())
            .prop_map(|(afi, safi)| AfiSafi { afi, safi })
            .prop_filter("not a typed family", |f| f.family().is_none())
    }

    fn mp_reach() -> impl Strategy<Value = MpReach> {
        prop_oneof![
            (any::<u32>(), prop::collection::vec(ipv4net(), 0..10)).prop_map(|(nh, nlri)| {
                MpReach::Ipv4Unicast {
                    next_hop: Ipv4Addr::from(nh),
                    nlri,
                }
            }),
            (
                any::<u128>(),
                prop::option::of(any::<u128>()),
                prop::collection::vec(ipv6net(), 0..10)
            )
                .prop_map(|(nh, ll, nlri)| MpReach::Ipv6Unicast {
                    next_hop: Ipv6Addr::from(nh),
                    link_local: ll.map(Ipv6Addr::from),
                    nlri,
                }),
            (other_afi_safi(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(afi_safi, value)| MpReach::Other { afi_safi, value }),
        ]
    }

    fn mp_unreach() -> impl Strategy<Value = MpUnreach> {
        prop_oneof![
            prop::collection::vec(ipv4net(), 0..10).prop_map(MpUnreach::Ipv4Unicast),
            prop::collection::vec(ipv6net(), 0..10).prop_map(MpUnreach::Ipv6Unicast),
            (other_afi_safi(), prop::collection::vec(any::<u8>(), 0..40))
                .prop_map(|(afi_safi, value)| MpUnreach::Other { afi_safi, value }),
        ]
    }

    /// Valid UPDATEs: each attribute at most once, mandatory ones present whenever routes
    /// are announced.
    pub fn update(four_octet: bool) -> impl Strategy<Value = Update> {
        let origin = prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ];
        let asn = if four_octet {
            any::<u32>().boxed()
        } else {
            any::<u16>().prop_map(u32::from).boxed()
        };
        (
            prop::collection::vec(ipv4net(), 0..20),
            prop::collection::vec(ipv4net(), 0..20),
            (origin, as_path(four_octet), any::<u32>()),
            (
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u32>()),
                any::<bool>(),
                prop::option::of((asn, any::<u32>())),
            ),
            (
                prop::collection::vec(any::<u32>().prop_map(Community), 0..10),
                prop::collection::vec(
                    (any::<u32>(), any::<u32>(), any::<u32>())
                        .prop_map(|(a, b, c)| LargeCommunity::new(a, b, c)),
                    0..5,
                ),
                prop::option::of(mp_reach()),
                prop::option::of(mp_unreach()),
                prop::option::of(as_path(true)),
                prop::option::of((
                    prop_oneof![Just(0x80u8), Just(0xc0), Just(0xe0)],
                    100u8..=200,
                    prop::collection::vec(any::<u8>(), 0..300),
                )),
            ),
        )
            .prop_map(
                |(withdrawn, nlri, (origin, path, nh), (med, lp, atomic, aggr), rest)| {
                    let (communities, large, reach, unreach, as4, unknown) = rest;
                    let mut attributes = Vec::new();
                    let announces = !nlri.is_empty() || reach.is_some();
                    if announces || origin != Origin::Igp {
                        attributes.push(PathAttribute::Origin(origin));
                        attributes.push(PathAttribute::AsPath(path));
                    }
                    if !nlri.is_empty() {
                        attributes.push(PathAttribute::NextHop(Ipv4Addr::from(nh)));
                    }
                    attributes.extend(med.map(PathAttribute::MultiExitDisc));
                    attributes.extend(lp.map(PathAttribute::LocalPref));
                    if atomic {
                        attributes.push(PathAttribute::AtomicAggregate);
                    }
                    if let Some((asn, a)) = aggr {
                        attributes.push(PathAttribute::Aggregator {
                            asn,
                            address: Ipv4Addr::from(a),
                        });
                    }
                    if !communities.is_empty() {
                        attributes.push(PathAttribute::Communities(communities));
                    }
                    if !large.is_empty() {
                        attributes.push(PathAttribute::LargeCommunities(large));
                    }
                    attributes.extend(reach.map(PathAttribute::MpReach));
                    attributes.extend(unreach.map(PathAttribute::MpUnreach));
                    attributes.extend(as4.map(PathAttribute::As4Path));
                    if let Some((flags, type_code, value)) = unknown {
                        attributes.push(PathAttribute::Unknown {
                            flags,
                            type_code,
                            value,
                        });
                    }
                    Update {
                        withdrawn,
                        attributes,
                        nlri,
                    }
                },
            )
    }

    fn capability() -> impl Strategy<Value = Capability> {
        let afi_safi = (any::<u16>(), any::<u8>()).prop_map(|(afi, safi)| AfiSafi { afi, safi });
        prop_oneof![
            afi_safi.clone().prop_map(Capability::Multiprotocol),
            Just(Capability::RouteRefresh),
            any::<u32>().prop_map(Capability::FourOctetAs),
            (
                any::<bool>(),
                any::<bool>(),
                0u16..4096,
                prop::collection::vec((afi_safi, any::<bool>()), 0..4)
            )
                .prop_map(|(r, n, t, fams)| Capability::GracefulRestart(
                    GracefulRestartCap {
                        restart_state: r,
                        notification: n,
                        restart_time: t,
                        families: fams
                            .into_iter()
                            .map(|(afi_safi, f)| GracefulRestartFamily {
                                afi_safi,
                                forwarding_preserved: f
                            })
                            .collect(),
                    }
                )),
            (
                prop_oneof![3u8..=63, 66u8..=255],
                prop::collection::vec(any::<u8>(), 0..20)
            )
                .prop_map(|(code, value)| Capability::Unknown { code, value }),
        ]
    }

    pub fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            (
                any::<u16>(),
                any::<u16>(),
                any::<u32>(),
                prop::collection::vec(capability(), 0..40)
            )
                .prop_map(|(my_as, hold_time, id, capabilities)| Message::Open(Open {
                    my_as,
                    hold_time,
                    bgp_id: Ipv4Addr::from(id),
                    capabilities,
                })),
            update(true).prop_map(Message::Update),
            (
                any::<u8>(),
                any::<u8>(),
                prop::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(c, s, data)| Message::Notification(Notification {
                    error: ErrorCode::from_codes(c, s),
                    data
                })),
            Just(Message::Keepalive(Keepalive)),
            (any::<u16>(), any::<u8>(), any::<u8>()).prop_map(|(afi, subtype, safi)| {
                Message::RouteRefresh(RouteRefresh {
                    afi_safi: AfiSafi { afi, safi },
                    subtype,
                })
            }),
        ]
    }
}

/// 2000 cases, or `PROPTEST_CASES` to run longer (a stand-in for the fuzzer).
fn cases() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    ProptestConfig::with_cases(cases)
}

proptest! {
    #![proptest_config(cases())]

    #[test]
    fn message_round_trip(message in strategies::message()) {
        let bytes = message.to_bytes(CTX).unwrap();
        prop_assert_eq!(frame_length(&bytes), Ok(Some(bytes.len())));
        prop_assert_eq!(Message::decode(&bytes, CTX).unwrap(), message);
    }

    #[test]
    fn two_octet_update_round_trip(update in strategies::update(false)) {
        let ctx = WireContext { four_octet_as: false };
        let message = Message::Update(update);
        let bytes = message.to_bytes(ctx).unwrap();
        prop_assert_eq!(Message::decode(&bytes, ctx).unwrap(), message);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(body in prop::collection::vec(any::<u8>(), 0..600), kind in 0u8..8) {
        let mut bytes = vec![0xff; 16];
        bytes.extend_from_slice(&((body.len() + 19) as u16).to_be_bytes());
        bytes.push(kind);
        bytes.extend_from_slice(&body);
        for ctx in [CTX, WireContext { four_octet_as: false }] {
            if let Err(e) = Message::decode(&bytes, ctx) {
                // Every error yields a NOTIFICATION that itself encodes.
                let n = Message::Notification(e.notification());
                prop_assert!(n.to_bytes(ctx).is_ok());
            }
        }
        let _ = Message::decode(&body, CTX);
        let _ = frame_length(&body);
    }

    #[test]
    fn mutated_messages_never_panic(message in strategies::message(), flips in prop::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let mut bytes = message.to_bytes(CTX).unwrap();
        for (at, value) in flips {
            let i = 19 + at % (bytes.len() - 18).max(1);
            if i < bytes.len() {
                bytes[i] = value;
            }
        }
        let _ = Message::decode(&bytes, CTX);
    }
}

/// netgauze-bgp-pkt, an independent implementation, must decode what we encode; where it
/// re-encodes the same bytes it also understood every field.
pub(crate) mod netgauze {
    use std::collections::HashMap;

    use netgauze_bgp_pkt::BgpMessage;
    use netgauze_bgp_pkt::wire::deserializer::BgpParsingContext;
    use netgauze_parse_utils::WritablePdu;
    use netgauze_parse_utils::reader::SliceReader;
    use netgauze_parse_utils::traits::ParseFromWithOneInput;

    use super::*;

    pub(crate) fn netgauze_decode(bytes: &[u8], four_octet_as: bool) -> BgpMessage {
        let mut ctx = BgpParsingContext::new(
            four_octet_as,
            HashMap::new(),
            HashMap::new(),
            true,
            true,
            true,
            true,
        );
        let mut reader = SliceReader::new(bytes);
        let message = BgpMessage::parse(&mut reader, &mut ctx)
            .unwrap_or_else(|e| panic!("netgauze rejected {bytes:02x?}: {e:?}"));
        assert!(reader.is_empty(), "netgauze left octets unread");
        message
    }

    pub(crate) fn netgauze_reencode(message: &BgpMessage) -> Vec<u8> {
        let mut out = Vec::new();
        message.write(&mut out).unwrap();
        out
    }

    /// Unicast prefixes: netgauze refuses multicast ones in the unicast families.
    fn unicast_v4() -> impl Strategy<Value = Ipv4Net> {
        (0x0100_0000u32..0xe000_0000, 8u8..=32)
            .prop_map(|(a, l)| Ipv4Net::new(Ipv4Addr::from(a), l).unwrap().trunc())
    }

    fn unicast_v6() -> impl Strategy<Value = Ipv6Net> {
        (any::<u128>(), 16u8..=128).prop_map(|(a, l)| {
            let a = (a >> 3) | (1u128 << 125);
            Ipv6Net::new(Ipv6Addr::from(a), l).unwrap().trunc()
        })
    }

    /// Messages of the kinds this speaker sends, with realistic contents.
    fn sent_message() -> impl Strategy<Value = Message> {
        let communities = prop::collection::vec(any::<u32>().prop_map(Community), 0..6);
        let large = prop::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u32>())
                .prop_map(|(a, b, c)| LargeCommunity::new(a, b, c)),
            0..4,
        );
        let v4_update = (
            prop::collection::vec(unicast_v4(), 0..50),
            prop::collection::vec(unicast_v4(), 1..50),
            any::<u32>(),
            any::<bool>(),
            prop::option::of(any::<u32>()),
            communities.clone(),
            large.clone(),
        )
            .prop_map(|(withdrawn, nlri, nh, ebgp, lp, c, l)| {
                let mut attributes = vec![
                    PathAttribute::Origin(Origin::Igp),
                    PathAttribute::AsPath(AsPath::origin(4_200_000_001, ebgp)),
                    PathAttribute::NextHop(Ipv4Addr::from(nh)),
                ];
                attributes.extend(lp.map(PathAttribute::LocalPref));
                if !c.is_empty() {
                    attributes.push(PathAttribute::Communities(c));
                }
                if !l.is_empty() {
                    attributes.push(PathAttribute::LargeCommunities(l));
                }
                Message::Update(Update {
                    withdrawn,
                    attributes,
                    nlri,
                })
            });
        let v6_update = (
            prop::collection::vec(unicast_v6(), 1..50),
            any::<u128>(),
            prop::option::of(any::<u128>()),
            communities,
            large,
        )
            .prop_map(|(nlri, nh, ll, c, l)| {
                let mut attributes = vec![
                    PathAttribute::Origin(Origin::Igp),
                    PathAttribute::AsPath(AsPath::origin(65001, true)),
                ];
                if !c.is_empty() {
                    attributes.push(PathAttribute::Communities(c));
                }
                if !l.is_empty() {
                    attributes.push(PathAttribute::LargeCommunities(l));
                }
                attributes.push(PathAttribute::MpReach(MpReach::Ipv6Unicast {
                    next_hop: Ipv6Addr::from(nh),
                    link_local: ll.map(Ipv6Addr::from),
                    nlri,
                }));
                Message::Update(Update {
                    attributes,
                    ..Update::default()
                })
            });
        let v6_withdraw = prop::collection::vec(unicast_v6(), 0..100).prop_map(|nets| {
            Message::Update(Update {
                attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(nets))],
                ..Update::default()
            })
        });
        // netgauze, like RFC 4271 §6.2, refuses identifiers that are not unicast addresses,
        // and hold times of 1 and 2 s (PeerConfig::hold_time_secs never sends those).
        let open = (
            any::<u32>(),
            prop_oneof![Just(0u16), 3u16..=u16::MAX],
            0x0100_0000u32..0xe000_0000,
            any::<bool>(),
            0u16..4096,
        )
            .prop_map(|(asn, hold, id, r, t)| {
                Message::Open(Open {
                    my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
                    hold_time: hold,
                    bgp_id: Ipv4Addr::from(id),
                    capabilities: vec![
                        Capability::Multiprotocol(AfiSafi::IPV4_UNICAST),
                        Capability::Multiprotocol(AfiSafi::IPV6_UNICAST),
                        Capability::RouteRefresh,
                        Capability::FourOctetAs(asn),
                        Capability::GracefulRestart(GracefulRestartCap {
                            restart_state: r,
                            notification: false,
                            restart_time: t,
                            families: vec![GracefulRestartFamily {
                                afi_safi: AfiSafi::IPV4_UNICAST,
                                forwarding_preserved: true,
                            }],
                        }),
                    ],
                })
            });
        // Subcode 0 ("unspecific", RFC 4271 §4.5) is left out: netgauze refuses it.
        let notification = (1u8..=6, 1u8..=3, prop::collection::vec(any::<u8>(), 0..20)).prop_map(
            |(c, s, data)| {
                let data = match (c, s) {
                    (1, 2) => vec![0, 19],
                    (1, 3) => vec![9],
                    (4, _) => vec![],
                    _ => data,
                };
                let s = if c == 4 { 0 } else { s };
                Message::Notification(Notification {
                    error: ErrorCode::from_codes(c, s),
                    data,
                })
            },
        );
        prop_oneof![
            v4_update,
            v6_update,
            v6_withdraw,
            open,
            Just(Message::Keepalive(Keepalive)),
            Just(Message::Update(Update::end_of_rib(Family::Ipv4Unicast))),
            Just(Message::Update(Update::end_of_rib(Family::Ipv6Unicast))),
            Just(Message::RouteRefresh(RouteRefresh {
                afi_safi: AfiSafi::IPV6_UNICAST,
                subtype: 0
            })),
            notification,
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn netgauze_decodes_what_we_send(message in sent_message()) {
            let bytes = message.to_bytes(CTX).unwrap();
            let theirs = netgauze_decode(&bytes, true);
            prop_assert_eq!(netgauze_reencode(&theirs), bytes);
        }
    }
}
