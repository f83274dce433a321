use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

use super::prefix;
use super::{AS_TRANS, AfiSafi, DecodeError, ErrorHandling, Family, Reader, WireContext};

/// Path attribute type codes (IANA "BGP Path Attributes").
pub mod attr_type {
    pub const ORIGIN: u8 = 1;
    pub const AS_PATH: u8 = 2;
    pub const NEXT_HOP: u8 = 3;
    pub const MULTI_EXIT_DISC: u8 = 4;
    pub const LOCAL_PREF: u8 = 5;
    pub const ATOMIC_AGGREGATE: u8 = 6;
    pub const AGGREGATOR: u8 = 7;
    pub const COMMUNITIES: u8 = 8;
    pub const MP_REACH_NLRI: u8 = 14;
    pub const MP_UNREACH_NLRI: u8 = 15;
    pub const AS4_PATH: u8 = 17;
    pub const AS4_AGGREGATOR: u8 = 18;
    pub const LARGE_COMMUNITY: u8 = 32;
}

mod flag {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;
}

/// UPDATE message (RFC 4271 §4.3). IPv4 unicast routes travel in the classic fields;
/// other families in the MP_REACH_NLRI / MP_UNREACH_NLRI attributes (RFC 4760).
///
/// ```text
/// +-----------------------------------------------------+
/// |   Withdrawn Routes Length (2 octets)                |
/// +-----------------------------------------------------+
/// |   Withdrawn Routes (variable)                       |
/// +-----------------------------------------------------+
/// |   Total Path Attribute Length (2 octets)            |
/// +-----------------------------------------------------+
/// |   Path Attributes (variable)                        |
/// +-----------------------------------------------------+
/// |   Network Layer Reachability Information (variable) |
/// +-----------------------------------------------------+
///
/// Each path attribute:
///  0                   1
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |O|T|P|E|0 0 0 0| Attr Type Code|  Length: 1 octet, or 2 when E is set,
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  then the value
/// ```
///
/// An UPDATE without withdrawals, attributes or NLRI is the IPv4 End-of-RIB marker; one
/// carrying only an empty MP_UNREACH_NLRI is the marker of that family (RFC 4724 §2).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Update {
    pub withdrawn: Vec<Ipv4Net>,
    pub attributes: Vec<PathAttribute>,
    pub nlri: Vec<Ipv4Net>,
}

impl Update {
    /// The End-of-RIB marker of a family.
    pub fn end_of_rib(family: Family) -> Update {
        match family {
            Family::Ipv4Unicast => Update::default(),
            Family::Ipv6Unicast => Update {
                attributes: vec![PathAttribute::MpUnreach(MpUnreach::Ipv6Unicast(Vec::new()))],
                ..Update::default()
            },
        }
    }

    /// The family whose End-of-RIB this is, if it is one.
    pub fn as_end_of_rib(&self) -> Option<AfiSafi> {
        if !self.withdrawn.is_empty() || !self.nlri.is_empty() {
            return None;
        }
        match self.attributes.as_slice() {
            [] => Some(AfiSafi::IPV4_UNICAST),
            [PathAttribute::MpUnreach(u)] if u.is_empty() => Some(u.afi_safi()),
            _ => None,
        }
    }

    pub(super) fn encode_body(&self, ctx: WireContext, out: &mut Vec<u8>) {
        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        for net in &self.withdrawn {
            prefix::encode_v4(net, out);
        }
        let len = (out.len() - at - 2).min(u16::MAX as usize) as u16;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());

        let at = out.len();
        out.extend_from_slice(&[0, 0]);
        for attr in &self.attributes {
            attr.encode(ctx, out);
        }
        let len = (out.len() - at - 2).min(u16::MAX as usize) as u16;
        out[at..at + 2].copy_from_slice(&len.to_be_bytes());

