use std::net::Ipv4Addr;

use super::{AfiSafi, BGP_VERSION, DecodeError, Family, Reader};

/// OPEN message (RFC 4271 §4.2); the only optional parameter understood is Capabilities
/// (RFC 5492, type 2), also in the extended parameter layout of RFC 9072.
///
/// ```text
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// +-+-+-+-+-+-+-+-+
/// |    Version    |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |     My Autonomous System      |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |           Hold Time           |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |                         BGP Identifier                        |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// | Opt Parm Len  |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// |  Parm. Type   | Parm. Length  |  Parameter Value (variable)   |
/// +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
/// Capabilities parameter (type 2), a list of:
/// +------------------------------+
/// | Capability Code (1 octet)    |
/// | Capability Length (1 octet)  |
/// | Capability Value (variable)  |
/// +------------------------------+
/// ```
///
/// The version is always 4: decoding rejects any other.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    /// The 2-octet AS field: the real AS, or `AS_TRANS` when it does not fit.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    pub capabilities: Vec<Capability>,
}

const PARAM_CAPABILITIES: u8 = 2;
const PARAM_EXTENDED: u8 = 255;

impl Open {
    /// The sender's AS: the 4-octet AS capability if present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.capabilities
            .iter()
            .find_map(|c| match c {
                Capability::FourOctetAs(asn) => Some(*asn),
                _ => None,
            })
            .unwrap_or(u32::from(self.my_as))
    }

    pub fn supports_four_octet_as(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::FourOctetAs(_)))
    }

    pub fn supports_route_refresh(&self) -> bool {
        self.capabilities
            .iter()
            .any(|c| matches!(c, Capability::RouteRefresh))
    }

    /// Families offered with the multiprotocol capability; a speaker that sends none
    /// speaks IPv4 unicast only (RFC 4760 §8).
    pub fn multiprotocol(&self) -> Vec<AfiSafi> {
        let offered: Vec<AfiSafi> = self
            .capabilities
            .iter()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if offered.is_empty() {
            vec![AfiSafi::IPV4_UNICAST]
        } else {
            offered
        }
    }

    pub fn supports_family(&self, family: Family) -> bool {
        self.multiprotocol().contains(&family.afi_safi())
    }

    pub fn graceful_restart(&self) -> Option<&GracefulRestartCap> {
        self.capabilities.iter().find_map(|c| match c {
            Capability::GracefulRestart(gr) => Some(gr),
            _ => None,
        })
    }

    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(BGP_VERSION);
        out.extend_from_slice(&self.my_as.to_be_bytes());
        out.extend_from_slice(&self.hold_time.to_be_bytes());
        out.extend_from_slice(&self.bgp_id.octets());
        let mut caps = Vec::new();
        for c in &self.capabilities {
            c.encode(&mut caps);
        }
        if caps.is_empty() {
            out.push(0);
        } else if caps.len() + 2 < 255 {
            out.push((caps.len() + 2) as u8);
            out.push(PARAM_CAPABILITIES);
            out.push(caps.len() as u8);
            out.extend_from_slice(&caps);
        } else {
            // RFC 9072: too many capabilities for one-octet lengths.
            out.push(255);
            out.push(PARAM_EXTENDED);
            out.extend_from_slice(&((caps.len() + 3) as u16).to_be_bytes());
            out.push(PARAM_CAPABILITIES);
            out.extend_from_slice(&(caps.len() as u16).to_be_bytes());
            out.extend_from_slice(&caps);
        }
    }

    pub(super) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let short = DecodeError::MalformedOpen {
            what: "message too short",
        };
        let mut r = Reader::new(body);
        let version = r.u8().ok_or(short.clone())?;
        if version != BGP_VERSION {
            return Err(DecodeError::UnsupportedVersion { version });
        }
        let (Some(my_as), Some(hold_time), Some(bgp_id), Some(params_len)) =
            (r.u16(), r.u16(), r.ipv4(), r.u8())
        else {
            return Err(short);
        };
        let mut capabilities = Vec::new();
        if params_len == 255 && r.clone().u8() == Some(PARAM_EXTENDED) {
            // RFC 9072: a 2-octet length follows, then parameters with 2-octet lengths.
            r.u8();
            let len = r.u16().ok_or(DecodeError::MalformedOpen {
                what: "truncated extended parameters length",
            })?;
            if len as usize != r.remaining() {
                return Err(DecodeError::MalformedOpen {
                    what: "extended optional parameters length does not match the message",
                });
            }
            while !r.is_empty() {
                let (Some(kind), Some(len)) = (r.u8(), r.u16()) else {
                    return Err(DecodeError::MalformedOpen {
                        what: "truncated optional parameter",
                    });
                };
                let value = r.take(len as usize).ok_or(DecodeError::MalformedOpen {
                    what: "optional parameter exceeds the parameters",
                })?;
                decode_param(kind, value, &mut capabilities)?;
            }
        } else {
            if params_len as usize != r.remaining() {
                return Err(DecodeError::MalformedOpen {
                    what: "optional parameters length does not match the message",
                });
            }
            while !r.is_empty() {
                let (Some(kind), Some(len)) = (r.u8(), r.u8()) else {
                    return Err(DecodeError::MalformedOpen {
                        what: "truncated optional parameter",
                    });
                };
                let value = r.take(len as usize).ok_or(DecodeError::MalformedOpen {
                    what: "optional parameter exceeds the parameters",
                })?;
                decode_param(kind, value, &mut capabilities)?;
            }
        }
        Ok(Open {
            my_as,
            hold_time,
            bgp_id,
            capabilities,
        })
    }
}

