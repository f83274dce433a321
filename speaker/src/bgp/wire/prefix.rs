//! NLRI prefixes (RFC 4271 §4.3): a length in bits, then just enough octets to hold it.
//!
//! ```text
//! +---------------------------+
//! |   Length (1 octet)        |
//! +---------------------------+
//! |   Prefix (variable)       |
//! +---------------------------+
//! ```

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{Ipv4Net, Ipv6Net};

use super::{DecodeError, Reader};

pub(crate) fn encode_v4(net: &Ipv4Net, out: &mut Vec<u8>) {
    let len = net.prefix_len();
    out.push(len);
    out.extend_from_slice(&net.network().octets()[..(len as usize).div_ceil(8)]);
}

pub(crate) fn encode_v6(net: &Ipv6Net, out: &mut Vec<u8>) {
    let len = net.prefix_len();
    out.push(len);
    out.extend_from_slice(&net.network().octets()[..(len as usize).div_ceil(8)]);
}

fn take_prefix<'a, const N: usize>(r: &mut Reader<'a>) -> Result<(u8, [u8; N]), DecodeError> {
    let len = r.u8().ok_or(DecodeError::InvalidNetworkField {
        what: "truncated prefix length",
    })?;
    if len as usize > N * 8 {
        return Err(DecodeError::InvalidNetworkField {
            what: "prefix length exceeds the address size",
        });
    }
    let bytes = r
        .take((len as usize).div_ceil(8))
        .ok_or(DecodeError::InvalidNetworkField {
            what: "prefix exceeds its field",
        })?;
    let mut octets = [0u8; N];
    octets[..bytes.len()].copy_from_slice(bytes);
    Ok((len, octets))
}

/// Decodes a whole field of IPv4 prefixes. Bits past the prefix length are cleared: they
/// carry no meaning (RFC 4271 §4.3).
pub(crate) fn decode_v4_list(field: &[u8]) -> Result<Vec<Ipv4Net>, DecodeError> {
    let mut r = Reader::new(field);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (len, octets) = take_prefix::<4>(&mut r)?;
        let net = Ipv4Net::new(Ipv4Addr::from(octets), len)
            .map_err(|_| DecodeError::InvalidNetworkField {
                what: "prefix length exceeds the address size",
            })?
            .trunc();
        out.push(net);
    }
    Ok(out)
}

pub(crate) fn decode_v6_list(field: &[u8]) -> Result<Vec<Ipv6Net>, DecodeError> {
    let mut r = Reader::new(field);
    let mut out = Vec::new();
    while !r.is_empty() {
        let (len, octets) = take_prefix::<16>(&mut r)?;
        let net = Ipv6Net::new(Ipv6Addr::from(octets), len)
            .map_err(|_| DecodeError::InvalidNetworkField {
                what: "prefix length exceeds the address size",
            })?
            .trunc();
        out.push(net);
    }
    Ok(out)
}
