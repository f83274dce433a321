//! The byte encoding of SWIM messages between speakers: member identities, foca's message
//! header and member updates. All integers big-endian. Decoding never panics; any
//! inconsistency is a [`CodecError`] and the datagram is dropped.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut};
use foca::{Header, Member, Message, State};

/// A Kubernetes node name, as the speakers know each other.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeName(String);

impl NodeName {
    /// Node names are DNS subdomains: at most 253 bytes.
    pub const MAX_LEN: usize = 253;

    pub fn new(name: impl Into<String>) -> Result<Self, CodecError> {
        let name = name.into();
        if name.is_empty() || name.len() > Self::MAX_LEN {
            return Err(CodecError::NodeNameLength(name.len()));
        }
        Ok(NodeName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// A speaker's identity in the membership: its node, the address it listens on, and a
/// `generation` that grows each time the speaker (re)starts or is renewed after being
/// declared down, so that the newest instance on an address wins.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | family (4|6)  |  address (4 or 16 octets) ...                 |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |             port              |  generation (8 octets) ...    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  name length  |  node name (UTF-8, 0..=253 octets; 0 = unknown)
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-
/// ```
///
/// An empty name is only used as the destination of an announcement to a peer whose name
/// is not known yet (foca accepts announcements by address).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MemberId {
    pub node: Option<NodeName>,
    pub addr: SocketAddr,
    pub generation: u64,
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            Some(n) => write!(f, "{n}@{}#{}", self.addr, self.generation),
            None => write!(f, "?@{}#{}", self.addr, self.generation),
        }
    }
}

impl foca::Identity for MemberId {
    type Addr = SocketAddr;

    /// Declared down while alive (a pause, a partition): come back as a newer generation.
    fn renew(&self) -> Option<Self> {
        Some(MemberId {
            node: self.node.clone(),
            addr: self.addr,
            generation: self.generation.wrapping_add(1),
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        self.generation > adversary.generation
    }
}

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("message ends early")]
    Truncated,
    #[error("unknown address family {0}")]
    AddressFamily(u8),
    #[error("node name is not UTF-8")]
    NodeNameEncoding,
    #[error("node name of {0} bytes, must be 1 to 253")]
    NodeNameLength(usize),
    #[error("unknown message kind {0}")]
    MessageKind(u8),
    #[error("unknown member state {0}")]
    MemberState(u8),
}

fn get_u8(buf: &mut impl Buf) -> Result<u8, CodecError> {
    buf.try_get_u8().map_err(|_| CodecError::Truncated)
}
fn get_u16(buf: &mut impl Buf) -> Result<u16, CodecError> {
    buf.try_get_u16().map_err(|_| CodecError::Truncated)
}
fn get_u64(buf: &mut impl Buf) -> Result<u64, CodecError> {
    buf.try_get_u64().map_err(|_| CodecError::Truncated)
}
fn get_array<const N: usize>(buf: &mut impl Buf) -> Result<[u8; N], CodecError> {
    let mut a = [0u8; N];
    buf.try_copy_to_slice(&mut a)
        .map_err(|_| CodecError::Truncated)?;
    Ok(a)
}

impl MemberId {
    pub fn encode(&self, buf: &mut impl BufMut) {
        match self.addr.ip() {
            IpAddr::V4(a) => {
                buf.put_u8(4);
                buf.put_slice(&a.octets());
            }
            IpAddr::V6(a) => {
                buf.put_u8(6);
                buf.put_slice(&a.octets());
            }
        }
        buf.put_u16(self.addr.port());
        buf.put_u64(self.generation);
        let name = self.node.as_ref().map(NodeName::as_str).unwrap_or("");
        // NodeName guarantees at most 253 bytes.
        buf.put_u8(u8::try_from(name.len()).unwrap_or(0));
        buf.put_slice(name.as_bytes());
    }

    pub fn decode(buf: &mut impl Buf) -> Result<MemberId, CodecError> {
        let ip = match get_u8(buf)? {
            4 => IpAddr::V4(Ipv4Addr::from(get_array::<4>(buf)?)),
            6 => IpAddr::V6(Ipv6Addr::from(get_array::<16>(buf)?)),
            other => return Err(CodecError::AddressFamily(other)),
        };
        let port = get_u16(buf)?;
        let generation = get_u64(buf)?;
        let len = usize::from(get_u8(buf)?);
        if len > NodeName::MAX_LEN {
            return Err(CodecError::NodeNameLength(len));
        }
        let node = if len == 0 {
            None
        } else {
            if buf.remaining() < len {
                return Err(CodecError::Truncated);
            }
            let mut name = vec![0u8; len];
            buf.copy_to_slice(&mut name);
            let name = String::from_utf8(name).map_err(|_| CodecError::NodeNameEncoding)?;
            Some(NodeName(name))
        };
        Ok(MemberId {
            node,
            addr: SocketAddr::new(ip, port),
            generation,
        })
    }
}

