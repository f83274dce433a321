//! ServiceL2Status and ServiceBGPStatus: which node announces a Service, and how. Written by
//! the speakers, one object per announcing node and Service, in the Service's namespace and
//! owned by the Service (deleted with it).
//!
//! The information is in `status` (as in MetalLB); `spec` is empty.

// kube's `printcolumn(..)` lists repeat `type_ = "string"`, which clippy takes for
// duplicated attributes on the items the derive generates.
#![allow(clippy::duplicated_attributes)]

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Service announced in L2 mode by one node.
#[derive(
    CustomResource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "ServiceL2Status",
    plural = "servicel2statuses",
    shortname = "flbl2status",
    category = "ferrolb",
    namespaced,
    status = "L2Announcement",
    derive = "PartialEq",
    derive = "Default",
    doc = "Which node answers ARP/NDP for a Service's addresses, on which interfaces. Written by \
           the speaker, in the Service's namespace, owned by the Service.",
    printcolumn(name = "Service", type_ = "string", json_path = ".status.serviceName"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(
        name = "Interfaces",
        type_ = "string",
        json_path = ".status.interfaces[*].name"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ServiceL2StatusSpec {}

/// Where a Service is announced in L2 mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct L2Announcement {
    /// The node that answers ARP/NDP for the Service's addresses.
    #[serde(default)]
    pub node: String,

    /// The Service's name.
    #[serde(default)]
    pub service_name: String,

    /// The Service's namespace (the same as this object's).
    #[serde(default)]
    pub service_namespace: String,

    /// The node's interfaces on which the addresses are announced.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceInfo>,
}

/// One network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct InterfaceInfo {
    /// The interface's name, e.g. eth0.
    pub name: String,
}

/// A Service announced over BGP by one node.
#[derive(
    CustomResource, Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema,
)]
#[kube(
    group = "ferrolb.io",
    version = "v1alpha1",
    kind = "ServiceBGPStatus",
    plural = "servicebgpstatuses",
    shortname = "flbbgpstatus",
    category = "ferrolb",
    namespaced,
    status = "BgpAnnouncement",
    derive = "PartialEq",
    derive = "Default",
    doc = "Which node announces a Service's addresses over BGP, to which peers. Written by the \
           speaker, in the Service's namespace, owned by the Service.",
    printcolumn(name = "Service", type_ = "string", json_path = ".status.serviceName"),
    printcolumn(name = "Node", type_ = "string", json_path = ".status.node"),
    printcolumn(name = "Peers", type_ = "string", json_path = ".status.peers"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
pub struct ServiceBGPStatusSpec {}

/// Where a Service is announced over BGP.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BgpAnnouncement {
    /// The node whose speaker announces the Service's addresses.
    #[serde(default)]
    pub node: String,

    /// The Service's name.
    #[serde(default)]
    pub service_name: String,

    /// The Service's namespace (the same as this object's).
    #[serde(default)]
    pub service_namespace: String,

    /// The BGPPeers the addresses are configured to be announced to. Whether a route is
    /// currently advertised also depends on the session being established.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peers: Vec<String>,
}
