//! The ferrolb objects convert writes, and how they are written.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ferrolb_api::addr::{AddressEntry, FamilyInterval};
use ferrolb_api::{BGPAdvertisement, BGPPeer, IPAddressPool, L2Advertisement};
use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::finding::ObjectId;

/// A ferrolb object and the MetalLB object (`apiVersion`, identity) it was made from.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub from: Option<(String, ObjectId)>,
    pub object: Object,
}

/// A written object.
#[derive(Debug, Clone, PartialEq)]
pub enum Object {
    Secret(Secret),
    Pool(IPAddressPool),
    Peer(BGPPeer),
    BgpAdvertisement(BGPAdvertisement),
    L2Advertisement(L2Advertisement),
}

impl Object {
    /// The object's kind, as in its manifest.
    pub fn kind(&self) -> &'static str {
        match self {
            Object::Secret(_) => "Secret",
            Object::Pool(_) => "IPAddressPool",
            Object::Peer(_) => "BGPPeer",
            Object::BgpAdvertisement(_) => "BGPAdvertisement",
            Object::L2Advertisement(_) => "L2Advertisement",
        }
    }

    fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        fn yaml<T: Serialize>(t: &T) -> Result<String, serde_yaml::Error> {
            serde_yaml::to_string(t)
        }
        match self {
            Object::Secret(o) => yaml(o),
            Object::Pool(o) => yaml(o),
            Object::Peer(o) => yaml(o),
            Object::BgpAdvertisement(o) => yaml(o),
            Object::L2Advertisement(o) => yaml(o),
        }
    }
}

/// The header every output starts with.
pub const HEADER: &str = "# ferrolb.io/v1alpha1 objects converted from MetalLB by `ferrolb-controller convert`.\n\
# Read what it printed on stderr before applying them.\n";

/// Multi-document YAML, each document after a comment naming the MetalLB object it came from.
pub fn to_yaml(objects: &[Converted]) -> String {
    let mut out = String::from(HEADER);
    for converted in objects {
        out.push_str("---\n");
        if let Some((api_version, id)) = &converted.from {
            let what = match &converted.object {
                Object::Secret(_) => "password of",
                _ => "from",
            };
            out.push_str(&format!("# {what} {api_version} {id}\n"));
        }
        // Serializing these types cannot fail: they hold strings, numbers, maps with string
        // keys and byte strings only.
        match converted.object.to_yaml() {
            Ok(text) => out.push_str(&text),
            Err(e) => out.push_str(&format!("# not serializable: {e}\n")),
        }
    }
    out
}

/// A pool entry as ferrolb writes it: a CIDR as its network, a range without blanks.
pub fn address(entry: &AddressEntry) -> String {
    if entry.host_bits_set() {
        match entry.interval() {
            FamilyInterval::V4(iv) => iv.to_entry().to_string(),
            FamilyInterval::V6(iv) => iv.to_entry().to_string(),
        }
    } else {
        entry.to_string()
    }
}

/// The Secret a peer's password lives in.
pub fn password_secret(namespace: &str, name: &str, password: ByteString) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".to_owned()),
        data: Some(BTreeMap::from([(
            ferrolb_api::bgp::DEFAULT_PASSWORD_KEY.to_owned(),
            password,
        )])),
        ..Secret::default()
    }
}

/// The CIDRs that cover an entry exactly (a range becomes the fewest aligned prefixes), for
/// `ferrolb_api::validate::aggregation_fits_pool`.
pub fn covering_cidrs(entry: &AddressEntry) -> Vec<IpNet> {
    match entry.interval() {
        FamilyInterval::V4(iv) => split(u128::from(iv.start), u128::from(iv.end), 32)
            .into_iter()
            .filter_map(|(start, len)| {
                let start = Ipv4Addr::from(u32::try_from(start).ok()?);
                IpNet::new(IpAddr::V4(start), len).ok()
            })
            .collect(),
        FamilyInterval::V6(iv) => split(iv.start, iv.end, 128)
            .into_iter()
            .filter_map(|(start, len)| IpNet::new(IpAddr::V6(Ipv6Addr::from(start)), len).ok())
            .collect(),
    }
}