        for net in &self.nlri {
            prefix::encode_v4(net, out);
        }
    }

    /// Decodes the body. Errors RFC 7606 lets the session survive are reported after the
    /// whole message was checked, so that an error needing a reset is never hidden behind
    /// one that does not; attributes to be discarded are dropped silently.
    pub(super) fn decode_body(
        body: &[u8],
        ctx: WireContext,
        length: u16,
    ) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let withdrawn_len = r.u16().ok_or(DecodeError::BadMessageLength { length })?;
        let withdrawn =
            r.take(withdrawn_len as usize)
                .ok_or(DecodeError::MalformedAttributeList {
                    what: "withdrawn routes length exceeds the message",
                })?;
        let attrs_len = r.u16().ok_or(DecodeError::MalformedAttributeList {
            what: "no total path attribute length",
        })?;
        let attrs = r
            .take(attrs_len as usize)
            .ok_or(DecodeError::MalformedAttributeList {
                what: "total path attribute length exceeds the message",
            })?;
        let nlri = r.rest();

        let withdrawn = prefix::decode_v4_list(withdrawn)?;
        let nlri = prefix::decode_v4_list(nlri)?;

        let mut attributes = Vec::new();
        let mut seen = [false; 256];
        let mut soft_error: Option<DecodeError> = None;
        let mut a = Reader::new(attrs);
        while !a.is_empty() {
            let start = attrs.len() - a.remaining();
            let (Some(flags), Some(type_code)) = (a.u8(), a.u8()) else {
                return Err(DecodeError::MalformedAttributeList {
                    what: "truncated attribute header",
                });
            };
            let len = if flags & flag::EXTENDED_LENGTH != 0 {
                a.u16()
            } else {
                a.u8().map(u16::from)
            }
            .ok_or(DecodeError::MalformedAttributeList {
                what: "truncated attribute length",
            })?;
            let value = a
                .take(len as usize)
                .ok_or(DecodeError::MalformedAttributeList {
                    what: "attribute length exceeds the attribute list",
                })?;
            let raw = &attrs[start..attrs.len() - a.remaining()];
            if std::mem::replace(&mut seen[type_code as usize], true) {
                if matches!(
                    type_code,
                    attr_type::MP_REACH_NLRI | attr_type::MP_UNREACH_NLRI
                ) {
                    return Err(DecodeError::MalformedAttributeList {
                        what: "repeated MP_REACH_NLRI or MP_UNREACH_NLRI",
                    });
                }
                // RFC 7606 §3 g: all but the first occurrence are discarded.
                continue;
            }
            match PathAttribute::decode(flags, type_code, value, raw, ctx) {
                Ok(attr) => attributes.push(attr),
                Err(e) => match e.handling() {
                    ErrorHandling::SessionReset => return Err(e),
                    ErrorHandling::AttributeDiscard => {}
                    ErrorHandling::TreatAsWithdraw => {
                        soft_error.get_or_insert(e);
                    }
                },
            }
        }

        let has = |t: u8| seen[t as usize];
        let mp_reach = has(attr_type::MP_REACH_NLRI);
        if !nlri.is_empty() || mp_reach {
            let mut required = vec![attr_type::ORIGIN, attr_type::AS_PATH];
            if !nlri.is_empty() {
                required.push(attr_type::NEXT_HOP);
            }
            if let Some(&missing) = required.iter().find(|&&t| !has(t)) {
                soft_error
                    .get_or_insert(DecodeError::MissingWellKnownAttribute { type_code: missing });
            }
        }
        match soft_error {
            Some(e) => Err(e),
            None => Ok(Update {
                withdrawn,
                attributes,
                nlri,
            }),
        }
    }
}

/// A path attribute (RFC 4271 §5 and the RFCs registering the others).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathAttribute {
    Origin(Origin),
    AsPath(AsPath),
    NextHop(Ipv4Addr),
    MultiExitDisc(u32),
    LocalPref(u32),
    AtomicAggregate,
    Aggregator {
        asn: u32,
        address: Ipv4Addr,
    },
    Communities(Vec<Community>),
    MpReach(MpReach),
    MpUnreach(MpUnreach),
    As4Path(AsPath),
    As4Aggregator {
        asn: u32,
        address: Ipv4Addr,
    },
    LargeCommunities(Vec<LargeCommunity>),
    /// Any other attribute, kept with its optional/transitive/partial flags.
    Unknown {
        flags: u8,
        type_code: u8,
        value: Vec<u8>,
    },
}