fn decode_param(kind: u8, value: &[u8], caps: &mut Vec<Capability>) -> Result<(), DecodeError> {
    if kind != PARAM_CAPABILITIES {
        return Err(DecodeError::UnsupportedOptionalParameter { kind });
    }
    let mut r = Reader::new(value);
    while !r.is_empty() {
        let (Some(code), Some(len)) = (r.u8(), r.u8()) else {
            return Err(DecodeError::MalformedOpen {
                what: "truncated capability",
            });
        };
        let value = r.take(len as usize).ok_or(DecodeError::MalformedOpen {
            what: "capability exceeds its parameter",
        })?;
        caps.push(Capability::decode(code, value)?);
    }
    Ok(())
}

/// A capability advertised in OPEN (RFC 5492).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    /// Code 1 (RFC 4760): AFI (2 octets), reserved (1), SAFI (1).
    Multiprotocol(AfiSafi),
    /// Code 2 (RFC 2918), empty.
    RouteRefresh,
    /// Code 64 (RFC 4724).
    GracefulRestart(GracefulRestartCap),
    /// Code 65 (RFC 6793): the 4-octet AS number.
    FourOctetAs(u32),
    /// Any other capability, kept as received.
    Unknown { code: u8, value: Vec<u8> },
}

mod code {
    pub const MULTIPROTOCOL: u8 = 1;
    pub const ROUTE_REFRESH: u8 = 2;
    pub const GRACEFUL_RESTART: u8 = 64;
    pub const FOUR_OCTET_AS: u8 = 65;
}

