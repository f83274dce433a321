//! IPv6 neighbour discovery (RFC 4861): neighbour solicitation and advertisement.
//!
//! Only what an address owner needs: parse solicitations (and advertisements, to recognise
//! them), build solicited and unsolicited advertisements, and compute the solicited-node
//! multicast group a solicitation for an address is sent to.

use std::net::Ipv6Addr;

use super::frame::{
    ETHERTYPE_IPV6, EthernetHeader, Layer, MacAddr, ParseError, mac_at, ones_complement_sum, split,
};

/// IPv6 next-header value of ICMPv6.
pub const NEXT_HEADER_ICMPV6: u8 = 58;
/// ICMPv6 type of a neighbour solicitation.
pub const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
pub const ICMPV6_NEIGHBOR_ADVERTISEMENT: u8 = 136;
/// Neighbour discovery messages must arrive with this hop limit (RFC 4861 §7.1.1): it proves
/// they were not forwarded by a router.
pub const NDP_HOP_LIMIT: u8 = 255;
/// ff02::1, all nodes on the link.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const OPTION_SOURCE_LINK_LAYER: u8 = 1;
const OPTION_TARGET_LINK_LAYER: u8 = 2;

/// The solicited-node multicast address of `addr` (RFC 4291 §2.7.1): `ff02::1:ff00:0/104`
/// with the low 24 bits of `addr`. Solicitations for `addr` are sent there, so the owner must
/// receive that group.
pub fn solicited_node_multicast(addr: Ipv6Addr) -> Ipv6Addr {
    let o = addr.octets();
    Ipv6Addr::from([
        0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xff, o[13], o[14], o[15],
    ])
}

/// The Ethernet multicast address an IPv6 multicast group maps to (RFC 2464 §7):
/// `33:33` followed by the group's low 32 bits.
pub fn multicast_mac(group: Ipv6Addr) -> MacAddr {
    let o = group.octets();
    MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The fixed IPv6 header (RFC 8200 §3), 40 octets.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |Version| Traffic Class |           Flow Label                  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |         Payload Length        |  Next Header  |   Hop Limit   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Source Address (16 octets)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                Destination Address (16 octets)                |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Header {
    pub payload_length: u16,
    pub next_header: u8,
    pub hop_limit: u8,
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
}

impl Ipv6Header {
    pub const LEN: usize = 40;

    /// Parses the header and returns it with exactly its payload (Ethernet padding after
    /// `payload_length` is cut off).
    pub fn parse(packet: &[u8]) -> Result<(Ipv6Header, &[u8]), ParseError> {
        let (h, rest) = split(packet, Self::LEN, Layer::Ipv6)?;
        let version = h[0] >> 4;
        if version != 6 {
            return Err(ParseError::NotIpv6(version));
        }
        let payload_length = u16::from_be_bytes([h[4], h[5]]);
        let payload =
            rest.get(..usize::from(payload_length))
                .ok_or(ParseError::Ipv6PayloadLength {
                    claimed: usize::from(payload_length),
                    available: rest.len(),
                })?;
        Ok((
            Ipv6Header {
                payload_length,
                next_header: h[6],
                hop_limit: h[7],
                source: ipv6_at(h, 8),
                destination: ipv6_at(h, 24),
            },
            payload,
        ))
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&[0x60, 0, 0, 0]);
        out.extend_from_slice(&self.payload_length.to_be_bytes());
        out.extend_from_slice(&[self.next_header, self.hop_limit]);
        out.extend_from_slice(&self.source.octets());
        out.extend_from_slice(&self.destination.octets());
    }
}

/// A neighbour solicitation (ICMPv6 type 135, RFC 4861 §4.3).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 135  |   Code = 0    |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                           Reserved                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Target Address (16 octets)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Options ... (source link-layer address: type 1, length 1 (×8 octets), MAC)
/// +-+-+-+-+-+-+-+-+-+-+-+-
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborSolicitation {
    pub target: Ipv6Addr,
    pub source_link_layer: Option<MacAddr>,
}