/// Splits `start..=end` of a `bits`-bit space into the fewest aligned blocks, as
/// (first address, prefix length).
fn split(mut start: u128, end: u128, bits: u8) -> Vec<(u128, u8)> {
    let mut blocks = Vec::new();
    loop {
        // The largest block that starts at `start`, is aligned, and ends at or before `end`.
        let mut host_bits = u32::from(bits).min(start.trailing_zeros());
        let last = |host_bits: u32| match 1u128.checked_shl(host_bits) {
            Some(size) => start | (size - 1),
            None => u128::MAX,
        };
        while last(host_bits) > end {
            host_bits -= 1;
        }
        // host_bits <= bits, so the length fits in u8.
        blocks.push((start, bits - host_bits as u8));
        let block_end = last(host_bits);
        if block_end >= end {
            return blocks;
        }
        start = block_end + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cidrs(text: &str) -> Vec<String> {
        covering_cidrs(&AddressEntry::parse(text).unwrap())
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn ranges_split_into_the_fewest_aligned_prefixes() {
        assert_eq!(
            cidrs("198.51.100.10-198.51.100.20"),
            [
                "198.51.100.10/31",
                "198.51.100.12/30",
                "198.51.100.16/30",
                "198.51.100.20/32"
            ]
        );
        assert_eq!(cidrs("198.51.100.0-198.51.100.255"), ["198.51.100.0/24"]);
        assert_eq!(cidrs("198.51.100.0/24"), ["198.51.100.0/24"]);
        assert_eq!(cidrs("198.51.100.7"), ["198.51.100.7/32"]);
        assert_eq!(cidrs("0.0.0.0/0"), ["0.0.0.0/0"]);
        assert_eq!(cidrs("::/0"), ["::/0"]);
        assert_eq!(
            cidrs("2001:db8::1-2001:db8::2"),
            ["2001:db8::1/128", "2001:db8::2/128"]
        );
    }

    #[test]
    fn cidrs_with_host_bits_are_written_as_their_network() {
        let e = |t: &str| address(&AddressEntry::parse(t).unwrap());
        assert_eq!(e("198.51.100.7/24"), "198.51.100.0/24");
        assert_eq!(e("2001:db8::7/64"), "2001:db8::/64");
        assert_eq!(
            e(" 198.51.100.10 - 198.51.100.20 "),
            "198.51.100.10-198.51.100.20"
        );
        assert_eq!(e("198.51.100.0/24"), "198.51.100.0/24");
    }

    proptest! {
        /// The blocks are aligned, adjacent, and cover exactly the range.
        #[test]
        fn split_covers_the_range_exactly(a in any::<u128>(), b in any::<u128>(), v4 in any::<bool>()) {
            let (bits, a, b) = if v4 { (32u8, a & 0xffff_ffff, b & 0xffff_ffff) } else { (128, a, b) };
            let (start, end) = (a.min(b), a.max(b));
            let blocks = split(start, end, bits);
            prop_assert!(blocks.len() <= 2 * usize::from(bits));
            let mut next = start;
            for (first, len) in &blocks {
                prop_assert_eq!(*first, next);
                let host = u32::from(bits - len);
                let mask = 1u128.checked_shl(host).map_or(u128::MAX, |s| s - 1);
                prop_assert_eq!(first & mask, 0, "block not aligned");
                next = (first | mask).wrapping_add(1);
            }
            let last = blocks.last().map(|(f, len)| {
                let host = u32::from(bits - len);
                f | 1u128.checked_shl(host).map_or(u128::MAX, |s| s - 1)
            });
            prop_assert_eq!(last, Some(end));
        }
    }
}
