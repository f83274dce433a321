//! BGP-4 wire format (RFC 4271 §4) with the extensions ferrolb speaks: MP-BGP (RFC 4760),
//! 4-octet AS numbers (RFC 6793), graceful restart (RFC 4724), route refresh (RFC 2918),
//! communities (RFC 1997) and large communities (RFC 8092).
//!
//! Every message starts with the common header:
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                                                               |
//! +                                                               +
//! |                           Marker (all ones)                   |
//! +                                                               +
//! |                                                               |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Length               |      Type     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! Decoding never panics: any byte string yields a message or a [`DecodeError`], and every
//! error knows the NOTIFICATION that answers it ([`DecodeError::notification`]) and how
//! RFC 7606 says to handle it ([`DecodeError::handling`]).

mod error;
mod keepalive;
mod notification;
mod open;
mod prefix;
mod route_refresh;
mod update;

pub use error::{DecodeError, EncodeError, ErrorHandling};
pub use keepalive::Keepalive;
pub use notification::{
    CeaseSubcode, ErrorCode, FsmSubcode, MessageHeaderSubcode, Notification, OpenSubcode,
    RouteRefreshSubcode, UpdateSubcode,
};
pub use open::{Capability, GracefulRestartCap, GracefulRestartFamily, Open};
pub use route_refresh::RouteRefresh;
pub use update::{
    AsPath, AsSegment, AsSegmentKind, Community, LargeCommunity, MpReach, MpUnreach, Origin,
    PathAttribute, Update, attr_type,
};

/// Length of the common header: 16 octets of marker, 2 of length, 1 of type.
pub const HEADER_LEN: usize = 19;
/// The largest message RFC 4271 allows (extended messages, RFC 8654, are not negotiated).
pub const MAX_MESSAGE_LEN: usize = 4096;
/// BGP version spoken.
pub const BGP_VERSION: u8 = 4;
/// The 2-octet stand-in for a 4-octet AS number (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// An address family and subsequent address family as carried on the wire (RFC 4760).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AfiSafi {
    pub afi: u16,
    pub safi: u8,
}

impl AfiSafi {
    pub const IPV4_UNICAST: AfiSafi = AfiSafi { afi: 1, safi: 1 };
    pub const IPV6_UNICAST: AfiSafi = AfiSafi { afi: 2, safi: 1 };

    /// The family this is, if ferrolb speaks it.
    pub fn family(self) -> Option<Family> {
        match self {
            Self::IPV4_UNICAST => Some(Family::Ipv4Unicast),
            Self::IPV6_UNICAST => Some(Family::Ipv6Unicast),
            _ => None,
        }
    }
}

/// The address families ferrolb announces routes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    Ipv4Unicast,
    Ipv6Unicast,
}

impl Family {
    pub const ALL: [Family; 2] = [Family::Ipv4Unicast, Family::Ipv6Unicast];

    pub fn afi_safi(self) -> AfiSafi {
        match self {
            Family::Ipv4Unicast => AfiSafi::IPV4_UNICAST,
            Family::Ipv6Unicast => AfiSafi::IPV6_UNICAST,
        }
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Family::Ipv4Unicast => "ipv4-unicast",
            Family::Ipv6Unicast => "ipv6-unicast",
        })
    }
}

/// What was negotiated and changes how UPDATEs are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireContext {
    /// Both sides sent the 4-octet AS capability: AS_PATH carries 4-octet numbers.
    pub four_octet_as: bool,
}

impl Default for WireContext {
    fn default() -> Self {
        Self {
            four_octet_as: true,
        }
    }
}

/// Message type codes (RFC 4271 §4.1, RFC 2918).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    Open = 1,
    Update = 2,
    Notification = 3,
    Keepalive = 4,
    RouteRefresh = 5,
}

impl MessageType {
    fn from_u8(value: u8) -> Option<Self> {
        Some(match value {
            1 => Self::Open,
            2 => Self::Update,
            3 => Self::Notification,
            4 => Self::Keepalive,
            5 => Self::RouteRefresh,
            _ => return None,
        })
    }
}

