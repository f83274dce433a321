//! IPAddressPool: the addresses ferrolb may hand out.

// kube's `printcolumn(..)` lists repeat `type_ = "string"`, which clippy takes for
// duplicated attributes on the items the derive generates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::rules::{self, EachItem, limits};

/// A set of addresses ferrolb may assign to LoadBalancer Services.
#[derive(CustomResource, Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "IPAddressPool",
    plural = "ipaddresspools",
    shortname = "flbpool",
    category = "ferrolb",
    status = "IPAddressPoolStatus",
    derive = "PartialEq",
    doc = "A set of addresses ferrolb may assign to LoadBalancer Services. Cluster-scoped.",
    printcolumn(name = "Addresses", type_ = "string", json_path = ".spec.addresses"),
    printcolumn(
        name = "Auto Assign",
        type_ = "boolean",
        json_path = ".spec.autoAssign"
    ),
    printcolumn(
        name = "IPv4 Assigned",
        type_ = "integer",
        json_path = ".status.assignedIPv4"
    ),
    printcolumn(
        name = "IPv4 Available",
        type_ = "integer",
        json_path = ".status.availableIPv4"
    ),
    printcolumn(
        name = "IPv6 Assigned",
        type_ = "integer",
        json_path = ".status.assignedIPv6"
    ),
    printcolumn(
        name = "IPv6 Available",
        type_ = "string",
        json_path = ".status.availableIPv6"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    ),
    printcolumn(
        name = "Valid",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Valid")].status"#,
        priority = 1
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IPAddressPoolSpec {
    /// The pool's addresses. Each entry is a CIDR (`198.51.100.0/24`, `2001:db8:1::/64`), a
    /// range of two addresses of one family (`198.51.100.10-198.51.100.20`), or a single
    /// address. IPv4 and IPv6 entries may be mixed. A CIDR with bits set after its prefix
    /// length means its whole network (`198.51.100.7/24` is `198.51.100.0/24`). Entries may
    /// overlap other pools: an address is held by at most one Service (or one sharing group)
    /// whichever pools contain it.
    #[schemars(
        length(min = 1, max = limits::POOL_ADDRESSES),
        inner(length(max = limits::ADDRESS_LENGTH)),
        transform = EachItem(rules::POOL_ADDRESS)
    )]
    pub addresses: Vec<String>,

    /// Whether Services get addresses from this pool without asking for it. When false, the
    /// pool is used only by Services that name it (`ferrolb.io/address-pool`) or request one
    /// of its addresses (`ferrolb.io/loadBalancerIPs`).
    #[serde(default = "default_true")]
    pub auto_assign: bool,

    /// Never assign IPv4 addresses ending in .0 or .255, which some old client devices drop
    /// as broadcast addresses.
    #[serde(default, rename = "avoidBuggyIPs")]
    pub avoid_buggy_ips: bool,

    /// Restricts the pool to some namespaces or Services and orders it among the pools a
    /// Service may use. Without it, the pool serves any Service and is tried after every
    /// pool that has a matching serviceAllocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_allocation: Option<ServiceAllocation>,
}

fn default_true() -> bool {
    true
}

/// Which Services may take addresses from a pool, and in what order pools are tried.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAllocation {
    /// Pools whose serviceAllocation matches a Service are tried in ascending priority (a
    /// lower number first); pools of equal priority in order of name.
    #[serde(default)]
    pub priority: i32,

    /// The pool serves Services in these namespaces. Empty, together with
    /// namespaceSelectors: every namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,

    /// The pool serves Services in namespaces whose labels match any of these selectors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespace_selectors: Vec<LabelSelector>,

    /// The pool serves Services whose labels match any of these selectors. Empty: every
    /// Service in the namespaces above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}

/// What the controller reports about a pool.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IPAddressPoolStatus {
    /// IPv4 addresses of this pool held by Services.
    #[serde(default, rename = "assignedIPv4")]
    pub assigned_ipv4: u64,

    /// IPv4 addresses of this pool still free (after avoidBuggyIPs and addresses held
    /// through other pools).
    #[serde(default, rename = "availableIPv4")]
    pub available_ipv4: u64,

    /// IPv6 addresses of this pool held by Services.
    #[serde(default, rename = "assignedIPv6")]
    pub assigned_ipv6: u64,

    /// IPv6 addresses of this pool still free, as a decimal string: a /64 alone holds more
    /// addresses than a JSON integer can count. Exact up to 2^128-1 (a pool of all IPv6 space
    /// shows one less than its size).
    #[serde(
        default,
        rename = "availableIPv6",
        skip_serializing_if = "String::is_empty"
    )]
    pub available_ipv6: String,

    /// `Valid` (False when an entry or selector is invalid; the message names it) and
    /// `Overlapping` (True when some addresses are also in another pool).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