impl Capability {
    pub fn code(&self) -> u8 {
        match self {
            Capability::Multiprotocol(_) => code::MULTIPROTOCOL,
            Capability::RouteRefresh => code::ROUTE_REFRESH,
            Capability::GracefulRestart(_) => code::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => code::FOUR_OCTET_AS,
            Capability::Unknown { code, .. } => *code,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.push(self.code());
        let len_at = out.len();
        out.push(0);
        match self {
            Capability::Multiprotocol(f) => {
                out.extend_from_slice(&f.afi.to_be_bytes());
                out.push(0);
                out.push(f.safi);
            }
            Capability::RouteRefresh => {}
            Capability::GracefulRestart(gr) => gr.encode(out),
            Capability::FourOctetAs(asn) => out.extend_from_slice(&asn.to_be_bytes()),
            Capability::Unknown { value, .. } => {
                out.extend_from_slice(&value[..value.len().min(255)])
            }
        }
        out[len_at] = (out.len() - len_at - 1).min(255) as u8;
    }

    fn decode(code: u8, value: &[u8]) -> Result<Self, DecodeError> {
        let bad = |what| DecodeError::MalformedOpen { what };
        let mut r = Reader::new(value);
        Ok(match code {
            code::MULTIPROTOCOL => {
                let (Some(afi), Some(_), Some(safi), true) =
                    (r.u16(), r.u8(), r.u8(), value.len() == 4)
                else {
                    return Err(bad("multiprotocol capability length is not 4"));
                };
                Capability::Multiprotocol(AfiSafi { afi, safi })
            }
            code::ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
            code::ROUTE_REFRESH => return Err(bad("route refresh capability is not empty")),
            code::GRACEFUL_RESTART => {
                Capability::GracefulRestart(GracefulRestartCap::decode(value)?)
            }
            code::FOUR_OCTET_AS => match (r.u32(), value.len()) {
                (Some(asn), 4) => Capability::FourOctetAs(asn),
                _ => return Err(bad("4-octet AS capability length is not 4")),
            },
            code => Capability::Unknown {
                code,
                value: value.to_vec(),
            },
        })
    }
}

/// The graceful restart capability (RFC 4724 §3; the N bit is RFC 8538's).
///
/// ```text
/// +--------------------------------------------------+
/// | Restart Flags (4 bits: R N 0 0)                  |
/// +--------------------------------------------------+
/// | Restart Time in seconds (12 bits)                |
/// +--------------------------------------------------+
/// | Address Family Identifier (16 bits)              |
/// +--------------------------------------------------+
/// | Subsequent Address Family Identifier (8 bits)    |
/// +--------------------------------------------------+
/// | Flags for Address Family (8 bits: F 0 0 0 0 0 0 0)|
/// +--------------------------------------------------+
/// | ...  (AFI, SAFI, flags repeated)                 |
/// +--------------------------------------------------+
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartCap {
    /// R: the sender has restarted (and its peer should not wait for its End-of-RIB
    /// before sending its own routes).
    pub restart_state: bool,
    /// N: graceful restart also applies after a NOTIFICATION (RFC 8538).
    pub notification: bool,
    /// Seconds the peer keeps our routes after the session is lost; 12 bits.
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub afi_safi: AfiSafi,
    /// F: forwarding state for this family was kept across the restart.
    pub forwarding_preserved: bool,
}

impl GracefulRestartCap {
    fn encode(&self, out: &mut Vec<u8>) {
        let mut head = self.restart_time.min(0x0fff);
        if self.restart_state {
            head |= 0x8000;
        }
        if self.notification {
            head |= 0x4000;
        }
        out.extend_from_slice(&head.to_be_bytes());
        for f in &self.families {
            out.extend_from_slice(&f.afi_safi.afi.to_be_bytes());
            out.push(f.afi_safi.safi);
            out.push(if f.forwarding_preserved { 0x80 } else { 0 });
        }
    }

    fn decode(value: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(value);
        let head = r.u16().ok_or(DecodeError::MalformedOpen {
            what: "graceful restart capability too short",
        })?;
        if !r.remaining().is_multiple_of(4) {
            return Err(DecodeError::MalformedOpen {
                what: "graceful restart capability length is not 2 + 4n",
            });
        }
        let mut families = Vec::new();
        while let (Some(afi), Some(safi), Some(flags)) = (r.u16(), r.u8(), r.u8()) {
            families.push(GracefulRestartFamily {
                afi_safi: AfiSafi { afi, safi },
                forwarding_preserved: flags & 0x80 != 0,
            });
        }
        Ok(Self {
            restart_state: head & 0x8000 != 0,
            notification: head & 0x4000 != 0,
            restart_time: head & 0x0fff,
            families,
        })
    }
}
