//! MetalLB's configuration kinds as convert reads them (`metallb.io/v1beta1` and `v1beta2`),
//! written from MetalLB's API documentation for this purpose.
//!
//! Every spec keeps the fields it does not know in `unknown`, so that a field MetalLB has and
//! ferrolb does not is reported by name instead of vanishing. An empty string is what MetalLB
//! writes for an unset string (Go's `omitempty`), so it reads as unset.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The API group of MetalLB's configuration kinds.
pub const GROUP: &str = "metallb.io";
/// The versions convert reads.
pub const VERSIONS: [&str; 2] = ["v1beta1", "v1beta2"];

/// Fields not known to convert, by name.
pub type Unknown = BTreeMap<String, Value>;

/// `IPAddressPool.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolSpec {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub auto_assign: Option<bool>,
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,
    #[serde(default)]
    pub service_allocation: Option<ServiceAllocation>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `IPAddressPool.spec.serviceAllocation`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Go `int`: 64 bits in MetalLB's builds.
    #[serde(default)]
    pub priority: i64,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub namespace_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub service_selectors: Vec<LabelSelector>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `L2Advertisement.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct L2AdvertisementSpec {
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub interfaces: Vec<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `BGPAdvertisement.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BgpAdvertisementSpec {
    #[serde(default)]
    pub aggregation_length: Option<i32>,
    #[serde(default, rename = "aggregationLengthV6")]
    pub aggregation_length_v6: Option<i32>,
    /// 0 is MetalLB's "unset".
    #[serde(default)]
    pub local_pref: u32,
    #[serde(default)]
    pub communities: Vec<String>,
    #[serde(default)]
    pub ip_address_pools: Vec<String>,
    #[serde(default)]
    pub ip_address_pool_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    #[serde(default)]
    pub peers: Vec<String>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `BGPPeer.spec`, the union of v1beta1 and v1beta2 (v1beta1's own `nodeSelectors` type has
/// the shape of a label selector).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerSpec {
    #[serde(default, rename = "myASN")]
    pub my_asn: u32,
    #[serde(default, rename = "peerASN")]
    pub peer_asn: u32,
    #[serde(default, rename = "dynamicASN", deserialize_with = "unset_if_empty")]
    pub dynamic_asn: Option<String>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub peer_address: Option<String>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub interface: Option<String>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub source_address: Option<String>,
    /// 0 is MetalLB's "unset" (179).
    #[serde(default)]
    pub peer_port: u16,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub hold_time: Option<String>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub keepalive_time: Option<String>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub connect_time: Option<String>,
    #[serde(default, rename = "routerID", deserialize_with = "unset_if_empty")]
    pub router_id: Option<String>,
    #[serde(default)]
    pub node_selectors: Vec<LabelSelector>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub password: Option<String>,
    #[serde(default)]
    pub password_secret: Option<SecretReference>,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub bfd_profile: Option<String>,
    #[serde(default)]
    pub enable_graceful_restart: bool,
    #[serde(default)]
    pub ebgp_multi_hop: bool,
    #[serde(default, deserialize_with = "unset_if_empty")]
    pub vrf: Option<String>,
    #[serde(default, rename = "disableMP")]
    pub disable_mp: bool,
    #[serde(default)]
    pub dual_stack_address_family: bool,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// `BGPPeer.spec.passwordSecret`: a core `SecretReference`. MetalLB reads the Secret from its
/// own namespace whatever `namespace` says.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecretReference {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

/// `Community.spec`: names for community values, usable in BGPAdvertisements.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommunitySpec {
    #[serde(default)]
    pub communities: Vec<CommunityAlias>,
    #[serde(flatten)]
    pub unknown: Unknown,
}

/// One alias of a Community.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CommunityAlias {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub value: String,
}

fn unset_if_empty<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<String>::deserialize(d)?.filter(|s| !s.is_empty()))
}

/// A MetalLB community value as MetalLB reads it: `A:B` (16-bit decimal parts) or
/// `large:A:B:C` (32-bit parts). Unlike ferrolb's stricter text form, parts may have leading
/// zeros; the result is written in ferrolb's form.
pub fn parse_community(text: &str) -> Option<ferrolb_api::validate::Community> {
    use ferrolb_api::validate::Community;
    fn part<T: std::str::FromStr>(digits: &str) -> Option<T> {
        // Go's ParseUint takes digits only (Rust's from_str would also take a leading '+').
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse().ok())
            .flatten()
    }
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [high, low] => Some(Community::Standard {
            high: part(high)?,
            low: part(low)?,
        }),
        ["large", global, local1, local2] => Some(Community::Large {
            global: part(global)?,
            local1: part(local1)?,
            local2: part(local2)?,
        }),
        _ => None,
    }
}