impl PathAttribute {
    pub fn type_code(&self) -> u8 {
        use PathAttribute::*;
        match self {
            Origin(_) => attr_type::ORIGIN,
            AsPath(_) => attr_type::AS_PATH,
            NextHop(_) => attr_type::NEXT_HOP,
            MultiExitDisc(_) => attr_type::MULTI_EXIT_DISC,
            LocalPref(_) => attr_type::LOCAL_PREF,
            AtomicAggregate => attr_type::ATOMIC_AGGREGATE,
            Aggregator { .. } => attr_type::AGGREGATOR,
            Communities(_) => attr_type::COMMUNITIES,
            MpReach(_) => attr_type::MP_REACH_NLRI,
            MpUnreach(_) => attr_type::MP_UNREACH_NLRI,
            As4Path(_) => attr_type::AS4_PATH,
            As4Aggregator { .. } => attr_type::AS4_AGGREGATOR,
            LargeCommunities(_) => attr_type::LARGE_COMMUNITY,
            Unknown { type_code, .. } => *type_code,
        }
    }

    /// Optional/transitive flags this attribute must carry, `None` for unknown ones.
    fn required_flags(type_code: u8) -> Option<u8> {
        use attr_type::*;
        Some(match type_code {
            ORIGIN | AS_PATH | NEXT_HOP | LOCAL_PREF | ATOMIC_AGGREGATE => flag::TRANSITIVE,
            AGGREGATOR | COMMUNITIES | AS4_PATH | AS4_AGGREGATOR | LARGE_COMMUNITY => {
                flag::OPTIONAL | flag::TRANSITIVE
            }
            MULTI_EXIT_DISC | MP_REACH_NLRI | MP_UNREACH_NLRI => flag::OPTIONAL,
            _ => return None,
        })
    }

    fn flags(&self) -> u8 {
        match self {
            PathAttribute::Unknown { flags, .. } => {
                flags & (flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL)
            }
            known => Self::required_flags(known.type_code()).unwrap_or(flag::OPTIONAL),
        }
    }

    /// Appends the attribute (flags, type, length, value).
    pub fn encode(&self, ctx: WireContext, out: &mut Vec<u8>) {
        let mut value = Vec::new();
        self.encode_value(ctx, &mut value);
        let value = &value[..value.len().min(u16::MAX as usize)];
        let mut flags = self.flags();
        if value.len() > 255 {
            flags |= flag::EXTENDED_LENGTH;
        }
        out.push(flags);
        out.push(self.type_code());
        if value.len() > 255 {
            out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        } else {
            out.push(value.len() as u8);
        }
        out.extend_from_slice(value);
    }

    /// Octets the attribute takes on the wire.
    pub fn wire_len(&self, ctx: WireContext) -> usize {
        let mut out = Vec::new();
        self.encode(ctx, &mut out);
        out.len()
    }