/// A neighbour advertisement (ICMPv6 type 136, RFC 4861 §4.4).
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Type = 136  |   Code = 0    |          Checksum             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |R|S|O|                     Reserved                            |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  Target Address (16 octets)                   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |   Options ... (target link-layer address: type 2, length 1 (×8 octets), MAC)
/// +-+-+-+-+-+-+-+-+-+-+-+-
/// ```
///
/// R: sender is a router. S: reply to a solicitation. O: override an existing cache entry —
/// the owner always sets O so that a takeover replaces the old owner's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighborAdvertisement {
    pub router: bool,
    pub solicited: bool,
    pub override_entry: bool,
    pub target: Ipv6Addr,
    pub target_link_layer: Option<MacAddr>,
}

/// A neighbour discovery message this module understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NdpMessage {
    Solicitation(NeighborSolicitation),
    Advertisement(NeighborAdvertisement),
}

/// An NDP message with the IPv6 addresses it travels between. Built and validated with hop
/// limit 255; the checksum is computed on write and verified on parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NdpPacket {
    pub source: Ipv6Addr,
    pub destination: Ipv6Addr,
    pub message: NdpMessage,
}

impl NdpPacket {
    /// Parses the IPv6 payload of an Ethernet frame. `Ok(None)` for IPv6 packets that are
    /// not neighbour solicitations or advertisements (not malformed, just not ours).
    pub fn parse(packet: &[u8]) -> Result<Option<NdpPacket>, ParseError> {
        let (ip, icmp) = Ipv6Header::parse(packet)?;
        // Extension headers before ICMPv6 are not followed: RFC 4861 messages never carry
        // them in practice, and a solicitation behind one is simply not answered.
        if ip.next_header != NEXT_HEADER_ICMPV6 {
            return Ok(None);
        }
        let kind = match icmp.first() {
            Some(&t) if t == ICMPV6_NEIGHBOR_SOLICITATION || t == ICMPV6_NEIGHBOR_ADVERTISEMENT => {
                t
            }
            _ => return Ok(None),
        };
        let (fixed, options) = split(icmp, 24, Layer::Icmpv6)?;
        if ip.hop_limit != NDP_HOP_LIMIT {
            return Err(ParseError::HopLimit(ip.hop_limit));
        }
        if fixed[1] != 0 {
            return Err(ParseError::IcmpCode(fixed[1]));
        }
        let got = u16::from_be_bytes([fixed[2], fixed[3]]);
        let want = checksum(ip.source, ip.destination, icmp);
        // Summing the message with its checksum in place yields 0xffff when it is right;
        // `want` is what the checksum field should hold, for the error message.
        if want != 0 {
            let zeroed = checksum_with_zeroed_field(ip.source, ip.destination, icmp);
            return Err(ParseError::Checksum { got, want: zeroed });
        }
        let target = ipv6_at(fixed, 8);
        let wanted_option = if kind == ICMPV6_NEIGHBOR_SOLICITATION {
            OPTION_SOURCE_LINK_LAYER
        } else {
            OPTION_TARGET_LINK_LAYER
        };
        let link_layer = find_link_layer_option(options, wanted_option)?;
        let message = if kind == ICMPV6_NEIGHBOR_SOLICITATION {
            if target.is_multicast() {
                return Err(ParseError::MulticastTarget(target));
            }
            if ip.source.is_unspecified() && link_layer.is_some() {
                return Err(ParseError::UnspecifiedSourceWithLinkLayer);
            }
            NdpMessage::Solicitation(NeighborSolicitation {
                target,
                source_link_layer: link_layer,
            })
        } else {
            let flags = fixed[4];
            NdpMessage::Advertisement(NeighborAdvertisement {
                router: flags & 0x80 != 0,
                solicited: flags & 0x40 != 0,
                override_entry: flags & 0x20 != 0,
                target,
                target_link_layer: link_layer,
            })
        };
        Ok(Some(NdpPacket {
            source: ip.source,
            destination: ip.destination,
            message,
        }))
    }

