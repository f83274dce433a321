//! L2Advertisement: which pools are made reachable by ARP/NDP, from which nodes.

// kube's `printcolumn(..)` lists repeat `type_ = "string"`, which clippy takes for
// duplicated attributes on the items the derive generates.
#![allow(clippy::duplicated_attributes)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::conditions::ConfigStatus;
use crate::rules::{self, EachItem, limits};

/// Announces addresses of the selected pools in L2 mode: one node per address answers ARP
/// (IPv4) and neighbour solicitations (IPv6) for it.
#[derive(CustomResource, Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "L2Advertisement",
    plural = "l2advertisements",
    shortname = "flbl2adv",
    category = "ferrolb",
    status = "ConfigStatus",
    derive = "PartialEq",
    derive = "Default",
    doc = "Announces the addresses of the selected pools in L2 mode (ARP/NDP). Cluster-scoped.",
    printcolumn(name = "Pools", type_ = "string", json_path = ".spec.ipAddressPools"),
    printcolumn(name = "Interfaces", type_ = "string", json_path = ".spec.interfaces"),
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
pub struct L2AdvertisementSpec {
    /// Names of the IPAddressPools to announce. If both this and ipAddressPoolSelectors are
    /// empty, every pool is announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pools: Vec<String>,

    /// Announce the pools whose labels match any of these selectors (in addition to
    /// ipAddressPools).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_address_pool_selectors: Vec<LabelSelector>,

    /// Announce only from nodes whose labels match any of these selectors. Empty: every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub node_selectors: Vec<LabelSelector>,

    /// Answer ARP/NDP only on these interfaces of the node. Empty: every interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = limits::INTERFACES),
        inner(length(max = 15)),
        transform = EachItem(&[rules::INTERFACE_NAME])
    )]
    pub interfaces: Vec<String>,

    /// Announce only the addresses of Services whose labels match any of these selectors.
    /// Empty: every Service with an address from the selected pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_selectors: Vec<LabelSelector>,
}