    fn encode_value(&self, ctx: WireContext, out: &mut Vec<u8>) {
        use PathAttribute::*;
        match self {
            Origin(o) => out.push(*o as u8),
            AsPath(p) => p.encode(ctx.four_octet_as, out),
            NextHop(a) => out.extend_from_slice(&a.octets()),
            MultiExitDisc(v) | LocalPref(v) => out.extend_from_slice(&v.to_be_bytes()),
            AtomicAggregate => {}
            Aggregator { asn, address } => {
                if ctx.four_octet_as {
                    out.extend_from_slice(&asn.to_be_bytes());
                } else {
                    out.extend_from_slice(&two_octet(*asn).to_be_bytes());
                }
                out.extend_from_slice(&address.octets());
            }
            Communities(cs) => {
                for c in cs {
                    out.extend_from_slice(&c.0.to_be_bytes());
                }
            }
            MpReach(m) => m.encode(out),
            MpUnreach(m) => m.encode(out),
            As4Path(p) => p.encode(true, out),
            As4Aggregator { asn, address } => {
                out.extend_from_slice(&asn.to_be_bytes());
                out.extend_from_slice(&address.octets());
            }
            LargeCommunities(cs) => {
                for c in cs {
                    out.extend_from_slice(&c.global_admin.to_be_bytes());
                    out.extend_from_slice(&c.local_data_1.to_be_bytes());
                    out.extend_from_slice(&c.local_data_2.to_be_bytes());
                }
            }
            Unknown { value, .. } => out.extend_from_slice(value),
        }
    }

    fn decode(
        flags: u8,
        type_code: u8,
        value: &[u8],
        raw: &[u8],
        ctx: WireContext,
    ) -> Result<Self, DecodeError> {
        let raw = || raw.to_vec();
        let Some(required) = Self::required_flags(type_code) else {
            if flags & flag::OPTIONAL == 0 {
                return Err(DecodeError::UnrecognizedWellKnownAttribute {
                    type_code,
                    attribute: raw(),
                });
            }
            return Ok(PathAttribute::Unknown {
                flags: flags & (flag::OPTIONAL | flag::TRANSITIVE | flag::PARTIAL),
                type_code,
                value: value.to_vec(),
            });
        };
        let mut checked = flags & (flag::OPTIONAL | flag::TRANSITIVE);
        if required & flag::OPTIONAL == 0 || required & flag::TRANSITIVE == 0 {
            // The partial bit must be 0 for well-known and optional non-transitive ones.
            checked |= flags & flag::PARTIAL;
        }
        if checked != required {
            return Err(DecodeError::AttributeFlags {
                type_code,
                attribute: raw(),
            });
        }
        let length_error = || DecodeError::AttributeLength {
            type_code,
            attribute: raw(),
        };
        let fixed = |n: usize| {
            if value.len() == n {
                Ok(Reader::new(value))
            } else {
                Err(length_error())
            }
        };
        use attr_type::*;
        Ok(match type_code {
            ORIGIN => {
                let v = fixed(1)?.u8().ok_or_else(length_error)?;
                PathAttribute::Origin(match v {
                    0 => Origin::Igp,
                    1 => Origin::Egp,
                    2 => Origin::Incomplete,
                    _ => return Err(DecodeError::InvalidOrigin { attribute: raw() }),
                })
            }
            AS_PATH => PathAttribute::AsPath(
                AsPath::decode(value, ctx.four_octet_as)
                    .ok_or_else(|| DecodeError::MalformedAsPath { attribute: raw() })?,
            ),
            NEXT_HOP => PathAttribute::NextHop(fixed(4)?.ipv4().ok_or_else(length_error)?),
            MULTI_EXIT_DISC => {
                PathAttribute::MultiExitDisc(fixed(4)?.u32().ok_or_else(length_error)?)
            }
            LOCAL_PREF => PathAttribute::LocalPref(fixed(4)?.u32().ok_or_else(length_error)?),
            ATOMIC_AGGREGATE => {
                fixed(0)?;
                PathAttribute::AtomicAggregate
            }
            AGGREGATOR => {
                let mut r = fixed(if ctx.four_octet_as { 8 } else { 6 })?;
                let asn = if ctx.four_octet_as {
                    r.u32()
                } else {
                    r.u16().map(u32::from)
                };
                let (Some(asn), Some(address)) = (asn, r.ipv4()) else {
                    return Err(length_error());
                };
                PathAttribute::Aggregator { asn, address }
            }
            COMMUNITIES => {
                if value.is_empty() || !value.len().is_multiple_of(4) {
                    return Err(length_error());
                }
                let mut r = Reader::new(value);
                let mut cs = Vec::with_capacity(value.len() / 4);
                while let Some(v) = r.u32() {
                    cs.push(Community(v));
                }
                PathAttribute::Communities(cs)
            }
            MP_REACH_NLRI => PathAttribute::MpReach(MpReach::decode(value, length_error)?),
            MP_UNREACH_NLRI => PathAttribute::MpUnreach(MpUnreach::decode(value, length_error)?),
            AS4_PATH => PathAttribute::As4Path(
                // A malformed AS4_PATH is discarded (RFC 6793 §6), not a withdrawal.
                AsPath::decode(value, true).ok_or_else(|| DecodeError::OptionalAttribute {
                    type_code,
                    attribute: raw(),
                })?,
            ),
            AS4_AGGREGATOR => {
                let mut r = fixed(8)?;
                let (Some(asn), Some(address)) = (r.u32(), r.ipv4()) else {
                    return Err(length_error());
                };
                PathAttribute::As4Aggregator { asn, address }
            }
            LARGE_COMMUNITY => {
                if value.is_empty() || !value.len().is_multiple_of(12) {
                    return Err(length_error());
                }
                let mut r = Reader::new(value);
                let mut cs = Vec::with_capacity(value.len() / 12);
                while let (Some(g), Some(l1), Some(l2)) = (r.u32(), r.u32(), r.u32()) {
                    cs.push(LargeCommunity::new(g, l1, l2));
                }
                PathAttribute::LargeCommunities(cs)
            }
            // `required_flags` knows exactly the codes above; this arm only satisfies the
            // compiler without a panic path.
            _ => PathAttribute::Unknown {
                flags,
                type_code,
                value: value.to_vec(),
            },
        })
    }
}

