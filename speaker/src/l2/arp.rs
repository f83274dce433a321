//! ARP over Ethernet for IPv4 (RFC 826), including gratuitous ARP (RFC 5227 §3).

use std::net::Ipv4Addr;

use super::frame::{ETHERTYPE_ARP, EthernetHeader, Layer, MacAddr, ParseError, mac_at, split};

/// ARP operation code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOperation {
    Request = 1,
    Reply = 2,
}

/// One ARP message for Ethernet hardware and IPv4 protocol addresses (28 octets), carried in
/// an Ethernet II frame of type 0x0806.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  hardware type = 1 (Ethernet) |  protocol type = 0x0800 (IPv4)|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  hlen = 6     |  plen = 4     | operation (1 request, 2 reply)|
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |              sender hardware address (6 octets)               |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |  sender protocol address ...  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  ... (4 octets)               |  target hardware address ...  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                         ... (6 octets)                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |              target protocol address (4 octets)               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// A gratuitous ARP is a request whose sender and target protocol addresses are both the
/// announced address, broadcast; receivers update an existing entry for that address (Linux
/// does so even with `arp_accept=0`, it only refuses to *create* entries from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArpPacket {
    pub operation: ArpOperation,
    pub sender_mac: MacAddr,
    pub sender_ip: Ipv4Addr,
    pub target_mac: MacAddr,
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Octets of the ARP message itself.
    pub const LEN: usize = 28;

    /// Parses the ARP payload of an Ethernet frame. Trailing Ethernet padding is ignored.
    pub fn parse(payload: &[u8]) -> Result<ArpPacket, ParseError> {
        let (p, _padding) = split(payload, Self::LEN, Layer::Arp)?;
        let htype = u16::from_be_bytes([p[0], p[1]]);
        let ptype = u16::from_be_bytes([p[2], p[3]]);
        let (hlen, plen) = (p[4], p[5]);
        if htype != 1 || ptype != 0x0800 || hlen != 6 || plen != 4 {
            return Err(ParseError::UnsupportedArp {
                htype,
                ptype,
                hlen,
                plen,
            });
        }
        let operation = match u16::from_be_bytes([p[6], p[7]]) {
            1 => ArpOperation::Request,
            2 => ArpOperation::Reply,
            other => return Err(ParseError::UnknownArpOperation(other)),
        };
        Ok(ArpPacket {
            operation,
            sender_mac: mac_at(p, 8),
            sender_ip: Ipv4Addr::new(p[14], p[15], p[16], p[17]),
            target_mac: mac_at(p, 18),
            target_ip: Ipv4Addr::new(p[24], p[25], p[26], p[27]),
        })
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&0x0800u16.to_be_bytes());
        out.extend_from_slice(&[6, 4]);
        out.extend_from_slice(&(self.operation as u16).to_be_bytes());
        out.extend_from_slice(&self.sender_mac.0);
        out.extend_from_slice(&self.sender_ip.octets());
        out.extend_from_slice(&self.target_mac.0);
        out.extend_from_slice(&self.target_ip.octets());
    }

    /// The reply that says `mac` has the address this request asks for, addressed to the
    /// requester.
    pub fn reply_to(request: &ArpPacket, mac: MacAddr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Reply,
            sender_mac: mac,
            sender_ip: request.target_ip,
            target_mac: request.sender_mac,
            target_ip: request.sender_ip,
        }
    }

    /// A gratuitous ARP request announcing that `ip` is at `mac`.
    pub fn gratuitous(ip: Ipv4Addr, mac: MacAddr) -> ArpPacket {
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: MacAddr::ZERO,
            target_ip: ip,
        }
    }

    /// This packet in a complete Ethernet frame from `source` to `destination`.
    pub fn to_frame(&self, destination: MacAddr, source: MacAddr) -> Vec<u8> {
        let mut out = Vec::with_capacity(EthernetHeader::LEN + Self::LEN);
        EthernetHeader {
            destination,
            source,
            ethertype: ETHERTYPE_ARP,
        }
        .write(&mut out);
        self.write(&mut out);
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MAC_A: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x01]);
    const MAC_B: MacAddr = MacAddr([0x02, 0x00, 0x5e, 0x10, 0x00, 0x02]);

    /// A request "who has 192.0.2.10? tell 192.0.2.1" as Linux sends it (42 octets).
    const REQUEST: [u8; 42] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // destination: broadcast
        0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, // source
        0x08, 0x06, // ARP
        0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, // ethernet/ipv4, request
        0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, 192, 0, 2, 1, // sender
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 192, 0, 2, 10, // target
    ];

    #[test]
    fn parses_request_vector_and_builds_reply_vector() {
        let (eth, payload) = EthernetHeader::parse(&REQUEST).unwrap();
        assert_eq!(eth.ethertype, ETHERTYPE_ARP);
        let req = ArpPacket::parse(payload).unwrap();
        assert_eq!(
            req,
            ArpPacket {
                operation: ArpOperation::Request,
                sender_mac: MAC_B,
                sender_ip: Ipv4Addr::new(192, 0, 2, 1),
                target_mac: MacAddr::ZERO,
                target_ip: Ipv4Addr::new(192, 0, 2, 10),
            }
        );
        let reply = ArpPacket::reply_to(&req, MAC_A).to_frame(req.sender_mac, MAC_A);
        let want: [u8; 42] = [
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, // to the requester
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, // from us
            0x08, 0x06, 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x02, // reply
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, 192, 0, 2, 10, // 192.0.2.10 is at us
            0x02, 0x00, 0x5e, 0x10, 0x00, 0x02, 192, 0, 2, 1,
        ];
        assert_eq!(reply, want);
    }

    #[test]
    fn gratuitous_vector() {
        let frame = ArpPacket::gratuitous(Ipv4Addr::new(192, 0, 2, 10), MAC_A)
            .to_frame(MacAddr::BROADCAST, MAC_A);
        let want: [u8; 42] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x01, 0x08, 0x06,
            0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01, 0x02, 0x00, 0x5e, 0x10, 0x00, 0x01,
            192, 0, 2, 10, 0, 0, 0, 0, 0, 0, 192, 0, 2, 10,
        ];
        assert_eq!(frame, want);
    }

    #[test]
    fn padded_frame_parses_and_bad_fields_are_typed_errors() {
        let mut padded = REQUEST.to_vec();
        padded.resize(60, 0);
        assert!(ArpPacket::parse(&padded[14..]).is_ok());

        let mut bad = REQUEST;
        bad[21] = 9;
        assert_eq!(
            ArpPacket::parse(&bad[14..]),
            Err(ParseError::UnknownArpOperation(9))
        );
        let mut bad = REQUEST;
        bad[18] = 16;
        assert!(matches!(
            ArpPacket::parse(&bad[14..]),
            Err(ParseError::UnsupportedArp { hlen: 16, .. })
        ));
        assert!(matches!(
            ArpPacket::parse(&REQUEST[14..41]),
            Err(ParseError::Truncated {
                layer: Layer::Arp,
                need: 28,
                got: 27
            })
        ));
    }

    fn arb_mac() -> impl Strategy<Value = MacAddr> {
        any::<[u8; 6]>().prop_map(MacAddr)
    }

    proptest! {
        #[test]
        fn round_trip(req in any::<bool>(), sm in arb_mac(), si in any::<u32>(), tm in arb_mac(), ti in any::<u32>()) {
            let p = ArpPacket {
                operation: if req { ArpOperation::Request } else { ArpOperation::Reply },
                sender_mac: sm, sender_ip: si.into(), target_mac: tm, target_ip: ti.into(),
            };
            let mut out = Vec::new();
            p.write(&mut out);
            prop_assert_eq!(out.len(), ArpPacket::LEN);
            prop_assert_eq!(ArpPacket::parse(&out), Ok(p));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = ArpPacket::parse(&bytes);
        }
    }
}