/// foca's messages on the wire. A header is:
///
/// ```text
/// +----------------+-----------------+----------------+------+------------------------+
/// | source MemberId| source incarn.  | dest. MemberId | kind | kind-specific fields   |
/// |   (variable)   |   (2 octets)    |   (variable)   | (1)  |                        |
/// +----------------+-----------------+----------------+------+------------------------+
///
/// kind  message        fields
///  0    Ping           probe number (1)
///  1    Ack            probe number (1)
///  2    PingReq        target MemberId, probe number (1)
///  3    IndirectPing   origin MemberId, probe number (1)
///  4    IndirectAck    target MemberId, probe number (1)
///  5    ForwardedAck   origin MemberId, probe number (1)
///  6    Announce       -
///  7    Feed           -
///  8    Gossip         -
///  9    Broadcast      -
/// 10    TurnUndead     -
/// ```
///
/// foca follows the header with a 2-octet count and that many member updates:
///
/// ```text
/// +----------------+-------------------------+----------------------------------+
/// |    MemberId    | incarnation (2 octets)  | state (1): 0 alive 1 suspect 2 down |
/// +----------------+-------------------------+----------------------------------+
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SpeakerCodec;

impl foca::Codec<MemberId> for SpeakerCodec {
    type Error = CodecError;

    fn encode_header(
        &mut self,
        header: &Header<MemberId>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        header.src.encode(&mut buf);
        buf.put_u16(header.src_incarnation);
        header.dst.encode(&mut buf);
        match &header.message {
            Message::Ping(p) => {
                buf.put_u8(0);
                buf.put_u8(*p);
            }
            Message::Ack(p) => {
                buf.put_u8(1);
                buf.put_u8(*p);
            }
            Message::PingReq {
                target,
                probe_number,
            } => {
                buf.put_u8(2);
                target.encode(&mut buf);
                buf.put_u8(*probe_number);
            }
            Message::IndirectPing {
                origin,
                probe_number,
            } => {
                buf.put_u8(3);
                origin.encode(&mut buf);
                buf.put_u8(*probe_number);
            }
            Message::IndirectAck {
                target,
                probe_number,
            } => {
                buf.put_u8(4);
                target.encode(&mut buf);
                buf.put_u8(*probe_number);
            }
            Message::ForwardedAck {
                origin,
                probe_number,
            } => {
                buf.put_u8(5);
                origin.encode(&mut buf);
                buf.put_u8(*probe_number);
            }
            Message::Announce => buf.put_u8(6),
            Message::Feed => buf.put_u8(7),
            Message::Gossip => buf.put_u8(8),
            Message::Broadcast => buf.put_u8(9),
            Message::TurnUndead => buf.put_u8(10),
        }
        Ok(())
    }

    fn decode_header(&mut self, mut buf: impl Buf) -> Result<Header<MemberId>, CodecError> {
        let src = MemberId::decode(&mut buf)?;
        let src_incarnation = get_u16(&mut buf)?;
        let dst = MemberId::decode(&mut buf)?;
        let message = match get_u8(&mut buf)? {
            0 => Message::Ping(get_u8(&mut buf)?),
            1 => Message::Ack(get_u8(&mut buf)?),
            2 => Message::PingReq {
                target: MemberId::decode(&mut buf)?,
                probe_number: get_u8(&mut buf)?,
            },
            3 => Message::IndirectPing {
                origin: MemberId::decode(&mut buf)?,
                probe_number: get_u8(&mut buf)?,
            },
            4 => Message::IndirectAck {
                target: MemberId::decode(&mut buf)?,
                probe_number: get_u8(&mut buf)?,
            },
            5 => Message::ForwardedAck {
                origin: MemberId::decode(&mut buf)?,
                probe_number: get_u8(&mut buf)?,
            },
            6 => Message::Announce,
            7 => Message::Feed,
            8 => Message::Gossip,
            9 => Message::Broadcast,
            10 => Message::TurnUndead,
            other => return Err(CodecError::MessageKind(other)),
        };
        Ok(Header {
            src,
            src_incarnation,
            dst,
            message,
        })
    }

    fn encode_member(
        &mut self,
        member: &Member<MemberId>,
        mut buf: impl BufMut,
    ) -> Result<(), CodecError> {
        member.id().encode(&mut buf);
        buf.put_u16(member.incarnation());
        buf.put_u8(match member.state() {
            State::Alive => 0,
            State::Suspect => 1,
            State::Down => 2,
        });
        Ok(())
    }