fn two_octet(asn: u32) -> u16 {
    u16::try_from(asn).unwrap_or(AS_TRANS)
}

/// ORIGIN (RFC 4271 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AS_PATH / AS4_PATH (RFC 4271 §4.3, RFC 6793): a list of segments.
///
/// ```text
/// +------------------+------------------+--------------------------------+
/// | segment type (1) | number of ASes(1)| ASes (2 or 4 octets each)      |
/// +------------------+------------------+--------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: AsSegmentKind,
    pub asns: Vec<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum AsSegmentKind {
    Set = 1,
    Sequence = 2,
    ConfedSequence = 3,
    ConfedSet = 4,
}

impl AsPath {
    /// The path of a route this speaker originates: empty towards iBGP peers, our AS
    /// towards eBGP peers.
    pub fn origin(local_as: u32, ebgp: bool) -> Self {
        if ebgp {
            AsPath {
                segments: vec![AsSegment {
                    kind: AsSegmentKind::Sequence,
                    asns: vec![local_as],
                }],
            }
        } else {
            AsPath::default()
        }
    }

    fn encode(&self, four_octet: bool, out: &mut Vec<u8>) {
        for segment in &self.segments {
            for chunk in segment.asns.chunks(255) {
                out.push(segment.kind as u8);
                out.push(chunk.len() as u8);
                for &asn in chunk {
                    if four_octet {
                        out.extend_from_slice(&asn.to_be_bytes());
                    } else {
                        out.extend_from_slice(&two_octet(asn).to_be_bytes());
                    }
                }
            }
        }
    }

    fn decode(value: &[u8], four_octet: bool) -> Option<Self> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while !r.is_empty() {
            let kind = match r.u8()? {
                1 => AsSegmentKind::Set,
                2 => AsSegmentKind::Sequence,
                3 => AsSegmentKind::ConfedSequence,
                4 => AsSegmentKind::ConfedSet,
                _ => return None,
            };
            let count = r.u8()?;
            if count == 0 {
                return None;
            }
            let mut asns = Vec::with_capacity(count as usize);
            for _ in 0..count {
                asns.push(if four_octet {
                    r.u32()?
                } else {
                    u32::from(r.u16()?)
                });
            }
            segments.push(AsSegment { kind, asns });
        }
        Some(AsPath { segments })
    }

    /// Whether any AS number needs 4 octets (and so AS4_PATH, RFC 6793 §4.2.2).
    pub fn needs_four_octets(&self) -> bool {
        self.segments
            .iter()
            .any(|s| s.asns.iter().any(|&a| a > u32::from(u16::MAX)))
    }
}