/// One BGP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(Open),
    Update(Update),
    Notification(Notification),
    Keepalive(Keepalive),
    RouteRefresh(RouteRefresh),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::Open,
            Message::Update(_) => MessageType::Update,
            Message::Notification(_) => MessageType::Notification,
            Message::Keepalive(_) => MessageType::Keepalive,
            Message::RouteRefresh(_) => MessageType::RouteRefresh,
        }
    }

    /// Appends the message, header included, to `out`.
    pub fn encode(&self, ctx: WireContext, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let start = out.len();
        out.extend_from_slice(&[0xff; 16]);
        out.extend_from_slice(&[0, 0, self.message_type() as u8]);
        match self {
            Message::Open(m) => m.encode_body(out),
            Message::Update(m) => m.encode_body(ctx, out),
            Message::Notification(m) => m.encode_body(out),
            Message::Keepalive(_) => {}
            Message::RouteRefresh(m) => m.encode_body(out),
        }
        let length = out.len() - start;
        if length > MAX_MESSAGE_LEN {
            out.truncate(start);
            return Err(EncodeError::TooLong { length });
        }
        out[start + 16..start + 18].copy_from_slice(&(length as u16).to_be_bytes());
        Ok(())
    }

    /// The message as a fresh byte vector.
    pub fn to_bytes(&self, ctx: WireContext) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::new();
        self.encode(ctx, &mut out)?;
        Ok(out)
    }

    /// Decodes exactly one message; `buf` must hold the whole message and nothing else
    /// (use [`frame_length`] to cut it out of a stream).
    pub fn decode(buf: &[u8], ctx: WireContext) -> Result<Message, DecodeError> {
        let length = check_header(buf)?;
        if length != buf.len() {
            return Err(DecodeError::BadMessageLength {
                length: length as u16,
            });
        }
        let kind = buf[18];
        let body = &buf[HEADER_LEN..];
        let bad_length = DecodeError::BadMessageLength {
            length: length as u16,
        };
        match MessageType::from_u8(kind) {
            None => Err(DecodeError::BadMessageType { kind }),
            Some(MessageType::Open) => Open::decode_body(body).map(Message::Open),
            Some(MessageType::Update) => {
                Update::decode_body(body, ctx, length as u16).map(Message::Update)
            }
            Some(MessageType::Notification) => Notification::decode_body(body)
                .ok_or(bad_length)
                .map(Message::Notification),
            Some(MessageType::Keepalive) if body.is_empty() => Ok(Message::Keepalive(Keepalive)),
            Some(MessageType::Keepalive) => Err(bad_length),
            Some(MessageType::RouteRefresh) => {
                RouteRefresh::decode_body(body).map(Message::RouteRefresh)
            }
        }
    }
}

/// Checks marker and length field; returns the length field.
fn check_header(buf: &[u8]) -> Result<usize, DecodeError> {
    if buf.len() < HEADER_LEN {
        return Err(DecodeError::BadMessageLength {
            length: buf.len() as u16,
        });
    }
    if buf[..16].iter().any(|&b| b != 0xff) {
        return Err(DecodeError::ConnectionNotSynchronized);
    }
    let length = u16::from_be_bytes([buf[16], buf[17]]);
    if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&(length as usize)) {
        return Err(DecodeError::BadMessageLength { length });
    }
    Ok(length as usize)
}

/// Finds the first message in a byte stream: `Ok(Some(n))` when `buf[..n]` is a whole
/// message, `Ok(None)` when more bytes are needed, an error when the header is bad (the
/// stream cannot be resynchronised then, RFC 4271 §6.1).
pub fn frame_length(buf: &[u8]) -> Result<Option<usize>, DecodeError> {
    if buf.len() < HEADER_LEN {
        // A wrong marker can be reported before the whole header is in.
        if buf.iter().take(16).any(|&b| b != 0xff) {
            return Err(DecodeError::ConnectionNotSynchronized);
        }
        return Ok(None);
    }
    let length = check_header(buf)?;
    Ok((buf.len() >= length).then_some(length))
}

/// A bounds-checked reader over a byte slice; every read returns `None` past the end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.buf.len() {
            return None;
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub(crate) fn ipv4(&mut self) -> Option<std::net::Ipv4Addr> {
        self.u32().map(std::net::Ipv4Addr::from)
    }
    pub(crate) fn ipv6(&mut self) -> Option<std::net::Ipv6Addr> {
        let b = self.take(16)?;
        let mut octets = [0u8; 16];
        octets.copy_from_slice(b);
        Some(std::net::Ipv6Addr::from(octets))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod tests;
