//! Ethernet II framing shared by ARP and NDP, and the typed parse error.

use std::fmt;

/// A 48-bit IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// ff:ff:ff:ff:ff:ff
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    /// 00:00:00:00:00:00, the "unknown" target hardware address of an ARP request.
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    /// Group (multicast or broadcast) bit set.
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// An Ethernet II header.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                  destination MAC (6 octets)                   |
/// +                               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                               |                               |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+                               +
/// |                    source MAC (6 octets)                      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |          EtherType            |   payload ...
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
///
/// No 802.1Q tag: the kernel strips VLAN tags before a packet socket sees the frame, and
/// the responder binds to the VLAN's own interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EthernetHeader {
    pub destination: MacAddr,
    pub source: MacAddr,
    pub ethertype: u16,
}

impl EthernetHeader {
    pub const LEN: usize = 14;

    /// Splits a frame into its header and payload.
    pub fn parse(frame: &[u8]) -> Result<(EthernetHeader, &[u8]), ParseError> {
        let (head, payload) = split(frame, Self::LEN, Layer::Ethernet)?;
        let header = EthernetHeader {
            destination: mac_at(head, 0),
            source: mac_at(head, 6),
            ethertype: u16::from_be_bytes([head[12], head[13]]),
        };
        Ok((header, payload))
    }

    pub fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.destination.0);
        out.extend_from_slice(&self.source.0);
        out.extend_from_slice(&self.ethertype.to_be_bytes());
    }
}

/// The protocol layer at which a frame was found malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Ethernet,
    Arp,
    Ipv6,
    Icmpv6,
    NdpOption,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "ethernet",
            Layer::Arp => "arp",
            Layer::Ipv6 => "ipv6",
            Layer::Icmpv6 => "icmpv6",
            Layer::NdpOption => "ndp option",
        })
    }
}

/// Why a received frame was not understood. Such frames are dropped and counted; none of
/// these can make the responder answer or stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("truncated {layer} header: need {need} bytes, got {got}")]
    Truncated {
        layer: Layer,
        need: usize,
        got: usize,
    },
    #[error(
        "arp for hardware type {htype} / protocol {ptype:#06x} with lengths {hlen}/{plen}, only ethernet/ipv4 is supported"
    )]
    UnsupportedArp {
        htype: u16,
        ptype: u16,
        hlen: u8,
        plen: u8,
    },
    #[error("unknown arp operation {0}")]
    UnknownArpOperation(u16),
    #[error("ip version {0} in an ipv6 frame")]
    NotIpv6(u8),
    #[error("ipv6 payload length {claimed} exceeds the {available} bytes received")]
    Ipv6PayloadLength { claimed: usize, available: usize },
    #[error("neighbour discovery message with hop limit {0}, must be 255")]
    HopLimit(u8),
    #[error("icmpv6 checksum {got:#06x} does not match {want:#06x}")]
    Checksum { got: u16, want: u16 },
    #[error("icmpv6 code {0} in a neighbour discovery message, must be 0")]
    IcmpCode(u8),
    #[error("ndp option {kind} with length 0")]
    ZeroLengthOption { kind: u8 },
    #[error("ndp option {kind} claims {claimed} bytes, only {available} remain")]
    OptionOverrun {
        kind: u8,
        claimed: usize,
        available: usize,
    },
    #[error("neighbour solicitation for multicast target {0}")]
    MulticastTarget(std::net::Ipv6Addr),
    #[error(
        "neighbour solicitation from the unspecified address carries a source link-layer option"
    )]
    UnspecifiedSourceWithLinkLayer,
}

/// Splits `buf` after `need` bytes or reports the truncation at `layer`.
pub(crate) fn split(buf: &[u8], need: usize, layer: Layer) -> Result<(&[u8], &[u8]), ParseError> {
    if buf.len() < need {
        return Err(ParseError::Truncated {
            layer,
            need,
            got: buf.len(),
        });
    }
    Ok(buf.split_at(need))
}

/// The MAC at `at..at+6`; callers have checked the length.
pub(crate) fn mac_at(buf: &[u8], at: usize) -> MacAddr {
    let mut m = [0u8; 6];
    m.copy_from_slice(&buf[at..at + 6]);
    MacAddr(m)
}

/// The 16-bit one's-complement sum used by ICMPv6 (RFC 1071), folded, not yet inverted.
pub(crate) fn ones_complement_sum(mut acc: u32, data: &[u8]) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn ethernet_round_trip_and_truncation() {
        let h = EthernetHeader {
            destination: MacAddr::BROADCAST,
            source: MacAddr([2, 0, 0, 0, 0, 1]),
            ethertype: ETHERTYPE_ARP,
        };
        let mut out = Vec::new();
        h.write(&mut out);
        out.push(0xaa);
        assert_eq!(
            out,
            [
                0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06, 0xaa
            ]
        );
        assert_eq!(EthernetHeader::parse(&out), Ok((h, &[0xaa][..])));
        assert_eq!(
            EthernetHeader::parse(&out[..13]),
            Err(ParseError::Truncated {
                layer: Layer::Ethernet,
                need: 14,
                got: 13
            })
        );
        assert_eq!(h.source.to_string(), "02:00:00:00:00:01");
    }

    #[test]
    fn checksum_of_rfc1071_example() {
        // RFC 1071 §3: the sum of 00 01 f2 03 f4 f5 f6 f7 is ddf2.
        assert_eq!(
            ones_complement_sum(0, &[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }
}