/// MP_REACH_NLRI (RFC 4760 §3).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Length of Next Hop Network Address (1 octet)            |
/// +---------------------------------------------------------+
/// | Network Address of Next Hop (variable)                  |
/// +---------------------------------------------------------+
/// | Reserved (1 octet)                                      |
/// +---------------------------------------------------------+
/// | Network Layer Reachability Information (variable)       |
/// +---------------------------------------------------------+
/// ```
///
/// For IPv6 the next hop is a global address, optionally followed by a link-local one
/// (RFC 2545 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpReach {
    Ipv4Unicast {
        next_hop: Ipv4Addr,
        nlri: Vec<Ipv4Net>,
    },
    Ipv6Unicast {
        next_hop: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
        nlri: Vec<Ipv6Net>,
    },
    /// Another family (or another next-hop form), kept as the octets after AFI and SAFI.
    Other { afi_safi: AfiSafi, value: Vec<u8> },
}

impl MpReach {
    pub fn afi_safi(&self) -> AfiSafi {
        match self {
            MpReach::Ipv4Unicast { .. } => AfiSafi::IPV4_UNICAST,
            MpReach::Ipv6Unicast { .. } => AfiSafi::IPV6_UNICAST,
            MpReach::Other { afi_safi, .. } => *afi_safi,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let f = self.afi_safi();
        out.extend_from_slice(&f.afi.to_be_bytes());
        out.push(f.safi);
        match self {
            MpReach::Ipv4Unicast { next_hop, nlri } => {
                out.push(4);
                out.extend_from_slice(&next_hop.octets());
                out.push(0);
                for net in nlri {
                    prefix::encode_v4(net, out);
                }
            }
            MpReach::Ipv6Unicast {
                next_hop,
                link_local,
                nlri,
            } => {
                out.push(if link_local.is_some() { 32 } else { 16 });
                out.extend_from_slice(&next_hop.octets());
                if let Some(ll) = link_local {
                    out.extend_from_slice(&ll.octets());
                }
                out.push(0);
                for net in nlri {
                    prefix::encode_v6(net, out);
                }
            }
            MpReach::Other { value, .. } => out.extend_from_slice(value),
        }
    }

    fn decode(value: &[u8], length_error: impl Fn() -> DecodeError) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
            return Err(length_error());
        };
        let afi_safi = AfiSafi { afi, safi };
        let rest = r.clone().rest();
        let other = || MpReach::Other {
            afi_safi,
            value: rest.to_vec(),
        };
        if afi_safi.family().is_none() {
            return Ok(other());
        }
        let nh_len = r.u8().ok_or_else(&length_error)?;
        let next_hop = r.take(nh_len as usize).ok_or_else(&length_error)?;
        r.u8().ok_or_else(&length_error)?;
        let mut nh = Reader::new(next_hop);
        Ok(match (afi_safi, nh_len) {
            (AfiSafi::IPV4_UNICAST, 4) => MpReach::Ipv4Unicast {
                next_hop: nh.ipv4().ok_or_else(&length_error)?,
                nlri: prefix::decode_v4_list(r.rest())?,
            },
            (AfiSafi::IPV6_UNICAST, 16 | 32) => MpReach::Ipv6Unicast {
                next_hop: nh.ipv6().ok_or_else(&length_error)?,
                link_local: if nh_len == 32 { nh.ipv6() } else { None },
                nlri: prefix::decode_v6_list(r.rest())?,
            },
            (AfiSafi::IPV6_UNICAST, _) => return Err(length_error()),
            // IPv4 with another next-hop form (e.g. RFC 8950's IPv6 next hop).
            _ => other(),
        })
    }
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
///
/// ```text
/// +---------------------------------------------------------+
/// | Address Family Identifier (2 octets)                    |
/// +---------------------------------------------------------+
/// | Subsequent Address Family Identifier (1 octet)          |
/// +---------------------------------------------------------+
/// | Withdrawn Routes (variable)                             |
/// +---------------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpUnreach {
    Ipv4Unicast(Vec<Ipv4Net>),
    Ipv6Unicast(Vec<Ipv6Net>),
    Other { afi_safi: AfiSafi, value: Vec<u8> },
}

