use std::fmt;

use super::Reader;

/// NOTIFICATION message (RFC 4271 §4.5), sent just before closing the connection.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Error code   | Error subcode |   Data (variable)             |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub error: ErrorCode,
    pub data: Vec<u8>,
}

impl Notification {
    pub fn new(error: ErrorCode) -> Self {
        Self {
            error,
            data: Vec::new(),
        }
    }

    /// A Cease with a shutdown communication (RFC 9003): a length octet, then UTF-8.
    pub fn cease_with_message(subcode: CeaseSubcode, message: &str) -> Self {
        let mut text = message.as_bytes();
        // The length octet caps the text at 255 octets; cut on a character boundary.
        if text.len() > 255 {
            let mut end = 255;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            text = &message.as_bytes()[..end];
        }
        let mut data = Vec::with_capacity(text.len() + 1);
        data.push(text.len() as u8);
        data.extend_from_slice(text);
        Self {
            error: ErrorCode::Cease(subcode),
            data,
        }
    }

    /// The shutdown communication of an administrative Cease, if it carries a valid one.
    pub fn shutdown_message(&self) -> Option<&str> {
        match self.error {
            ErrorCode::Cease(CeaseSubcode::AdministrativeShutdown)
            | ErrorCode::Cease(CeaseSubcode::AdministrativeReset) => {
                let (&len, rest) = self.data.split_first()?;
                std::str::from_utf8(rest.get(..len as usize)?).ok()
            }
            _ => None,
        }
    }

    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        let (code, subcode) = self.error.to_codes();
        out.push(code);
        out.push(subcode);
        out.extend_from_slice(&self.data);
    }

    /// `None` when the body is shorter than code and subcode.
    pub(super) fn decode_body(body: &[u8]) -> Option<Self> {
        let mut r = Reader::new(body);
        let code = r.u8()?;
        let subcode = r.u8()?;
        Some(Self {
            error: ErrorCode::from_codes(code, subcode),
            data: r.rest().to_vec(),
        })
    }
}

impl fmt::Display for Notification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error)?;
        if let Some(message) = self.shutdown_message() {
            write!(f, " ({message:?})")?;
        } else if !self.data.is_empty() {
            write!(f, ", data")?;
            for b in &self.data {
                write!(f, " {b:02x}")?;
            }
        }
        Ok(())
    }
}

macro_rules! subcodes {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A subcode this implementation does not know.
            Other(u8),
        }

        impl From<u8> for $name {
            fn from(value: u8) -> Self {
                match value {
                    $($value => Self::$variant,)*
                    other => Self::Other(other),
                }
            }
        }

        impl From<$name> for u8 {
            fn from(value: $name) -> u8 {
                match value {
                    $($name::$variant => $value,)*
                    $name::Other(other) => other,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self {
                    $(Self::$variant => f.write_str($text),)*
                    Self::Other(other) => write!(f, "subcode {other}"),
                }
            }
        }
    };
}

subcodes! {
    /// Message Header Error subcodes (RFC 4271 §4.5).
    MessageHeaderSubcode {
        Unspecific = 0 => "unspecific",
        ConnectionNotSynchronized = 1 => "connection not synchronized",
        BadMessageLength = 2 => "bad message length",
        BadMessageType = 3 => "bad message type",
    }
}

subcodes! {
    /// OPEN Message Error subcodes (RFC 4271 §4.5, RFC 5492).
    OpenSubcode {
        Unspecific = 0 => "unspecific",
        UnsupportedVersionNumber = 1 => "unsupported version number",
        BadPeerAs = 2 => "bad peer AS",
        BadBgpIdentifier = 3 => "bad BGP identifier",
        UnsupportedOptionalParameter = 4 => "unsupported optional parameter",
        UnacceptableHoldTime = 6 => "unacceptable hold time",
        UnsupportedCapability = 7 => "unsupported capability",
        RoleMismatch = 11 => "role mismatch",
    }
}

subcodes! {
    /// UPDATE Message Error subcodes (RFC 4271 §4.5).
    UpdateSubcode {
        Unspecific = 0 => "unspecific",
        MalformedAttributeList = 1 => "malformed attribute list",
        UnrecognizedWellKnownAttribute = 2 => "unrecognized well-known attribute",
        MissingWellKnownAttribute = 3 => "missing well-known attribute",
        AttributeFlagsError = 4 => "attribute flags error",
        AttributeLengthError = 5 => "attribute length error",
        InvalidOriginAttribute = 6 => "invalid ORIGIN attribute",
        InvalidNextHopAttribute = 8 => "invalid NEXT_HOP attribute",
        OptionalAttributeError = 9 => "optional attribute error",
        InvalidNetworkField = 10 => "invalid network field",
        MalformedAsPath = 11 => "malformed AS_PATH",
    }
}

