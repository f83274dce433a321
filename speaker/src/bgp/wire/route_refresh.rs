use super::{DecodeError, HEADER_LEN, Reader};

/// ROUTE-REFRESH message (RFC 2918; the subtype octet is RFC 7313's, 0 for a plain
/// refresh request).
///
/// ```text
///  0       7      15      23      31
/// +-------+-------+-------+-------+
/// |      AFI      |Subtype| SAFI  |
/// +-------+-------+-------+-------+
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteRefresh {
    pub afi_safi: super::AfiSafi,
    pub subtype: u8,
}

impl RouteRefresh {
    pub(super) fn encode_body(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.afi_safi.afi.to_be_bytes());
        out.push(self.subtype);
        out.push(self.afi_safi.safi);
    }

    pub(super) fn decode_body(body: &[u8]) -> Result<Self, DecodeError> {
        let bad = DecodeError::BadRouteRefreshLength {
            length: (body.len() + HEADER_LEN) as u16,
        };
        if body.len() != 4 {
            return Err(bad);
        }
        let mut r = Reader::new(body);
        let (Some(afi), Some(subtype), Some(safi)) = (r.u16(), r.u8(), r.u8()) else {
            return Err(bad);
        };
        Ok(Self {
            afi_safi: super::AfiSafi { afi, safi },
            subtype,
        })
    }
}