    /// The IPv6 packet (header and ICMPv6 message, checksum filled in).
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut icmp = Vec::with_capacity(32);
        let (kind, flags, target, option) = match self.message {
            NdpMessage::Solicitation(ns) => (
                ICMPV6_NEIGHBOR_SOLICITATION,
                0u8,
                ns.target,
                ns.source_link_layer.map(|m| (OPTION_SOURCE_LINK_LAYER, m)),
            ),
            NdpMessage::Advertisement(na) => (
                ICMPV6_NEIGHBOR_ADVERTISEMENT,
                (u8::from(na.router) << 7)
                    | (u8::from(na.solicited) << 6)
                    | (u8::from(na.override_entry) << 5),
                na.target,
                na.target_link_layer.map(|m| (OPTION_TARGET_LINK_LAYER, m)),
            ),
        };
        icmp.extend_from_slice(&[kind, 0, 0, 0, flags, 0, 0, 0]);
        icmp.extend_from_slice(&target.octets());
        if let Some((kind, mac)) = option {
            icmp.extend_from_slice(&[kind, 1]);
            icmp.extend_from_slice(&mac.0);
        }
        let sum = checksum_with_zeroed_field(self.source, self.destination, &icmp);
        icmp[2..4].copy_from_slice(&sum.to_be_bytes());
        Ipv6Header {
            // At most 32 octets: always fits.
            payload_length: u16::try_from(icmp.len()).unwrap_or(u16::MAX),
            next_header: NEXT_HEADER_ICMPV6,
            hop_limit: NDP_HOP_LIMIT,
            source: self.source,
            destination: self.destination,
        }
        .write(out);
        out.extend_from_slice(&icmp);
    }

    /// This packet in a complete Ethernet frame from `source` to `destination`.
    pub fn to_frame(&self, destination: MacAddr, source: MacAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(EthernetHeader::LEN + Ipv6Header::LEN + 32);
        EthernetHeader {
            destination,
            source,
            ethertype: ETHERTYPE_IPV6,
        }
        .write(&mut out);
        self.write(&mut out);
        out
    }

    /// The solicited, override advertisement answering `solicitation` (received from
    /// `requester` with link-layer address `requester_mac`) for an address owned at `mac`,
    /// sent from `link_local`. Returns the packet and the Ethernet destination.
    ///
    /// A solicitation from the unspecified address (duplicate address detection) is answered
    /// to all-nodes with S clear (RFC 4861 §7.2.4).
    pub fn answer(
        solicitation: &NeighborSolicitation,
        requester: Ipv6Addr,
        requester_mac: MacAddr,
        link_local: Ipv6Addr,
        mac: MacAddr,
    ) -> (NdpPacket, MacAddr) {
        let dad = requester.is_unspecified();
        let (destination, dst_mac) = if dad {
            (ALL_NODES, multicast_mac(ALL_NODES))
        } else {
            (
                requester,
                solicitation.source_link_layer.unwrap_or(requester_mac),
            )
        };
        let packet = NdpPacket {
            source: link_local,
            destination,
            message: NdpMessage::Advertisement(NeighborAdvertisement {
                router: false,
                solicited: !dad,
                override_entry: true,
                target: solicitation.target,
                target_link_layer: Some(mac),
            }),
        };
        (packet, dst_mac)
    }

    /// The unsolicited advertisement to all-nodes that `target` is now at `mac`, with O set
    /// so that existing cache entries are replaced (RFC 4861 §7.2.6).
    pub fn unsolicited(
        target: Ipv6Addr,
        link_local: Ipv6Addr,
        mac: MacAddr,
    ) -> (NdpPacket, MacAddr) {
        (
            NdpPacket {
                source: link_local,
                destination: ALL_NODES,
                message: NdpMessage::Advertisement(NeighborAdvertisement {
                    router: false,
                    solicited: false,
                    override_entry: true,
                    target,
                    target_link_layer: Some(mac),
                }),
            },
            multicast_mac(ALL_NODES),
        )
    }
}