subcodes! {
    /// Finite State Machine Error subcodes (RFC 6608).
    FsmSubcode {
        Unspecific = 0 => "unspecified",
        UnexpectedMessageInOpenSent = 1 => "unexpected message in OpenSent",
        UnexpectedMessageInOpenConfirm = 2 => "unexpected message in OpenConfirm",
        UnexpectedMessageInEstablished = 3 => "unexpected message in Established",
    }
}

subcodes! {
    /// Cease subcodes (RFC 4486, RFC 8538).
    CeaseSubcode {
        Unspecific = 0 => "unspecific",
        MaximumPrefixesReached = 1 => "maximum number of prefixes reached",
        AdministrativeShutdown = 2 => "administrative shutdown",
        PeerDeconfigured = 3 => "peer de-configured",
        AdministrativeReset = 4 => "administrative reset",
        ConnectionRejected = 5 => "connection rejected",
        OtherConfigurationChange = 6 => "other configuration change",
        ConnectionCollisionResolution = 7 => "connection collision resolution",
        OutOfResources = 8 => "out of resources",
        HardReset = 9 => "hard reset",
        BfdDown = 10 => "BFD down",
    }
}

subcodes! {
    /// ROUTE-REFRESH Message Error subcodes (RFC 7313).
    RouteRefreshSubcode {
        Reserved = 0 => "reserved",
        InvalidMessageLength = 1 => "invalid message length",
    }
}

/// NOTIFICATION error code with its subcode (RFC 4271 §4.5 and later registrations).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    MessageHeader(MessageHeaderSubcode),
    Open(OpenSubcode),
    Update(UpdateSubcode),
    /// Subcode is always 0; any other received subcode is ignored.
    HoldTimerExpired,
    FiniteStateMachine(FsmSubcode),
    Cease(CeaseSubcode),
    RouteRefresh(RouteRefreshSubcode),
    /// An error code this implementation does not know.
    Unknown {
        code: u8,
        subcode: u8,
    },
}

impl ErrorCode {
    pub fn to_codes(self) -> (u8, u8) {
        match self {
            ErrorCode::MessageHeader(s) => (1, s.into()),
            ErrorCode::Open(s) => (2, s.into()),
            ErrorCode::Update(s) => (3, s.into()),
            ErrorCode::HoldTimerExpired => (4, 0),
            ErrorCode::FiniteStateMachine(s) => (5, s.into()),
            ErrorCode::Cease(s) => (6, s.into()),
            ErrorCode::RouteRefresh(s) => (7, s.into()),
            ErrorCode::Unknown { code, subcode } => (code, subcode),
        }
    }

    pub fn from_codes(code: u8, subcode: u8) -> Self {
        match code {
            1 => ErrorCode::MessageHeader(subcode.into()),
            2 => ErrorCode::Open(subcode.into()),
            3 => ErrorCode::Update(subcode.into()),
            4 => ErrorCode::HoldTimerExpired,
            5 => ErrorCode::FiniteStateMachine(subcode.into()),
            6 => ErrorCode::Cease(subcode.into()),
            7 => ErrorCode::RouteRefresh(subcode.into()),
            code => ErrorCode::Unknown { code, subcode },
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::MessageHeader(s) => write!(f, "message header error: {s}"),
            ErrorCode::Open(s) => write!(f, "OPEN message error: {s}"),
            ErrorCode::Update(s) => write!(f, "UPDATE message error: {s}"),
            ErrorCode::HoldTimerExpired => write!(f, "hold timer expired"),
            ErrorCode::FiniteStateMachine(s) => write!(f, "finite state machine error: {s}"),
            ErrorCode::Cease(s) => write!(f, "cease: {s}"),
            ErrorCode::RouteRefresh(s) => write!(f, "ROUTE-REFRESH message error: {s}"),
            ErrorCode::Unknown { code, subcode } => {
                write!(f, "unknown error code {code} subcode {subcode}")
            }
        }
    }
}
