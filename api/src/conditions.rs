//! Condition types and reasons: the Service condition the controller writes, and the
//! conditions on ferrolb's own configuration objects.
//!
//! Reasons are enums so that code matches on variants, never on strings; `as_str` gives the
//! CamelCase word Kubernetes expects in `reason`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The condition type the controller sets on every LoadBalancer Service it serves.
pub const IP_ALLOCATED: &str = "ferrolb.io/IPAllocated";

/// Why `ferrolb.io/IPAllocated` is True or False.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpAllocatedReason {
    /// Every address the Service needs is assigned (status True).
    Allocated,
    /// No pool the Service may use exists (wrong pool name, selectors that match nothing, or
    /// only `autoAssign: false` pools).
    NoMatchingPool,
    /// The pools the Service may use have no free address of the family it needs.
    PoolExhausted,
    /// A requested address lies in no pool the Service may use, or another Service holds it.
    RequestedIPUnavailable,
    /// The sharing key matches a Service that uses the same port and protocol, or has an
    /// incompatible traffic policy.
    SharingConflict,
    /// A ferrolb annotation (or its MetalLB alias) cannot be parsed.
    InvalidAnnotation,
}

impl IpAllocatedReason {
    /// Every reason, for exhaustive tests and documentation.
    pub const ALL: [Self; 6] = [
        Self::Allocated,
        Self::NoMatchingPool,
        Self::PoolExhausted,
        Self::RequestedIPUnavailable,
        Self::SharingConflict,
        Self::InvalidAnnotation,
    ];

    /// The `reason` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Allocated => "Allocated",
            Self::NoMatchingPool => "NoMatchingPool",
            Self::PoolExhausted => "PoolExhausted",
            Self::RequestedIPUnavailable => "RequestedIPUnavailable",
            Self::SharingConflict => "SharingConflict",
            Self::InvalidAnnotation => "InvalidAnnotation",
        }
    }

    /// Whether the condition is True with this reason.
    pub const fn is_allocated(self) -> bool {
        matches!(self, Self::Allocated)
    }

    /// Parses a `reason` string written by the controller.
    pub fn parse(reason: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == reason)
    }
}

impl std::fmt::Display for IpAllocatedReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Condition types on IPAddressPool, L2Advertisement, BGPPeer and BGPAdvertisement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigConditionType {
    /// The object passed every check, including those CEL cannot make (cross-object, IPv6
    /// ranges). False means ferrolb ignores the object; the message says why.
    Valid,
    /// (Pools only.) Some of the pool's addresses are also in another pool. Allowed, since an
    /// address is held by one Service whatever pools contain it, but usually a mistake.
    Overlapping,
}

impl ConfigConditionType {
    /// The `type` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "Valid",
            Self::Overlapping => "Overlapping",
        }
    }
}

impl std::fmt::Display for ConfigConditionType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Reasons for the `Valid` and `Overlapping` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ConfigReason {
    /// `Valid=True`: every check passed.
    Accepted,
    /// `Valid=False`: a pool address entry is invalid (e.g. an IPv6 range ending before it
    /// starts).
    InvalidAddress,
    /// `Valid=False`: a label selector cannot be parsed.
    InvalidSelector,
    /// `Valid=False`: another field is invalid (see [`crate::validate`]).
    InvalidField,
    /// `Valid=False`: the object contradicts another object (e.g. an aggregation length
    /// shorter than a selected pool's prefix).
    Conflict,
    /// `Overlapping=False`.
    NoOverlap,
    /// `Overlapping=True`: the message names the other pools.
    OverlapsOtherPool,
}

impl ConfigReason {
    /// The `reason` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "Accepted",
            Self::InvalidAddress => "InvalidAddress",
            Self::InvalidSelector => "InvalidSelector",
            Self::InvalidField => "InvalidField",
            Self::Conflict => "Conflict",
            Self::NoOverlap => "NoOverlap",
            Self::OverlapsOtherPool => "OverlapsOtherPool",
        }
    }
}

impl std::fmt::Display for ConfigReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Status of L2Advertisement, BGPPeer and BGPAdvertisement: conditions only.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigStatus {
    /// `Valid`, written by the controller: False when the object breaks a rule the API server
    /// could not check (the message names it); ferrolb then ignores the object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}