/// Walks the options, rejecting malformed ones (RFC 4861 §7.1.1: length 0 is invalid) and
/// skipping unknown ones, and returns the first link-layer address option of `wanted` kind.
fn find_link_layer_option(mut options: &[u8], wanted: u8) -> Result<Option<MacAddr>, ParseError> {
    let mut found = None;
    while !options.is_empty() {
        let (head, _) = split(options, 2, Layer::NdpOption)?;
        let (kind, units) = (head[0], head[1]);
        if units == 0 {
            return Err(ParseError::ZeroLengthOption { kind });
        }
        let len = usize::from(units) * 8;
        if len > options.len() {
            return Err(ParseError::OptionOverrun {
                kind,
                claimed: len,
                available: options.len(),
            });
        }
        let (option, rest) = options.split_at(len);
        // An Ethernet link-layer option is exactly 8 octets; longer ones (other link types)
        // carry no MAC we could use and are ignored.
        if kind == wanted && found.is_none() && len == 8 {
            found = Some(mac_at(option, 2));
        }
        options = rest;
    }
    Ok(found)
}

/// One's-complement sum over the pseudo-header and `icmp` as received (checksum field
/// included), inverted: 0 when the checksum is right.
fn checksum(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> u16 {
    !(ones_complement_sum(pseudo_header_sum(source, destination, icmp.len()), icmp) as u16)
}

/// The value the checksum field must hold for `icmp` (its current checksum field ignored).
fn checksum_with_zeroed_field(source: Ipv6Addr, destination: Ipv6Addr, icmp: &[u8]) -> u16 {
    let mut acc = pseudo_header_sum(source, destination, icmp.len());
    if icmp.len() >= 4 {
        acc = ones_complement_sum(acc, &icmp[..2]);
        acc = ones_complement_sum(acc, &icmp[4..]);
    } else {
        acc = ones_complement_sum(acc, icmp);
    }
    !(acc as u16)
}

/// The IPv6 pseudo-header (RFC 8200 §8.1): source, destination, upper-layer length,
/// three zero octets and next header 58.
fn pseudo_header_sum(source: Ipv6Addr, destination: Ipv6Addr, len: usize) -> u32 {
    let mut acc = ones_complement_sum(0, &source.octets());
    acc = ones_complement_sum(acc, &destination.octets());
    let len = u32::try_from(len).unwrap_or(u32::MAX);
    acc = ones_complement_sum(acc, &len.to_be_bytes());
    ones_complement_sum(acc, &[0, 0, 0, NEXT_HEADER_ICMPV6])
}

fn ipv6_at(buf: &[u8], at: usize) -> Ipv6Addr {
    let mut o = [0u8; 16];
    o.copy_from_slice(&buf[at..at + 16]);
    Ipv6Addr::from(o)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// Captured from Linux 6.x: "who has 2001:db8::2", from 2001:db8::1 (02:00:5e:10:00:01).
    const NS: &str =
        "3333 ff00 0002 0200 5e10 0001 86dd 6000 0000 0020 3aff 2001 0db8 0000 0000 0000
        0000 0000 0001 ff02 0000 0000 0000 0000 0001 ff00 0002 8700 be16 0000 0000 2001
        0db8 0000 0000 0000 0000 0000 0002 0101 0200 5e10 0001";
    /// Captured from Linux: duplicate address detection for fe80::5eff:fe10:2, source ::,
    /// with a nonce option (type 14, RFC 7527) the parser must skip.
    const DAD_NS: &str =
        "3333 ff10 0002 0200 5e10 0002 86dd 6000 0000 0020 3aff 0000 0000 0000 0000 0000
        0000 0000 0000 ff02 0000 0000 0000 0000 0001 ff10 0002 8700 1241 0000 0000 fe80
        0000 0000 0000 0000 5eff fe10 0002 0e01 5305 da19 d199";
    /// Captured from Linux: the kernel's solicited, override answer to `NS`.
    const NA: &str =
        "0200 5e10 0001 0200 5e10 0002 86dd 6000 0000 0020 3aff 2001 0db8 0000 0000 0000
        0000 0000 0002 2001 0db8 0000 0000 0000 0000 0000 0001 8800 2c61 6000 0000 2001
        0db8 0000 0000 0000 0000 0000 0002 0201 0200 5e10 0002";

    const MAC1: MacAddr = MacAddr([2, 0, 0x5e, 0x10, 0, 1]);
    const MAC2: MacAddr = MacAddr([2, 0, 0x5e, 0x10, 0, 2]);

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn parses_captured_solicitation() {
        let frame = hex(NS);
        let (eth, payload) = EthernetHeader::parse(&frame).unwrap();
        assert_eq!(
            eth.destination,
            multicast_mac(solicited_node_multicast(ip("2001:db8::2")))
        );
        let p = NdpPacket::parse(payload).unwrap().unwrap();
        assert_eq!(
            p,
            NdpPacket {
                source: ip("2001:db8::1"),
                destination: ip("ff02::1:ff00:2"),
                message: NdpMessage::Solicitation(NeighborSolicitation {
                    target: ip("2001:db8::2"),
                    source_link_layer: Some(MAC1),
                }),
            }
        );
        // Our encoder reproduces the kernel's bytes exactly.
        assert_eq!(p.to_frame(eth.destination, eth.source), frame);
    }

    #[test]
    fn parses_dad_solicitation_skipping_unknown_option() {
        let frame = hex(DAD_NS);
        let p = NdpPacket::parse(&frame[14..]).unwrap().unwrap();
        assert_eq!(p.source, Ipv6Addr::UNSPECIFIED);
        assert_eq!(
            p.message,
            NdpMessage::Solicitation(NeighborSolicitation {
                target: ip("fe80::5eff:fe10:2"),
                source_link_layer: None
            })
        );
    }

    #[test]
    fn answer_matches_kernel_advertisement() {
        let ns_frame = hex(NS);
        let p = NdpPacket::parse(&ns_frame[14..]).unwrap().unwrap();
        let NdpMessage::Solicitation(ns) = p.message else {
            panic!("not a solicitation")
        };
        // The kernel answers from the target itself (it holds it); with the same source our
        // advertisement is byte-identical to the kernel's, checksum included.
        let (na, dst) = NdpPacket::answer(&ns, p.source, MAC1, ip("2001:db8::2"), MAC2);
        assert_eq!(dst, MAC1);
        assert_eq!(na.to_frame(dst, MAC2), hex(NA));
        assert_eq!(NdpPacket::parse(&hex(NA)[14..]).unwrap(), Some(na));
    }

    #[test]
    fn dad_is_answered_to_all_nodes_unsolicited() {
        let ns = NeighborSolicitation {
            target: ip("2001:db8::10"),
            source_link_layer: None,
        };
        let (na, dst) = NdpPacket::answer(&ns, Ipv6Addr::UNSPECIFIED, MAC1, ip("fe80::1"), MAC2);
        assert_eq!(dst, MacAddr([0x33, 0x33, 0, 0, 0, 1]));
        assert_eq!(na.destination, ALL_NODES);
        assert!(matches!(
            na.message,
            NdpMessage::Advertisement(NeighborAdvertisement {
                solicited: false,
                override_entry: true,
                ..
            })
        ));
    }

    #[test]
    fn solicited_node_group_and_mac() {
        let g = solicited_node_multicast(ip("2001:db8::abcd:1234:5678"));
        assert_eq!(g, ip("ff02::1:ff34:5678"));
        assert_eq!(
            multicast_mac(g),
            MacAddr([0x33, 0x33, 0xff, 0x34, 0x56, 0x78])
        );
    }

    #[test]
    fn malformed_solicitations_are_typed_errors() {
        let good = hex(NS);
        let payload = &good[14..];

        let mut bad = payload.to_vec();
        bad[7] = 64; // hop limit
        assert_eq!(NdpPacket::parse(&bad), Err(ParseError::HopLimit(64)));

        let mut bad = payload.to_vec();
        bad[40 + 2] ^= 0xff; // checksum
        assert!(matches!(
            NdpPacket::parse(&bad),
            Err(ParseError::Checksum { want: 0xbe16, .. })
        ));

        let mut bad = payload.to_vec();
        bad[40 + 25] = 0; // option length 0 (checksum now wrong too, but options come later)
        assert!(NdpPacket::parse(&bad).is_err());

        assert!(matches!(
            NdpPacket::parse(&payload[..60]),
            Err(ParseError::Ipv6PayloadLength {
                claimed: 32,
                available: 20
            })
        ));
        assert!(matches!(
            NdpPacket::parse(&payload[..30]),
            Err(ParseError::Truncated {
                layer: Layer::Ipv6,
                ..
            })
        ));

        let mut bad = payload.to_vec();
        bad[0] = 0x45;
        assert_eq!(NdpPacket::parse(&bad), Err(ParseError::NotIpv6(4)));
    }

    #[test]
    fn zero_length_option_with_valid_checksum_is_rejected() {
        let p = NdpPacket {
            source: ip("2001:db8::1"),
            destination: ip("ff02::1:ff00:2"),
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target: ip("2001:db8::2"),
                source_link_layer: Some(MAC1),
            }),
        };
        let mut pkt = Vec::new();
        p.write(&mut pkt);
        pkt[40 + 25] = 0;
        // Recompute the checksum so only the option is wrong.
        pkt[42] = 0;
        pkt[43] = 0;
        let sum = checksum_with_zeroed_field(p.source, p.destination, &pkt[40..]);
        pkt[42..44].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(
            NdpPacket::parse(&pkt),
            Err(ParseError::ZeroLengthOption { kind: 1 })
        );
    }

    #[test]
    fn other_icmpv6_and_other_protocols_are_not_ndp() {
        let mut echo = hex(NS)[14..].to_vec();
        echo[40] = 128;
        assert_eq!(NdpPacket::parse(&echo), Ok(None));
        let mut udp = hex(NS)[14..].to_vec();
        udp[6] = 17;
        assert_eq!(NdpPacket::parse(&udp), Ok(None));
    }

    fn arb_v6() -> impl Strategy<Value = Ipv6Addr> {
        any::<u128>().prop_map(Ipv6Addr::from)
    }

    fn arb_message() -> impl Strategy<Value = NdpMessage> {
        let mac = proptest::option::of(any::<[u8; 6]>().prop_map(MacAddr));
        prop_oneof![
            (
                arb_v6().prop_filter("unicast", |a| !a.is_multicast()),
                mac.clone()
            )
                .prop_map(|(target, source_link_layer)| NdpMessage::Solicitation(
                    NeighborSolicitation {
                        target,
                        source_link_layer
                    }
                )),
            (any::<(bool, bool, bool)>(), arb_v6(), mac).prop_map(|((r, s, o), target, m)| {
                NdpMessage::Advertisement(NeighborAdvertisement {
                    router: r,
                    solicited: s,
                    override_entry: o,
                    target,
                    target_link_layer: m,
                })
            }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(
            source in arb_v6().prop_filter("specified", |a| !a.is_unspecified()),
            destination in arb_v6(),
            message in arb_message(),
        ) {
            let p = NdpPacket { source, destination, message };
            let frame = p.to_frame(MAC1, MAC2);
            let (_, payload) = EthernetHeader::parse(&frame).unwrap();
            prop_assert_eq!(NdpPacket::parse(payload), Ok(Some(p)));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
            let _ = NdpPacket::parse(&bytes);
        }

        /// Flipping any single bit of a valid message never makes it parse as a different
        /// valid message with an intact checksum over the ICMPv6 part.
        #[test]
        fn corrupted_icmp_never_passes_as_original(at in 40usize..72, bit in 0u8..8) {
            let mut pkt = hex(NS)[14..].to_vec();
            pkt[at] ^= 1 << bit;
            let original = NdpPacket::parse(&hex(NS)[14..]).unwrap();
            prop_assert_ne!(NdpPacket::parse(&pkt).ok().flatten(), original);
        }
    }
}
