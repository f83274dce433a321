//! What to do with one received frame: the pure heart of the responder. No I/O here; the
//! interface task feeds frames in and sends what comes out.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv6Addr};

use super::arp::{ArpOperation, ArpPacket};
use super::frame::{ETHERTYPE_ARP, ETHERTYPE_IPV6, EthernetHeader, MacAddr, ParseError};
use super::ndp::{NdpMessage, NdpPacket};

/// The link-layer identity the responder answers with on one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkIdentity {
    pub mac: MacAddr,
    /// Source of neighbour advertisements. When the interface has no link-local address
    /// (IPv6 disabled on it) the advertised target itself is used as source.
    pub link_local: Option<Ipv6Addr>,
}

/// Which protocol a frame belonged to; a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Arp,
    Ndp,
}

/// Why a well-formed frame got no answer; a metric label and a log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IgnoreReason {
    /// ARP reply, advertisement or other message that is not a question.
    NotARequest,
    /// Asks for an address this node does not own on this interface.
    NotOwned,
    /// Sent by this interface itself (looped back).
    OwnFrame,
    /// Neither ARP nor an IPv6 neighbour solicitation (only if the socket filter let it by).
    OtherProtocol,
    /// An ARP request whose sender claims the very address it asks for: a gratuitous ARP
    /// from someone else; answering would fight over the address.
    Gratuitous,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Send `frame` (a complete Ethernet frame) in answer to a request for `address`.
    Reply {
        protocol: Protocol,
        address: IpAddr,
        frame: Vec<u8>,
    },
    Ignore {
        protocol: Protocol,
        reason: IgnoreReason,
    },
    Malformed {
        protocol: Protocol,
        error: ParseError,
    },
}

/// Decides the answer to `frame` received on an interface with identity `link`, where this
/// node owns `owned`. Never panics, whatever the bytes.
pub fn decide(frame: &[u8], link: &LinkIdentity, owned: &BTreeSet<IpAddr>) -> Decision {
    let (eth, payload) = match EthernetHeader::parse(frame) {
        Ok(x) => x,
        Err(error) => {
            return Decision::Malformed {
                protocol: Protocol::Arp,
                error,
            };
        }
    };
    match eth.ethertype {
        ETHERTYPE_ARP => decide_arp(&eth, payload, link, owned),
        ETHERTYPE_IPV6 => decide_ndp(&eth, payload, link, owned),
        _ => Decision::Ignore {
            protocol: Protocol::Arp,
            reason: IgnoreReason::OtherProtocol,
        },
    }
}

fn decide_arp(
    eth: &EthernetHeader,
    payload: &[u8],
    link: &LinkIdentity,
    owned: &BTreeSet<IpAddr>,
) -> Decision {
    let protocol = Protocol::Arp;
    let ignore = |reason| Decision::Ignore { protocol, reason };
    let arp = match ArpPacket::parse(payload) {
        Ok(a) => a,
        Err(error) => return Decision::Malformed { protocol, error },
    };
    if eth.source == link.mac || arp.sender_mac == link.mac {
        return ignore(IgnoreReason::OwnFrame);
    }
    if arp.operation != ArpOperation::Request {
        return ignore(IgnoreReason::NotARequest);
    }
    if arp.sender_ip == arp.target_ip {
        return ignore(IgnoreReason::Gratuitous);
    }
    let address = IpAddr::V4(arp.target_ip);
    if !owned.contains(&address) {
        return ignore(IgnoreReason::NotOwned);
    }
    // An ARP probe (RFC 5227, sender 0.0.0.0) is answered too: that is how a host about to
    // take the address learns it is in use.
    let reply = ArpPacket::reply_to(&arp, link.mac);
    Decision::Reply {
        protocol,
        address,
        frame: reply.to_frame(arp.sender_mac, link.mac),
    }
}