impl MpUnreach {
    pub fn afi_safi(&self) -> AfiSafi {
        match self {
            MpUnreach::Ipv4Unicast(_) => AfiSafi::IPV4_UNICAST,
            MpUnreach::Ipv6Unicast(_) => AfiSafi::IPV6_UNICAST,
            MpUnreach::Other { afi_safi, .. } => *afi_safi,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            MpUnreach::Ipv4Unicast(n) => n.is_empty(),
            MpUnreach::Ipv6Unicast(n) => n.is_empty(),
            MpUnreach::Other { value, .. } => value.is_empty(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let f = self.afi_safi();
        out.extend_from_slice(&f.afi.to_be_bytes());
        out.push(f.safi);
        match self {
            MpUnreach::Ipv4Unicast(nets) => nets.iter().for_each(|n| prefix::encode_v4(n, out)),
            MpUnreach::Ipv6Unicast(nets) => nets.iter().for_each(|n| prefix::encode_v6(n, out)),
            MpUnreach::Other { value, .. } => out.extend_from_slice(value),
        }
    }

    fn decode(value: &[u8], length_error: impl Fn() -> DecodeError) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let (Some(afi), Some(safi)) = (r.u16(), r.u8()) else {
            return Err(length_error());
        };
        Ok(match (AfiSafi { afi, safi }) {
            AfiSafi::IPV4_UNICAST => MpUnreach::Ipv4Unicast(prefix::decode_v4_list(r.rest())?),
            AfiSafi::IPV6_UNICAST => MpUnreach::Ipv6Unicast(prefix::decode_v6_list(r.rest())?),
            afi_safi => MpUnreach::Other {
                afi_safi,
                value: r.rest().to_vec(),
            },
        })
    }
}

/// A community (RFC 1997): by convention the high 16 bits are an AS number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);

    pub fn new(asn: u16, value: u16) -> Self {
        Community((u32::from(asn) << 16) | u32::from(value))
    }
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.0 >> 16, self.0 & 0xffff)
    }
}

/// Why a community string was not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("community {input:?} is not of the form {form}")]
pub struct ParseCommunityError {
    input: String,
    form: &'static str,
}

impl FromStr for Community {
    type Err = ParseCommunityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError {
            input: s.to_owned(),
            form: "ASN:VALUE with two 16-bit numbers",
        };
        let (a, v) = s.split_once(':').ok_or_else(err)?;
        Ok(Community::new(
            a.parse().map_err(|_| err())?,
            v.parse().map_err(|_| err())?,
        ))
    }
}

/// A large community (RFC 8092): three 32-bit numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data_1: u32,
    pub local_data_2: u32,
}

impl LargeCommunity {
    pub fn new(global_admin: u32, local_data_1: u32, local_data_2: u32) -> Self {
        Self {
            global_admin,
            local_data_1,
            local_data_2,
        }
    }
}

impl fmt::Display for LargeCommunity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.global_admin, self.local_data_1, self.local_data_2
        )
    }
}

impl FromStr for LargeCommunity {
    type Err = ParseCommunityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || ParseCommunityError {
            input: s.to_owned(),
            form: "GLOBAL:LOCAL1:LOCAL2 with three 32-bit numbers",
        };
        let mut parts = s.split(':').map(|p| p.parse::<u32>().map_err(|_| err()));
        let (Some(g), Some(l1), Some(l2), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        Ok(LargeCommunity::new(g?, l1?, l2?))
    }
}