    fn decode_member(&mut self, mut buf: impl Buf) -> Result<Member<MemberId>, CodecError> {
        let id = MemberId::decode(&mut buf)?;
        let incarnation = get_u16(&mut buf)?;
        let state = match get_u8(&mut buf)? {
            0 => State::Alive,
            1 => State::Suspect,
            2 => State::Down,
            other => return Err(CodecError::MemberState(other)),
        };
        Ok(Member::new(id, incarnation, state))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use foca::Codec;
    use proptest::prelude::*;

    fn id(name: &str, addr: &str, generation: u64) -> MemberId {
        MemberId {
            node: Some(NodeName::new(name).unwrap()),
            addr: addr.parse().unwrap(),
            generation,
        }
    }

    #[test]
    fn identity_vector() {
        let mut out = Vec::new();
        id("node-a", "192.0.2.1:7946", 0x0102030405060708).encode(&mut out);
        assert_eq!(
            out,
            [
                4, 192, 0, 2, 1, 0x1f, 0x0a, 1, 2, 3, 4, 5, 6, 7, 8, 6, b'n', b'o', b'd', b'e',
                b'-', b'a'
            ]
        );
        let mut out = Vec::new();
        MemberId {
            node: None,
            addr: "[2001:db8::1]:7946".parse().unwrap(),
            generation: 0,
        }
        .encode(&mut out);
        let mut want = vec![6, 0x20, 0x01, 0x0d, 0xb8];
        want.extend_from_slice(&[0; 11]);
        want.push(1);
        want.extend_from_slice(&[0x1f, 0x0a, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(out, want);
    }

    #[test]
    fn header_vector() {
        let h = Header {
            src: id("a", "192.0.2.1:7946", 1),
            src_incarnation: 0x0203,
            dst: id("b", "192.0.2.2:7946", 2),
            message: Message::Ping(9),
        };
        let mut out = Vec::new();
        SpeakerCodec.encode_header(&h, &mut out).unwrap();
        let want: Vec<u8> = [
            &[4, 192, 0, 2, 1, 0x1f, 0x0a, 0, 0, 0, 0, 0, 0, 0, 1, 1, b'a'][..],
            &[2, 3],
            &[4, 192, 0, 2, 2, 0x1f, 0x0a, 0, 0, 0, 0, 0, 0, 0, 2, 1, b'b'],
            &[0, 9],
        ]
        .concat();
        assert_eq!(out, want);
        assert_eq!(SpeakerCodec.decode_header(&out[..]).unwrap(), h);
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert_eq!(
            MemberId::decode(&mut &[9u8][..]),
            Err(CodecError::AddressFamily(9))
        );
        assert_eq!(
            MemberId::decode(&mut &[4u8, 1, 2][..]),
            Err(CodecError::Truncated)
        );
        let mut out = Vec::new();
        id("x", "192.0.2.1:1", 1).encode(&mut out);
        *out.last_mut().unwrap() = 0xff;
        assert_eq!(
            MemberId::decode(&mut &out[..]),
            Err(CodecError::NodeNameEncoding)
        );
        assert!(NodeName::new("").is_err());
        assert!(NodeName::new("x".repeat(254)).is_err());
    }

    fn arb_id() -> impl Strategy<Value = MemberId> {
        (
            proptest::option::of("[a-z0-9.-]{1,40}"),
            any::<bool>(),
            any::<u32>(),
            any::<u128>(),
            any::<u16>(),
            any::<u64>(),
        )
            .prop_map(|(name, v4, a4, a6, port, generation)| MemberId {
                node: name.map(|n| NodeName::new(n).unwrap()),
                addr: if v4 {
                    SocketAddr::new(Ipv4Addr::from(a4).into(), port)
                } else {
                    SocketAddr::new(Ipv6Addr::from(a6).into(), port)
                },
                generation,
            })
    }

    fn arb_message() -> impl Strategy<Value = Message<MemberId>> {
        prop_oneof![
            any::<u8>().prop_map(Message::Ping),
            any::<u8>().prop_map(Message::Ack),
            (arb_id(), any::<u8>()).prop_map(|(target, probe_number)| Message::PingReq {
                target,
                probe_number
            }),
            (arb_id(), any::<u8>()).prop_map(|(origin, probe_number)| Message::IndirectPing {
                origin,
                probe_number
            }),
            (arb_id(), any::<u8>()).prop_map(|(target, probe_number)| Message::IndirectAck {
                target,
                probe_number
            }),
            (arb_id(), any::<u8>()).prop_map(|(origin, probe_number)| Message::ForwardedAck {
                origin,
                probe_number
            }),
            Just(Message::Announce),
            Just(Message::Feed),
            Just(Message::Gossip),
            Just(Message::Broadcast),
            Just(Message::TurnUndead),
        ]
    }

    proptest! {
        #[test]
        fn header_round_trip(src in arb_id(), inc in any::<u16>(), dst in arb_id(), message in arb_message()) {
            let h = Header { src, src_incarnation: inc, dst, message };
            let mut out = Vec::new();
            SpeakerCodec.encode_header(&h, &mut out).unwrap();
            let mut rest = &out[..];
            prop_assert_eq!(SpeakerCodec.decode_header(&mut rest).unwrap(), h);
            prop_assert!(rest.is_empty());
        }

        #[test]
        fn member_round_trip(m in arb_id(), inc in any::<u16>(), state in 0u8..3) {
            let state = [State::Alive, State::Suspect, State::Down][usize::from(state)];
            let member = Member::new(m, inc, state);
            let mut out = Vec::new();
            SpeakerCodec.encode_member(&member, &mut out).unwrap();
            prop_assert_eq!(SpeakerCodec.decode_member(&out[..]).unwrap(), member);
        }

        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = SpeakerCodec.decode_header(&bytes[..]);
            let _ = SpeakerCodec.decode_member(&bytes[..]);
        }
    }
}