fn decide_ndp(
    eth: &EthernetHeader,
    payload: &[u8],
    link: &LinkIdentity,
    owned: &BTreeSet<IpAddr>,
) -> Decision {
    let protocol = Protocol::Ndp;
    let ignore = |reason| Decision::Ignore { protocol, reason };
    let packet = match NdpPacket::parse(payload) {
        Ok(Some(p)) => p,
        Ok(None) => return ignore(IgnoreReason::OtherProtocol),
        Err(error) => return Decision::Malformed { protocol, error },
    };
    if eth.source == link.mac {
        return ignore(IgnoreReason::OwnFrame);
    }
    let NdpMessage::Solicitation(ns) = packet.message else {
        return ignore(IgnoreReason::NotARequest);
    };
    let address = IpAddr::V6(ns.target);
    if !owned.contains(&address) {
        return ignore(IgnoreReason::NotOwned);
    }
    let source = link.link_local.unwrap_or(ns.target);
    let (answer, dst_mac) = NdpPacket::answer(&ns, packet.source, eth.source, source, link.mac);
    Decision::Reply {
        protocol,
        address,
        frame: answer.to_frame(dst_mac, link.mac),
    }
}

/// The frames announcing `address` at `link` when this node becomes its owner (and on
/// periodic re-announcement): a gratuitous ARP for IPv4, an unsolicited override
/// advertisement to all-nodes for IPv6.
pub fn announcement(address: IpAddr, link: &LinkIdentity) -> Vec<u8> {
    match address {
        IpAddr::V4(v4) => {
            ArpPacket::gratuitous(v4, link.mac).to_frame(MacAddr::BROADCAST, link.mac)
        }
        IpAddr::V6(v6) => {
            let (na, dst) = NdpPacket::unsolicited(v6, link.link_local.unwrap_or(v6), link.mac);
            na.to_frame(dst, link.mac)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::l2::ndp::{
        NeighborAdvertisement, NeighborSolicitation, multicast_mac, solicited_node_multicast,
    };
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    const US: MacAddr = MacAddr([2, 0, 0x5e, 0x10, 0, 0x10]);
    const CLIENT: MacAddr = MacAddr([2, 0, 0x5e, 0x10, 0, 0x99]);

    fn link() -> LinkIdentity {
        LinkIdentity {
            mac: US,
            link_local: Some("fe80::10".parse().unwrap()),
        }
    }

    fn owned() -> BTreeSet<IpAddr> {
        ["192.0.2.10", "2001:db8::10"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect()
    }

    fn arp_request(target: Ipv4Addr) -> Vec<u8> {
        ArpPacket {
            operation: ArpOperation::Request,
            sender_mac: CLIENT,
            sender_ip: Ipv4Addr::new(192, 0, 2, 99),
            target_mac: MacAddr::ZERO,
            target_ip: target,
        }
        .to_frame(MacAddr::BROADCAST, CLIENT)
    }

    fn ns(target: Ipv6Addr) -> Vec<u8> {
        let group = solicited_node_multicast(target);
        NdpPacket {
            source: "2001:db8::99".parse().unwrap(),
            destination: group,
            message: NdpMessage::Solicitation(NeighborSolicitation {
                target,
                source_link_layer: Some(CLIENT),
            }),
        }
        .to_frame(multicast_mac(group), CLIENT)
    }

    #[test]
    fn answers_arp_for_owned_address_only() {
        let d = decide(
            &arp_request(Ipv4Addr::new(192, 0, 2, 10)),
            &link(),
            &owned(),
        );
        let Decision::Reply {
            protocol,
            address,
            frame,
        } = d
        else {
            panic!("{d:?}")
        };
        assert_eq!(
            (protocol, address),
            (Protocol::Arp, "192.0.2.10".parse().unwrap())
        );
        let (eth, payload) = EthernetHeader::parse(&frame).unwrap();
        assert_eq!((eth.destination, eth.source), (CLIENT, US));
        let reply = ArpPacket::parse(payload).unwrap();
        assert_eq!(reply.operation, ArpOperation::Reply);
        assert_eq!(
            (reply.sender_mac, reply.sender_ip),
            (US, Ipv4Addr::new(192, 0, 2, 10))
        );
        assert_eq!(
            (reply.target_mac, reply.target_ip),
            (CLIENT, Ipv4Addr::new(192, 0, 2, 99))
        );

        assert_eq!(
            decide(
                &arp_request(Ipv4Addr::new(192, 0, 2, 11)),
                &link(),
                &owned()
            ),
            Decision::Ignore {
                protocol: Protocol::Arp,
                reason: IgnoreReason::NotOwned
            }
        );
    }

    #[test]
    fn ignores_gratuitous_own_and_replies() {
        let g = ArpPacket::gratuitous(Ipv4Addr::new(192, 0, 2, 10), CLIENT)
            .to_frame(MacAddr::BROADCAST, CLIENT);
        assert!(matches!(
            decide(&g, &link(), &owned()),
            Decision::Ignore {
                reason: IgnoreReason::Gratuitous,
                ..
            }
        ));
        let own = ArpPacket::gratuitous(Ipv4Addr::new(192, 0, 2, 10), US)
            .to_frame(MacAddr::BROADCAST, US);
        assert!(matches!(
            decide(&own, &link(), &owned()),
            Decision::Ignore {
                reason: IgnoreReason::OwnFrame,
                ..
            }
        ));
        let mut reply = arp_request(Ipv4Addr::new(192, 0, 2, 10));
        reply[21] = 2;
        assert!(matches!(
            decide(&reply, &link(), &owned()),
            Decision::Ignore {
                reason: IgnoreReason::NotARequest,
                ..
            }
        ));
    }

    #[test]
    fn answers_solicitation_with_solicited_override_advertisement() {
        let target: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let d = decide(&ns(target), &link(), &owned());
        let Decision::Reply { frame, .. } = d else {
            panic!("{d:?}")
        };
        let (eth, payload) = EthernetHeader::parse(&frame).unwrap();
        assert_eq!((eth.destination, eth.source), (CLIENT, US));
        let na = NdpPacket::parse(payload).unwrap().unwrap();
        assert_eq!(na.source, "fe80::10".parse::<Ipv6Addr>().unwrap());
        assert_eq!(na.destination, "2001:db8::99".parse::<Ipv6Addr>().unwrap());
        assert_eq!(
            na.message,
            NdpMessage::Advertisement(NeighborAdvertisement {
                router: false,
                solicited: true,
                override_entry: true,
                target,
                target_link_layer: Some(US),
            })
        );
        assert!(matches!(
            decide(&ns("2001:db8::11".parse().unwrap()), &link(), &owned()),
            Decision::Ignore {
                reason: IgnoreReason::NotOwned,
                ..
            }
        ));
    }

    #[test]
    fn malformed_frames_are_reported_not_answered() {
        let mut f = arp_request(Ipv4Addr::new(192, 0, 2, 10));
        f.truncate(30);
        assert!(matches!(
            decide(&f, &link(), &owned()),
            Decision::Malformed {
                protocol: Protocol::Arp,
                ..
            }
        ));
        let mut f = ns("2001:db8::10".parse().unwrap());
        f[14 + 7] = 1; // hop limit
        assert!(matches!(
            decide(&f, &link(), &owned()),
            Decision::Malformed {
                protocol: Protocol::Ndp,
                error: ParseError::HopLimit(1)
            }
        ));
    }

    #[test]
    fn announcements_are_gratuitous_arp_and_unsolicited_na() {
        let f = announcement("192.0.2.10".parse().unwrap(), &link());
        let a = ArpPacket::parse(&f[14..]).unwrap();
        assert_eq!(a, ArpPacket::gratuitous(Ipv4Addr::new(192, 0, 2, 10), US));
        assert_eq!(&f[..6], &[0xff; 6]);
        let f = announcement("2001:db8::10".parse().unwrap(), &link());
        assert_eq!(&f[..6], &[0x33, 0x33, 0, 0, 0, 1]);
        let na = NdpPacket::parse(&f[14..]).unwrap().unwrap();
        assert!(matches!(
            na.message,
            NdpMessage::Advertisement(NeighborAdvertisement {
                solicited: false,
                override_entry: true,
                ..
            })
        ));
    }

    proptest! {
        #[test]
        fn never_panics_and_only_answers_owned(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            if let Decision::Reply { address, .. } = decide(&bytes, &link(), &owned()) {
                prop_assert!(owned().contains(&address));
            }
        }
    }
}
